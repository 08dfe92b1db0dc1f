#!/usr/bin/env bash
# Write infra/constraints.txt from the working .venv: the exact versions the tests passed with, so that a
# fresh machine next month installs the same Prefect, transformers, pandas, ... (infra/setup.sh uses it).
# torch (its build differs per host: CPU or CUDA) and natten (built against it) are pinned in setup.sh.
# Usage: bash infra/lock.sh   (after `pip install -U ...` and a green test run)
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE_ONLY=(
  "async-timeout==5.0.1"  # redis, on Python < 3.11.3
)
{
  echo "# Exact versions of every package the tests passed with (written by infra/lock.sh; torch and natten:"
  echo "# infra/setup.sh). Used as pip constraints: they pin what is installed, they install nothing."
  .venv/bin/python -m pip freeze --exclude-editable | grep -v -i -E '^(torch|natten)==|^worldmill'
  echo "# Pins for the image's Python (Debian 12: 3.11.2; Dockerfile), needed there by markers that the"
  echo "# lock host's Python does not meet: kept by hand in infra/lock.sh (IMAGE_ONLY)."
  printf '%s\n' "${IMAGE_ONLY[@]}"
} > infra/constraints.txt
echo "infra/constraints.txt: $(grep -c '==' infra/constraints.txt) packages"
