"""Instructions the evaluator executes for a few candidates: the per-call overhead, load-independent.

Wall and CPU time on a shared machine say little about a change of a few percent; an
instruction count under callgrind is the same whatever the load. Run it as

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.out \
        python scripts/call_instructions.py [--level none|frozen|prefix] [--archs 6]

and read the total from valgrind's ``Collected :`` line at exit: only the evaluation is
counted (the script switches collection on around it with ``callgrind_control``; imports, the
supernet's build and a warm-up candidate are not). The scores it prints must not change with
a change that only lowers the cost (run it from two checkouts: same scores, fewer instructions).
Without valgrind it just prints the scores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess

import numpy as np
import torch

import supernets
from harness.config import EvalProtocol, ReuseConfig
from harness.datasets import load_dataset
from harness.evaluation import Evaluator
from searchers.base import Hints
from supernets.train import init_weights

PROTOCOL = EvalProtocol(calib_batches=2, calib_batch_size=32, val_size=128, eval_batch_size=64)


def _collect(on: bool) -> None:
    """Switch callgrind's collection (a no-op without valgrind)."""
    tool = shutil.which("callgrind_control")
    if tool is not None and "vgpreload" in os.environ.get("LD_PRELOAD", ""):  # set by valgrind
        subprocess.run([tool, "-i", "on" if on else "off", str(os.getpid())], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--supernet", default="spos-tiny")
    parser.add_argument("--level", default="prefix", choices=("none", "frozen", "prefix"))
    parser.add_argument("--archs", type=int, default=6, help="candidates scored while counting")
    args = parser.parse_args()
    torch.set_num_threads(1)
    net = supernets.get_supernet(args.supernet)
    init_weights(net, torch.Generator().manual_seed(0))
    evaluator = Evaluator(net, load_dataset(PROTOCOL.dataset), PROTOCOL, ReuseConfig(args.level, 10**9))
    rng = np.random.default_rng(0)
    base = tuple(int(rng.integers(c)) for c in net.choices)
    evaluator.score([tuple(int(rng.integers(c)) for c in net.choices)])  # warm-up: lazy initialisation
    # Archs that share prefixes of ``base`` (as a searcher's mutants do), one frozen prefix.
    archs = [base[:k] + tuple(int(rng.integers(c)) for c in net.choices[k:]) for k in np.linspace(2, net.num_blocks - 1, args.archs).astype(int)]
    _collect(True)
    evaluator.prepare(Hints(frozen=base[:2]))
    scores = evaluator.score(archs)
    _collect(False)
    print(" ".join(f"{s:.6f}" for s in scores))


if __name__ == "__main__":
    main()
