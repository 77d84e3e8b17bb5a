#!/usr/bin/env bash
# GPU smoke check for pcfes-bench, offline, in minutes: NVML counter readings, equal scores at every reuse
# level on CUDA (float32, float16, bfloat16 where supported), a tiny `pcfes compare` with the real meters, and
# the `pcfes bench --cost` tables (MAC vs CPU / wall time ratios of reuse per searcher, 3 generations): spos-tiny,
# and spos at 224 px at the bench's reduced protocol (synthetic images, 128 validation images; --cpu: a smoke run).
#
#   scripts/gpu_check.sh            # on a GPU machine; exit 2 when torch sees no CUDA device
#   scripts/gpu_check.sh --cpu      # the same checks on the CPU (NVML aside)
#
# Python: $PYTHON, else the repo's .venv, else python3 on PATH (a CUDA build of torch). The repo
# is put on PYTHONPATH, so it needs no install. Missing dependencies (e.g. codecarbon on an image
# that only has torch) are installed offline from a wheel folder, $PCFES_WHEELS (default .whl/),
# prepared on a machine with network access (see README, "Running on a GPU box").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -n "${PYTHON:-}" ]]; then py=$PYTHON
elif [[ -x .venv/bin/python ]]; then py=.venv/bin/python
else py=$(command -v python3 || command -v python)
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if [[ " $* " != *" --cpu "* ]] && ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check: $py has no CUDA-enabled torch or sees no GPU; run on a GPU machine or pass --cpu" >&2
    exit 2
fi

missing=$("$py" - <<'PY'
import importlib.util
modules = ("torch", "numpy", "pandas", "matplotlib", "sklearn", "tqdm", "pynvml", "codecarbon")
print(" ".join(m for m in modules if importlib.util.find_spec(m) is None))
PY
)
if [[ -n "$missing" ]]; then
    wheels=${PCFES_WHEELS:-.whl}
    if [[ ! -d "$wheels" ]]; then
        echo "gpu_check: $py lacks python module(s): $missing; and there is no wheel folder $wheels to install" \
             "them from offline. Prepare one on a networked machine (README: Running on a GPU box) or install them." >&2
        exit 3
    fi
    echo "gpu_check: installing the project's missing dependencies ($missing) offline from $wheels"
    "$py" -m pip install -q --no-index --find-links "$wheels" --no-build-isolation -e .
fi

exec "$py" scripts/gpu_check.py "$@"
