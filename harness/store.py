"""Results on disk: atomic writes of a run's files, and loading runs into pandas DataFrames."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness import schema

log = logging.getLogger(__name__)


class RunLoadError(ValueError):
    """A run directory is missing files, incomplete or of an unknown schema version."""


def _atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder + rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes the file private; results and reports are meant to be shared
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    _atomic_write_text(Path(path), json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Atomically write a DataFrame as CSV (no index)."""
    _atomic_write_text(Path(path), frame.to_csv(index=False))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunLoadError(f"{path} is not valid JSON ({exc}); the file is corrupt") from None


def prepare_run_dir(path: Path, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Check (before any expensive work) that a run may be written to ``path``, and create it."""
    path = Path(path)
    if resume:
        if not (path / schema.CHECKPOINT_JSON).exists():
            state = "complete" if (path / schema.RUN_JSON).exists() else "missing"
            raise FileNotFoundError(
                f"cannot resume {path}: it has no {schema.CHECKPOINT_JSON} (run is {state})"
            )
        return path
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"results directory {path} already exists; pass --resume to continue it or --overwrite to replace it"
            )
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise PermissionError(f"cannot write results to {path}: {exc.strerror or exc}") from None
    return path


@dataclass(frozen=True)
class RunRecord:
    """One run loaded from disk."""

    path: Path
    run: dict[str, Any]
    generations: pd.DataFrame
    candidates: pd.DataFrame
    emissions: dict[str, Any]


def load_run(path: str | Path) -> RunRecord:
    """Load one complete run directory; raises RunLoadError saying what is wrong."""
    path = Path(path)
    missing = [name for name in schema.RUN_FILES if not (path / name).is_file()]
    if missing:
        raise RunLoadError(f"run {path} is incomplete: missing {', '.join(missing)}")
    run = read_json(path / schema.RUN_JSON)
    version = run.get("schema_version")
    if version != schema.SCHEMA_VERSION:
        raise RunLoadError(
            f"run {path} has schema version {version!r}; this pcfes-bench reads version {schema.SCHEMA_VERSION}"
        )
    if run.get("status") != "complete":
        raise RunLoadError(f"run {path} is incomplete (status {run.get('status')!r}); resume it with pcfes search --resume {path}")
    generations = _read_csv(path / schema.GENERATIONS_CSV, schema.GEN_COLUMNS)
    candidates = _read_csv(path / schema.CANDIDATES_CSV, schema.CAND_COLUMNS)
    return RunRecord(path, run, generations, candidates, read_json(path / schema.EMISSIONS_JSON))


def _read_csv(path: Path, required: Iterable[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise RunLoadError(f"{path} is not a valid CSV: {exc}") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise RunLoadError(f"{path} lacks column(s) {', '.join(missing)}")
    return frame


def _flatten(prefix: str, data: Mapping[str, Any], out: dict[str, Any]) -> None:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _flatten(f"{name}.", value, out)
        else:
            out[name] = value


def run_summary_row(record: RunRecord) -> dict[str, Any]:
    """One flat row per run: identity, hashes, totals, result, meter sources."""
    run = record.run
    row: dict[str, Any] = {
        "run_id": run["run_id"],
        "path": str(record.path),
        "searcher": run["searcher"],
        "supernet": run["supernet"],
        "dataset": run["dataset"],
        "seed": run["seed"],
        "protocol_hash": run["protocol_hash"],
        "checkpoint_hash": run["checkpoint_hash"],
        "config_hash": run["config_hash"],
        "device": run["device"].get("type"),
    }
    row.update({k: run["searcher_params"].get(k) for k in ("threshold", "monitor", "rate") if k in run["searcher_params"]})
    row.update(run["totals"])
    result = dict(run["result"])
    result["best_arch"] = schema.arch_to_str(result["best_arch"])
    row.update(result)
    _flatten("source.", run["meter_sources"], row)
    return row


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories among ``paths``: each path is a run directory or a folder of them."""
    found: list[Path] = []
    for p in map(Path, paths):
        if (p / schema.RUN_JSON).exists() or (p / schema.CHECKPOINT_JSON).exists():
            found.append(p)
        elif p.is_dir():
            found += sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
        else:
            found.append(p)
    return found


def load_records(paths: Iterable[str | Path], *, skip_bad: bool = False) -> list[RunRecord]:
    """Load runs; with ``skip_bad`` an incomplete/unknown run is skipped with a warning naming it."""
    records = []
    for path in find_runs(paths):
        try:
            records.append(load_run(path))
        except (RunLoadError, OSError) as exc:
            if not skip_bad:
                raise
            log.warning("skipping %s: %s", path, exc)
    return records


def load_runs(paths: Iterable[str | Path], *, skip_bad: bool = False) -> pd.DataFrame:
    """One row per run (see ``run_summary_row``)."""
    return pd.DataFrame([run_summary_row(r) for r in load_records(paths, skip_bad=skip_bad)])


def _stacked(records: Iterable[RunRecord], attribute: str) -> pd.DataFrame:
    frames = []
    for r in records:
        frame = getattr(r, attribute).copy()
        for key in ("run_id", "searcher", "supernet", "seed", "protocol_hash", "checkpoint_hash"):
            frame.insert(0, key, r.run[key])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def generations_frame(records: Iterable[RunRecord]) -> pd.DataFrame:
    """All runs' generations.csv rows, tagged with run identity columns."""
    return _stacked(records, "generations")


def candidates_frame(records: Iterable[RunRecord]) -> pd.DataFrame:
    """All runs' candidates.csv rows, tagged with run identity columns."""
    return _stacked(records, "candidates")
