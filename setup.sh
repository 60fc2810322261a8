#!/usr/bin/env bash
# Set up a virtual environment and run the claim suite on the embedded model.
#   ./setup.sh                 CPU PyTorch 2.13.0 (the wheel this workplace keeps on disk)
#   TORCH_SPEC=torch ./setup.sh  whatever `pip install torch` gives (a CUDA build on Linux)
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e .
mkdir -p reports
.venv/bin/python -m pytest tests/test_claims.py --claims-report reports/claims.json
