#!/usr/bin/env bash
# Write infra/constraints.txt from the working .venv: the exact versions the tests passed with, so that a
# fresh machine next month installs the same Prefect, transformers, pandas, ... (infra/setup.sh uses it).
# torch (its build differs per host: CPU or CUDA) and natten (built against it) are pinned in setup.sh.
# Usage: bash infra/lock.sh   (after `pip install -U ...` and a green test run)
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "# Exact versions of every package the tests passed with (written by infra/lock.sh; torch and natten:"
  echo "# infra/setup.sh). Used as pip constraints: they pin what is installed, they install nothing."
  .venv/bin/python -m pip freeze --exclude-editable | grep -v -i -E '^(torch|natten)==|^worldmill'
} > infra/constraints.txt
echo "infra/constraints.txt: $(grep -c '==' infra/constraints.txt) packages"
