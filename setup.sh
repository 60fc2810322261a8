#!/usr/bin/env bash
# Set up a virtual environment and run the claim suite on the embedded model.
#   ./setup.sh                   CPU PyTorch 2.13.0 (the wheel this workplace keeps on disk)
#   TORCH_SPEC=torch ./setup.sh  whatever `pip install torch` gives (a CUDA build on Linux)
#   TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" ./setup.sh
#                                the CPU build from PyTorch's own index (e.g. on GitHub's runners)
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# shellcheck disable=SC2086  # TORCH_SPEC may carry pip options (--index-url ...): split on purpose
.venv/bin/python -m pip install -q ${TORCH_SPEC:-torch==2.13.0}
.venv/bin/python -m pip install -q -e '.[dev]'
mkdir -p reports
.venv/bin/python -m pytest interp_claims/suite/test_claims.py --claims-report reports/claims.json
