"""The baseline file: its format, where it is, reading it (format checked before any bench runs) and writing it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import store
from harness.bench.settings import BASELINE_DIR, BASELINE_PATH

if TYPE_CHECKING:
    from harness.bench.gate import BenchResult

FORMAT = "pcfes-bench-baseline"
FORMAT_VERSION = 2


def check_format(baseline: Mapping[str, Any], path: Path | None = None) -> None:
    """Refuse a file that is not a baseline of this format version (another project version wrote it)."""
    if baseline.get("format") != FORMAT or baseline.get("format_version") != FORMAT_VERSION:
        where = f" {path}" if path else ""
        writer = f", written by pcfes {baseline['pcfes_version']}" if baseline.get("pcfes_version") else ""
        raise ValueError(
            f"baseline{where} is not a {FORMAT} v{FORMAT_VERSION} file (got {baseline.get('format')!r} "
            f"v{baseline.get('format_version')!r}{writer}); regenerate it with this version: "
            f"`pcfes bench{baseline_dir_flag(path)} --update-baseline`"
        )


def baseline_dir_flag(path: Path | None) -> str:
    """`` --baseline-dir DIR`` where ``path`` is not in the default folder, so a suggested command works as typed."""
    if path is None or Path(path).resolve().parent == BASELINE_DIR:
        return ""
    return f" --baseline-dir {Path(path).resolve().parent}"


def load_baseline(path: Path = BASELINE_PATH) -> dict[str, Any]:
    """Read a baseline file and check its format, before any bench runs; say how to get one when it is missing."""
    path = Path(path)
    if not path.exists():
        if not path.parent.is_dir():
            raise FileNotFoundError(
                f"no bench baseline: {path.parent} does not exist (this pcfes is installed without the repository's "
                "benchmarks/ folder); run `pcfes bench` from a source checkout (git clone, then pip install -e .) or "
                "pass --baseline-dir DIR, a folder with baseline.json and replay.json"
            )
        raise FileNotFoundError(
            f"no bench baseline at {path}; record one with `pcfes bench{baseline_dir_flag(path)} --update-baseline`"
        )
    baseline = store.read_json(path)
    check_format(baseline, path)
    return baseline


def write_baseline(result: BenchResult, path: Path = BASELINE_PATH) -> None:
    """Write ``result`` as the new baseline (atomically)."""
    store.write_json(Path(path), result.to_dict())
