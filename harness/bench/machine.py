"""The gate's same-machine layer: the pytest-benchmark suite, compared only on an equal machine fingerprint."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness import provenance
from harness.bench.settings import MACHINE_FAIL
from harness.config import content_hash

# The suite is the repository's (tests/ is not installed); saved runs sit beside it, whatever the cwd.
SUITE = provenance.REPO_ROOT / "tests" / "benchmarks" / "test_bench_search.py"
MACHINE_STORAGE = provenance.REPO_ROOT / ".benchmarks"


@dataclass(frozen=True)
class MachineBenchOutcome:
    """What the pytest-benchmark layer did: passed, failed, skipped or saved, and why."""

    status: Literal["passed", "failed", "skipped", "saved"]
    reason: str
    output: str = ""


def machine_storage(root: Path = MACHINE_STORAGE) -> Path:
    """pytest-benchmark storage for this machine: saved runs are only compared on an equal fingerprint."""
    return Path(root) / f"pcfes-{content_hash(provenance.fingerprint(), 12)}"


def machine_benchmark(
    *, save: bool = False, suite: Path = SUITE, storage_root: Path = MACHINE_STORAGE, fail: str = MACHINE_FAIL
) -> MachineBenchOutcome:
    """Run the pytest-benchmark suite: save it for this machine, or compare with ``--benchmark-compare-fail``."""
    if not Path(suite).exists():
        return MachineBenchOutcome(
            "skipped", f"suite {suite} not found: this pcfes is installed without the repository's tests/ (use a source checkout)"
        )
    storage = machine_storage(storage_root)
    saved = sorted(storage.rglob("*.json")) if storage.exists() else []
    args = [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider", "--benchmark-enable"]
    args.append(f"--benchmark-storage=file://{storage.resolve()}")
    if save:
        args.append("--benchmark-save=pcfes-bench")
    elif not saved:
        return MachineBenchOutcome(
            "skipped",
            f"no saved pytest-benchmark run for this machine (fingerprint {provenance.fingerprint()!r}, "
            f"storage {storage}); record one with `pcfes bench --save-machine-baseline`",
        )
    else:
        args += ["--benchmark-compare", f"--benchmark-compare-fail={fail}"]
    done = subprocess.run(args, capture_output=True, text=True)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        what = "saving" if save else f"comparison with {saved[-1].name} ({fail})"
        return MachineBenchOutcome("failed", f"pytest-benchmark {what} failed (exit {done.returncode})", output)
    if save:
        return MachineBenchOutcome("saved", f"saved a pytest-benchmark run for this machine in {storage}", output)
    return MachineBenchOutcome("passed", f"pytest-benchmark within {fail} of {saved[-1].name}", output)
