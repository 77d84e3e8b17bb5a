"""Frozen run configuration: evaluation protocol, reuse settings, run settings; TOML + overrides."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import InitVar, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

BnMode = Literal["ema", "exact"]
DTYPES = ("float32", "bfloat16", "float16")


def content_hash(obj: Any, length: int = 16) -> str:
    """Stable short sha256 of a JSON-serialisable object (key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class EvalProtocol:
    """How a candidate is scored: fixed calibration batches + fixed validation set (DESIGN.md).

    Everything here changes scores, so it all goes into ``protocol_hash``.
    """

    dataset: str = "fashion16"
    calib_batches: int = 4
    calib_batch_size: int = 128
    val_size: int = 2000  # first images of the validation split; 0 = the whole split
    eval_batch_size: int = 500
    # "exact" (cumulative average) by default: with SPOS's momentum 0.1, 4 calibration batches
    # would keep 0.9**4 = 66% of the reset stats (mean 0, var 1) and accuracy collapses
    # (spos-tiny: best candidate 0.20 against 0.77 training accuracy). SPOS's "ema" needs its
    # 200 batches (0.9**200 ~ 7e-10), which the GPU protocol uses.
    bn_mode: BnMode = "exact"
    bn_momentum: float = 0.1  # used by bn_mode "ema" (SPOS); "exact" is a cumulative average
    augment: bool = True  # SPOS-style augmentation of the calibration batches
    dtype: str = "float32"
    device: str = "cpu"
    channels_last: bool = True
    seed: int = 0
    importance_alpha: float = 0.1  # q(x) = (1-a) loss/sum(loss) + a/N keeps every image drawable
    importance_refresh: bool = False  # redraw the subset at every further freeze

    def __post_init__(self) -> None:
        _check(self.calib_batches >= 1 and self.calib_batch_size >= 1, "calibration needs >= 1 batch of >= 1 image")
        _check(self.val_size >= 0, f"val_size must be >= 0 (0 = whole split), got {self.val_size}")
        _check(self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        _check(self.bn_mode in ("ema", "exact"), f"bn_mode must be 'ema' or 'exact', got {self.bn_mode!r}")
        _check(0 < self.bn_momentum <= 1, f"bn_momentum must be in (0, 1], got {self.bn_momentum}")
        _check(self.dtype in DTYPES, f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        _check(0 < self.importance_alpha <= 1, f"importance_alpha must be in (0, 1], got {self.importance_alpha}")

    def hash(self) -> str:
        return content_hash(dataclasses.asdict(self))


ReuseLevel = Literal["none", "frozen", "prefix"]
REUSE_LEVELS: tuple[ReuseLevel, ...] = ("none", "frozen", "prefix")
AUTO_BUDGET = "auto"


@dataclass(frozen=True)
class ReuseConfig:
    """How much exactly reusable work the evaluator keeps (harness/evaluation).

    ``level``: "none" scores every candidate from the input; "frozen" reuses only the
    searcher's frozen prefix (the paper's mechanism); "prefix" evaluates each generation as a
    prefix tree and keeps a byte-budgeted store of prefix nodes across generations.
    ``budget_bytes``: an int >= 0 or "auto" (a share of free device / available host memory,
    harness.evaluation.budget). Reuse never changes a score, so it stays out of the protocol
    hash; it is part of the config hash (run ids differ per level).
    """

    level: ReuseLevel = "prefix"
    budget_bytes: int | Literal["auto"] = AUTO_BUDGET
    location: Literal["device", "host"] = "device"

    def __post_init__(self) -> None:
        _check(self.level in REUSE_LEVELS, f"reuse level must be one of {', '.join(REUSE_LEVELS)}, got {self.level!r}")
        budget = self.budget_bytes
        _check(
            budget == AUTO_BUDGET or (isinstance(budget, int) and not isinstance(budget, bool) and budget >= 0),
            f"reuse budget_bytes must be an integer >= 0 or {AUTO_BUDGET!r}, got {budget!r}",
        )
        _check(self.location in ("device", "host"), f"reuse location must be 'device' or 'host', got {self.location!r}")


@dataclass(frozen=True)
class CacheConfig:
    """Deprecated spelling of ``ReuseConfig`` for harness/bench.py; remove once it uses ReuseConfig.

    It described the frozen-prefix cache: ``enabled`` is reuse level "frozen", disabled "none".
    """

    enabled: bool = True
    budget_bytes: int = 2 * 1024**3
    location: Literal["device", "host"] = "device"

    def as_reuse(self) -> ReuseConfig:
        """The ReuseConfig this cache setting stands for."""
        return ReuseConfig("frozen" if self.enabled else "none", self.budget_bytes, self.location)

    @classmethod
    def from_reuse(cls, reuse: ReuseConfig) -> CacheConfig | None:
        """The CacheConfig of a reuse setting, or None where it has none (level "prefix", budget "auto")."""
        if reuse.level == "prefix" or reuse.budget_bytes == AUTO_BUDGET:
            return None
        return cls(reuse.level == "frozen", int(reuse.budget_bytes), reuse.location)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one search run."""

    supernet: str = ""  # "" = supernets.DEFAULT_SUPERNET
    supernet_overrides: Mapping[str, Any] = field(default_factory=dict)
    checkpoint: str = ""  # "" = checkpoints/<supernet>-<dataset>.pt (trained on first use)
    data_root: str = ""
    searcher: str = "pcf-es"
    searcher_params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    country_iso_code: str = "USA"
    results_dir: str = "results"
    run_id: str = ""  # "" = derived from searcher, supernet, seed and config hash
    protocol: EvalProtocol = field(default_factory=EvalProtocol)
    reuse: ReuseConfig = field(default_factory=ReuseConfig)
    # Deprecated: harness/bench.py still passes ``cache=CacheConfig(...)``; it sets ``reuse``.
    cache: InitVar[CacheConfig | None] = None

    def __post_init__(self, cache: CacheConfig | None) -> None:
        if cache is not None:
            object.__setattr__(self, "reuse", cache.as_reuse())

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def hash(self) -> str:
        """Hash of what determines the results (output locations excluded)."""
        data = self.to_dict()
        for key in ("results_dir", "run_id", "data_root"):
            data.pop(key)
        return content_hash(data)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


_NESTED = {"protocol": EvalProtocol, "reuse": ReuseConfig}
_MAPPINGS = ("supernet_overrides", "searcher_params")


def run_config_from_dict(data: Mapping[str, Any], base: RunConfig | None = None) -> RunConfig:
    """Build a RunConfig from nested plain data; unknown keys are errors naming the valid ones."""
    base = base or RunConfig()
    top = {f.name for f in fields(RunConfig)}
    if "cache" in data:
        raise ValueError(
            "config section [cache] is now [reuse] (level = \"none\" | \"frozen\" | \"prefix\", budget_bytes, "
            "location); [cache] enabled = false is level = \"none\""
        )
    reject_unknown(data, top, "run config")
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key in _NESTED:
            if not isinstance(value, Mapping):
                raise ValueError(f"config section [{key}] must be a table, got {value!r}")
            cls = _NESTED[key]
            reject_unknown(value, {f.name for f in fields(cls)}, f"[{key}]")
            changes[key] = dataclasses.replace(getattr(base, key), **value)
        elif key in _MAPPINGS:
            if not isinstance(value, Mapping):
                raise ValueError(f"config section [{key}] must be a table, got {value!r}")
            changes[key] = {**getattr(base, key), **value}
        else:
            changes[key] = value
    try:
        return dataclasses.replace(base, **changes)
    except TypeError as exc:
        raise ValueError(f"invalid run config: {exc}") from exc


def reject_unknown(data: Mapping[str, Any], valid: Iterable[str], where: str) -> None:
    """Raise naming the unknown keys of a config table and the valid ones."""
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)} in {where}; valid: {', '.join(sorted(valid))}")


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML run config, with a clear error for a missing or malformed file."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {path} is not valid TOML: {exc}") from None


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Turn ``["protocol.val_size=1000", "searcher=evolution"]`` into nested plain data."""
    result: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word is a string: --set searcher=evolution
        node = result
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {key}: {part} is not a section")
        node[leaf] = value
    return result


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two nested plain mappings (``update`` wins)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
