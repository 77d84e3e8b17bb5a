"""Frozen run configuration: evaluation protocol, reuse settings, run settings; TOML + overrides."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

BnMode = Literal["ema", "exact"]
DTYPES = ("float32", "bfloat16", "float16")
DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")


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
        check_fields(self, "protocol")
        for key in ("calib_batches", "calib_batch_size", "eval_batch_size"):
            _check(getattr(self, key) >= 1, f"protocol.{key} must be >= 1, got {getattr(self, key)}")
        _check(self.val_size >= 0, f"protocol.val_size must be >= 0 (0 = the whole split), got {self.val_size}")
        _check(self.seed >= 0, f"protocol.seed must be >= 0, got {self.seed}")
        _check(0 < self.bn_momentum <= 1, f"protocol.bn_momentum must be in (0, 1], got {self.bn_momentum}")
        _check(self.dtype in DTYPES, f"protocol.dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        _check(
            DEVICE_PATTERN.fullmatch(self.device) is not None,
            f"protocol.device must be 'cpu' or 'cuda[:index]', got {self.device!r}",
        )
        _check(0 < self.importance_alpha <= 1, f"protocol.importance_alpha must be in (0, 1], got {self.importance_alpha}")

    def for_split(self, val_images: int) -> EvalProtocol:
        """This protocol on a validation split of ``val_images``: val_size 0 becomes that count, so both hash alike."""
        if self.val_size > val_images:
            raise ValueError(
                f"protocol.val_size {self.val_size} exceeds the {val_images} validation images of {self.dataset}; "
                f"use at most {val_images} (0 = all of them)"
            )
        return dataclasses.replace(self, val_size=self.val_size or val_images)

    def hash(self) -> str:
        return content_hash(dataclasses.asdict(self))

    def calibration_batches(self, train_x: torch.Tensor) -> list[torch.Tensor]:
        """The BN calibration batches: ``calib_batches`` x ``calib_batch_size`` training images drawn from ``seed``."""
        # Imported here: a protocol is read and hashed where torch is not loaded (the CLI's start).
        from harness.datasets.calibration import draw_calibration_batches

        return draw_calibration_batches(train_x, self.calib_batches, self.calib_batch_size, self.seed, augment=self.augment)


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
        check_fields(self, "reuse")
        _check(self.budget_bytes == AUTO_BUDGET or self.budget_bytes >= 0, f"reuse.budget_bytes must be >= 0, got {self.budget_bytes}")


@dataclass(frozen=True)
class CarbonConfig:
    """CodeCarbon's CO2 estimate. ``enabled = false`` (``--no-carbon``) records it unavailable with the reason;
    ``tracking_mode`` "process" counts this run's share of a shared machine, "machine" all of it. It measures
    and never changes a result, so it stays out of the config hash (like ``results_dir``)."""

    enabled: bool = True
    tracking_mode: Literal["process", "machine"] = "process"

    def __post_init__(self) -> None:
        check_fields(self, "carbon")


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
    carbon: CarbonConfig = field(default_factory=CarbonConfig)
    # Largest MACs per image a searched arch may have: "auto" = the supernet's registered limit
    # (the paper's 330 M at real size, the share-matched limit at CPU scale, none elsewhere).
    mac_limit: int | Literal["auto", "none"] = "auto"

    def __post_init__(self) -> None:
        check_fields(self)
        _check(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        _check(not isinstance(self.mac_limit, int) or self.mac_limit >= 1,
               f"mac_limit must be a positive number of MACs per image, \"auto\" or \"none\", got {self.mac_limit}")
        if self.run_id:
            check_run_id(self.run_id)
        # Normalised here, before anything hashes it: "fra" and " FRA " are one grid, one run id.
        object.__setattr__(self, "country_iso_code", self.country_iso_code.strip().upper())

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def hash(self) -> str:
        """Hash of what determines the results (output locations excluded)."""
        data = self.to_dict()
        for key in ("results_dir", "run_id", "data_root", "carbon"):
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


def check_run_id(run_id: str) -> str:
    """A run id is one plain folder name: not empty, no path separator, no leading dot (so not . or ..)."""
    _check(
        bool(run_id) and run_id == run_id.strip() and not run_id.startswith(".")
        and not any(sep in run_id for sep in ("/", "\\", "\0")),
        f"run id {run_id!r} is not a plain folder name; use letters, digits, - and _ (no /, no leading dot, not empty)",
    )
    return run_id


def check_fields(obj: Any, section: str = "") -> None:
    """Check a frozen dataclass's values against their annotations, naming the key (``section.field``).

    Understands int, float, bool, str, Literal, Mapping, unions and nested dataclasses; an int
    given for a float field is stored as a float, so 1 and 1.0 hash alike.
    """
    hints = _type_hints(type(obj))
    for f in fields(obj):
        value, expected = getattr(obj, f.name), hints[f.name]
        if not _matches(value, expected):
            key = f"{section}.{f.name}" if section else f.name
            raise ValueError(f"{key} must be {_describe(expected)}, got {value!r}")
        if expected is float and isinstance(value, int):
            object.__setattr__(obj, f.name, float(value))


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _matches(value: Any, expected: Any) -> bool:
    origin = typing.get_origin(expected)
    if expected is Any:
        return True
    if origin is Literal:
        return any(type(value) is type(option) and value == option for option in typing.get_args(expected))
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, option) for option in typing.get_args(expected))
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, origin or expected)


def _describe(expected: Any) -> str:
    origin = typing.get_origin(expected)
    if origin is Literal:
        return " or ".join(repr(option) for option in typing.get_args(expected))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(option) for option in typing.get_args(expected))
    names = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string", type(None): "none"}
    if expected in names:
        return names[expected]
    return "a table" if origin is Mapping or dataclasses.is_dataclass(expected) else f"a {getattr(expected, '__name__', expected)}"


_NESTED = {"protocol": EvalProtocol, "reuse": ReuseConfig, "carbon": CarbonConfig}
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
    except IsADirectoryError:
        raise IsADirectoryError(f"config file {path} is a folder; name a TOML file") from None
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
