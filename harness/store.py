"""Results on disk: atomic writes, folder locks, run folders, and loading runs into pandas DataFrames."""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import logging
import math
import numbers
import os
import socket
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

import searchers
from harness import schema
from harness.run_record import SUPPORTED_VERSIONS, RunRecord, RunStatus

log = logging.getLogger(__name__)

_TEMP_SUFFIX = ".tmp"
_WRITE_PROBE = ".write-test"
_OUR_FILES = frozenset({*schema.RUN_FILES, schema.EMISSIONS_CSV, schema.CHECKPOINT_JSON})


class RunLoadError(ValueError):
    """A run directory is missing files, incomplete or of an unknown schema version."""


class FolderLockedError(OSError):
    """Another process holds the lock of a folder this one would write."""


def _temp_prefix(name: str) -> str:
    return f".{name}."


def _atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder + rename, so readers never see half a file.

    Any OSError (disk full, read-only file system) leaves no temp file and names ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path.name), suffix=_TEMP_SUFFIX)
        os.fchmod(fd, 0o644)  # mkstemp makes the file private; results and reports are meant to be shared
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def write_text(path: Path, text: str) -> None:
    """Atomically write ``text`` (UTF-8): a reader or a full disk never leaves half a file."""
    _atomic_write_text(Path(path), text)


def write_json(path: Path, data: Any) -> None:
    """Atomically write ``data`` as indented JSON; a NaN or infinity is an error naming its key (JSON has neither)."""
    where = _non_finite(data)
    if where is not None:
        raise ValueError(
            f"refusing to write {path}: {where} is not a finite number and JSON has no NaN or infinity; "
            "the code that produced it must give a number, or null with an 'unavailable: <reason>' source"
        )
    _atomic_write_text(Path(path), json.dumps(data, indent=2, allow_nan=False, default=_json_default) + "\n")


def _non_finite(value: Any, key: str = "") -> str | None:
    """The key path (``totals.energy_j``, ``rows[3]``) of the first NaN or infinity in ``value``, else None."""
    if isinstance(value, Mapping):
        items: Iterable[tuple[str, Any]] = ((f"{key}.{k}" if key else str(k), v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{key}[{i}]", v) for i, v in enumerate(value))
    else:
        real = isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)
        return (key or "the value") if real and not math.isfinite(value) else None
    return next((found for k, v in items if (found := _non_finite(v, k)) is not None), None)


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Atomically write a DataFrame as CSV (no index)."""
    _atomic_write_text(Path(path), frame.to_csv(index=False))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def read_summary(path: str | Path) -> pd.DataFrame:
    """A report's summary.csv (or a sweep's CSV) with stable dtypes (``schema.summary_dtypes``)."""
    header = pd.read_csv(path, nrows=0).columns
    return pd.read_csv(path, dtype=schema.summary_dtypes(header))


def read_json(path: Path) -> Any:
    """Parse a JSON file; corrupt JSON is a RunLoadError naming the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunLoadError(f"{path} is not valid JSON ({exc}); the file is corrupt") from None


# --- folder locks ---------------------------------------------------------------------------

_HELD: dict[str, int] = {}  # folders this process has locked -> nesting depth (flock is per open file)


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[Path]:
    """Hold an advisory lock on ``folder`` (created if missing) while this process writes it.

    A second process gets a FolderLockedError naming the holder (pid, host, command, since when).
    The lock is an ``fcntl.flock`` on ``schema.LOCK_FILE`` inside the folder, so it dies with its
    process: a kill -9 never leaves a lock that blocks the next run. Re-entrant within a process.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file; a run, compare or sweep output needs a folder there")
    key = os.path.realpath(folder)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield folder
        finally:
            _HELD[key] -= 1
        return
    created = not folder.exists()
    lock = folder / schema.LOCK_FILE
    fd = _acquire(lock)
    _HELD[key] = 1
    try:
        yield folder
    finally:
        del _HELD[key]
        lock.unlink(missing_ok=True)  # still held: a waiter that opened it re-checks and retries
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):  # only an empty folder: a failed start leaves nothing behind
                folder.rmdir()


def _acquire(lock: Path) -> int:
    while True:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise FolderLockedError(
                f"{lock.parent} is being written by {holder}; wait for it to finish or stop it, then run again"
            ) from None
        try:
            current = os.stat(lock)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(os.fstat(fd), current):
            record = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": " ".join(sys.orig_argv),
                "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
            return fd
        os.close(fd)  # the holder removed this file as we opened it: lock the one that is there now


def _holder(fd: int) -> str:
    try:
        record = json.loads(os.pread(fd, 65536, 0).decode())
        return f"pid {record['pid']} on {record['host']} (`{record['command']}`, since {record['since']})"
    except (ValueError, KeyError, TypeError):
        return "another process (it has not recorded itself yet)"


# --- run folders ----------------------------------------------------------------------------


def _is_temp_of_ours(name: str) -> bool:
    return name.endswith(_TEMP_SUFFIX) and any(name.startswith(_temp_prefix(f)) for f in _OUR_FILES)


def _contents(path: Path) -> list[Path]:
    """What a run folder holds besides its lock, write probe and temp files."""
    if not path.is_dir():
        return []
    skip = {schema.LOCK_FILE, _WRITE_PROBE}
    return sorted(p for p in path.iterdir() if p.name not in skip and not _is_temp_of_ours(p.name))


def is_vacant(path: str | Path) -> bool:
    """True when ``path`` holds nothing of a run: it is missing, or has only a lock or temp files."""
    return not _contents(Path(path))


def _our_json(path: Path) -> dict[str, Any] | None:
    """``path`` parsed, when it is a JSON file of a schema version this pcfes-bench reads (written by us), else None.

    checkpoint.json has the same layout in versions 2 and 3 (only run.json changed), so both are ours.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema_version") in SUPPORTED_VERSIONS else None


def _our_record(path: Path) -> RunRecord | None:
    """The record in run.json ``path`` when it is one of ours that this pcfes-bench reads, else None."""
    data = _our_json(path)
    try:
        return None if data is None else RunRecord.from_json(data)
    except (ValueError, KeyError, TypeError):
        return None


def remove_stale_temps(path: Path) -> None:
    """Delete temp files of ours left by a process killed mid-write (call while holding the folder's lock)."""
    for p in Path(path).iterdir():
        if p.is_file() and (_is_temp_of_ours(p.name) or p.name == _WRITE_PROBE):
            p.unlink(missing_ok=True)


def _clear_run_dir(path: Path) -> None:
    """Empty a run folder of ours; refuse (naming what it would delete) anything that is not ours."""
    contents = _contents(path)
    if not contents:
        return
    if _our_json(path / schema.RUN_JSON) is None and _our_json(path / schema.CHECKPOINT_JSON) is None:
        raise FileExistsError(
            f"refusing to delete {path}: it is not a pcfes run folder (no {schema.RUN_JSON} or {schema.CHECKPOINT_JSON} "
            f"of schema version {' or '.join(map(str, SUPPORTED_VERSIONS))}), it holds {', '.join(p.name for p in contents[:5])}; "
            "choose another run id or results folder"
        )
    foreign = [p.name for p in contents if p.name not in _OUR_FILES or not p.is_file()]
    if foreign:
        raise FileExistsError(
            f"refusing to delete {path}: besides the run it holds {', '.join(foreign)}, which pcfes did not write; "
            "move it out first"
        )
    for p in contents:
        p.unlink()
    remove_stale_temps(path)


def resumable_run(path: str | Path) -> RunRecord:
    """The record of a run that --resume can continue (checkpointed, or stopped before its first checkpoint).

    Anything else raises FileNotFoundError saying what the folder holds.
    """
    path = Path(path)
    run = _our_record(path / schema.RUN_JSON)
    if run is not None and ((path / schema.CHECKPOINT_JSON).is_file() or run.status is RunStatus.RUNNING):
        return run
    if run is not None:
        state = "complete"
    elif not _contents(path):
        state = "missing"
    else:
        state = "not a run of this pcfes version"
    raise FileNotFoundError(f"cannot resume {path}: it has no {schema.CHECKPOINT_JSON} (run is {state})")


def _occupied(path: Path) -> str:
    run = _our_record(path / schema.RUN_JSON)
    if run is None and _our_json(path / schema.CHECKPOINT_JSON) is None:
        return f"results directory {path} exists and is not a run of this pcfes version; choose another --run-id or --results-dir"
    if run is not None and run.status is RunStatus.COMPLETE:
        return f"results directory {path} already holds a complete run; pass --overwrite to replace it or choose another --run-id"
    return f"results directory {path} already holds an interrupted run; pass --resume {path} to continue it or --overwrite to replace it"


def prepare_run_dir(path: Path, *, resume: bool = False, overwrite: bool = False) -> bool:
    """Check (before any expensive work) that a run may be written to ``path``, and create it.

    Returns True when the run continues from its checkpoint. ``resume`` also restarts a run
    that was stopped before its first checkpoint (nothing of it is lost). ``overwrite`` only
    ever empties a run folder of ours. Call it holding ``folder_lock(path)``.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"run folder {path} is a file; choose another run id or results folder")
    if resume:
        resumable_run(path)
        if (path / schema.CHECKPOINT_JSON).is_file():
            remove_stale_temps(path)
            return True
        log.warning("%s was stopped before its first checkpoint: starting it again (nothing of it was lost)", path)
        _clear_run_dir(path)
    elif _contents(path):
        if not overwrite:
            raise FileExistsError(_occupied(path))
        _clear_run_dir(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / _WRITE_PROBE
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise PermissionError(f"cannot write results to {path}: {exc.strerror or exc}") from None
    return False


@dataclass(frozen=True)
class StoredRun:
    """One run loaded from disk: its record and its files."""

    path: Path
    run: RunRecord
    generations: pd.DataFrame
    candidates: pd.DataFrame
    emissions: dict[str, Any]
    duplicates: tuple[Path, ...] = ()  # other folders given with the same run (config hash + seed), dropped


def load_run(path: str | Path) -> StoredRun:
    """Load one complete run directory; raises RunLoadError saying what is wrong."""
    path = Path(path)
    missing = [name for name in schema.RUN_FILES if not (path / name).is_file()]
    if missing:
        raise RunLoadError(f"run {path} is incomplete: missing {', '.join(missing)}")
    try:
        run = RunRecord.from_json(read_json(path / schema.RUN_JSON))
    except (ValueError, KeyError, TypeError) as exc:
        raise RunLoadError(f"run {path}: {exc}") from None
    if run.status is not RunStatus.COMPLETE:
        raise RunLoadError(f"run {path} is incomplete (status {run.status.value!r}); resume it with pcfes search --resume {path}")
    generations = _read_csv(path / schema.GENERATIONS_CSV, schema.GEN_COLUMNS, run.totals.generations)
    candidates = _read_csv(path / schema.CANDIDATES_CSV, schema.CAND_COLUMNS, run.totals.candidates_evaluated)
    return StoredRun(path, run, generations, candidates, read_json(path / schema.EMISSIONS_JSON))


def _read_csv(path: Path, required: Iterable[str], rows: int | None) -> pd.DataFrame:
    """Read a run's CSV; a cut-off last line or a row count other than run.json's total is a RunLoadError."""
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raise RunLoadError(f"{path} is truncated: its last line is incomplete; the run must be redone")
    try:
        frame = pd.read_csv(io.BytesIO(raw))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise RunLoadError(f"{path} is not a valid CSV: {exc}") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise RunLoadError(f"{path} lacks column(s) {', '.join(missing)}")
    if rows is not None and len(frame) != rows:
        raise RunLoadError(
            f"{path} has {len(frame)} rows but {schema.RUN_JSON} records {rows}; the file is truncated or was edited"
        )
    return frame


def run_summary_row(stored: StoredRun) -> dict[str, Any]:
    """One flat row per run: identity, hashes, totals, result, meter sources."""
    setup, run = stored.run.setup, stored.run
    row: dict[str, Any] = {
        "run_id": setup.run_id,
        "path": str(stored.path),
        "searcher": setup.searcher,
        "supernet": setup.supernet,
        "dataset": setup.dataset,
        "seed": setup.seed,
        "protocol_hash": setup.protocol_hash,
        "checkpoint_hash": setup.checkpoint_hash,
        "config_hash": setup.config_hash,
        "device": run.environment.device.get("type"),
    }
    row.update({k: setup.searcher_params[k] for k in searchers.sweep_parameters() if k in setup.searcher_params})
    row.update(asdict(run.totals))
    if run.result is not None:
        row.update({**asdict(run.result), "best_arch": schema.arch_to_str(run.result.best_arch)})
    row.update({schema.source_column(q): source for q, source in run.environment.meter_sources.items()})
    return row


def _run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        if (p / schema.RUN_JSON).exists() or (p / schema.CHECKPOINT_JSON).exists():
            found.append(p)
        elif p.is_dir():
            found += sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
        else:
            found.append(p)
    return found


def _identity(run: RunRecord) -> tuple[str, int]:
    """What makes two run folders the same run: config hash and seed."""
    return run.setup.config_hash, run.setup.seed


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories among ``paths`` (each a run directory or a folder of them), each run once.

    A folder given twice, or a copy of a run (same config hash and seed in its run.json), is
    listed once, as the first of them.
    """
    seen: set[Any] = set()
    found = []
    for path in _run_dirs(paths):
        run = _our_record(path / schema.RUN_JSON)
        key = _identity(run) if run is not None else os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            found.append(path)
    return found


def load_records(paths: Iterable[str | Path], *, skip_bad: bool = False) -> list[StoredRun]:
    """Load runs, each once; with ``skip_bad`` an incomplete/unknown run is skipped with a warning naming it.

    A run given twice (the same folder, or a copy: same config hash and seed) would pass for
    another seed; only the first that loads is kept, the others are named in a warning and in
    its ``duplicates``.
    """
    kept: dict[tuple[str, int], StoredRun] = {}
    for path in _run_dirs(paths):
        try:
            record = load_run(path)
        except (RunLoadError, OSError) as exc:
            if not skip_bad:
                raise
            log.warning("skipping %s: %s", path, exc)
            continue
        identity = _identity(record.run)
        first = kept.setdefault(identity, record)
        if first is not record:
            log.warning(
                "dropping %s: it is the same run as %s (config %s, seed %s), not another seed",
                path, first.path, *identity,
            )
            kept[identity] = replace(first, duplicates=(*first.duplicates, Path(path)))
    return list(kept.values())


def load_runs(paths: Iterable[str | Path], *, skip_bad: bool = False) -> pd.DataFrame:
    """One row per run (see ``run_summary_row``)."""
    return pd.DataFrame([run_summary_row(r) for r in load_records(paths, skip_bad=skip_bad)])


def generations_frame(records: Iterable[StoredRun]) -> pd.DataFrame:
    """All runs' generations.csv rows, tagged with run identity columns."""
    frames = []
    for r in records:
        frame = r.generations.copy()
        for key in ("run_id", "searcher", "supernet", "seed", "protocol_hash", "checkpoint_hash"):
            frame.insert(0, key, getattr(r.run.setup, key))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
