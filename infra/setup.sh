#!/usr/bin/env bash
# One-time set-up of a fresh machine: a virtual environment in .venv with this project and its tools, at
# the versions the tests passed with (infra/constraints.txt, written by infra/lock.sh).
# torch is pinned first so that pip takes the local CPU build where there is no GPU (an unpinned torch
# would pull several GB of CUDA packages); on GPU hosts install the CUDA build of torch 2.x beforehand.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
step() { echo "set-up: $*"; }
[ -x .venv/bin/python ] || { step "creating the virtual environment .venv"; "$PYTHON" -m venv .venv; }
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  step "installing torch ${TORCH_VERSION:-2.13.0} (the CPU build where there is no GPU; about a minute)"
  .venv/bin/python -m pip install -q -c infra/constraints.txt "torch==${TORCH_VERSION:-2.13.0}" 2>&1 | grep -v '^WARNING: Location' || true
fi
step "installing worldmill and its dependencies (Prefect, transformers, pandas, s3fs, ...)"
# PYTHONWARNINGS: setuptools' editable-install notice (a 10-line box on a terminal) is not for users
PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q -c infra/constraints.txt -e ".[dev]" 2>&1 | grep -v '^WARNING: Location' || true
# natten (dev, the parity oracle of cosmos_core/sparse_attention.py): its build needs the installed torch,
# so no build isolation; without CUDA it builds in seconds and runs its flex-fna backend on the CPU.
if ! .venv/bin/python -c 'import natten' 2>/dev/null; then
  step "building natten 0.21.7 (the sparse-attention tests' reference)"
  .venv/bin/python -m pip install -q -c infra/constraints.txt setuptools wheel 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install -q --no-build-isolation "natten==0.21.7" 2>&1 | grep -v '^WARNING: Location' || true
fi
DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false .venv/bin/python -c 'import torch, prefect, diffusers, transformers, natten; print("set-up ok: torch", torch.__version__)'
