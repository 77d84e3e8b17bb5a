"""The searcher registry: one typed entry per searcher, with what the harness needs to know about it.

``register_searcher(name, cls, **metadata)`` (or ``@register_searcher(name, **metadata)``) adds a
``SearcherEntry``; nothing else keeps lists of searcher names. The metadata says which searcher
savings are measured against (``baseline``), which ones freeze a prefix, the paper's settings per
search-space family (``presets``), how a searcher gets the baseline's evaluation budget
(``matched_budget``), whether ``compare`` runs it by default, the colour it declares for figures
(``harness.report.style`` gives the others a free one), and which of its ``Params`` fields hold its
generation count, its importance-sampling rate, its majority-share threshold H and the parameters a
sensitivity sweep may vary. ``paper_method`` marks the paper's proposed searcher (at most one): the
report draws it beside the baseline in the majority-share heatmap (paper Fig. 2) and checks the
premises against its preset H. The harness reads these facts, never a searcher's name, so a plugin
that declares them gets the same treatment as the built-in searchers.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from searchers.base import Searcher, SearchSpace

logger = logging.getLogger(__name__)

# (the baseline's parameters with defaults, this searcher's given parameters) -> parameters to add
MatchedBudget = Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any]]

# The paper's main setting: its presets apply to a space outside the paper's families.
MAIN_FAMILY = "spos"
# Names go into run ids (folder names) and comma-separated --searchers lists.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")


@dataclass(frozen=True)
class SearcherEntry:
    """A registered searcher class and its metadata (see the module docstring)."""

    name: str
    cls: type[Searcher]
    description: str
    origin: str  # the module that defines ``cls``
    baseline: bool = False
    freezing: bool = False
    # family ("spos" | "fairnas" | "greedynas") -> parameter -> value (see ``preset``)
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    matched_budget: MatchedBudget | None = None
    in_default_compare: bool = False
    colour: str | None = None  # declared "#RRGGBB"; None: the report's style picks a free one
    generations_param: str | None = None  # the Params field of the generation count (progress total)
    importance_rate_param: str | None = None  # the Params field of the importance-sampling rate
    threshold_param: str | None = None  # the Params field of the majority-share threshold H
    # Params field -> its label in sweep reports, e.g. "threshold" -> "threshold H"
    sweepable: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    paper_method: bool = False

    @property
    def uses_importance_sampling(self) -> bool:
        return self.importance_rate_param is not None

    def generation_count(self, params: Any) -> int | None:
        """How many generations a search with ``params`` runs; None when the searcher declares no count."""
        return None if self.generations_param is None else getattr(params, self.generations_param)

    def importance_rate(self, params: Any) -> float | None:
        """The importance-sampling rate ``params`` set; None for a searcher that does not sample."""
        return None if self.importance_rate_param is None else getattr(params, self.importance_rate_param)

    def threshold(self, family: str | None) -> float | None:
        """The preset majority-share threshold H for a search-space family; None without a declared threshold."""
        return None if self.threshold_param is None else float(self.preset(family)[self.threshold_param])

    @property
    def builtin(self) -> bool:
        """Whether the searcher ships with this package."""
        return self.origin.split(".")[0] == "searchers"

    def defaults(self) -> dict[str, Any]:
        """The parameters the searcher accepts, with their defaults."""
        return dataclasses.asdict(self.cls.Params())

    def preset(self, family: str | None) -> dict[str, Any]:
        """The paper's settings of this searcher for a search-space family; another family or None gets MAIN_FAMILY's."""
        return dict(self.presets.get(family if family in self.presets else MAIN_FAMILY, {}))


_REGISTRY: dict[str, SearcherEntry] = {}

S = TypeVar("S", bound=type[Searcher])


def register_searcher(
    name: str,
    cls: S | None = None,
    *,
    description: str | None = None,
    baseline: bool = False,
    freezing: bool = False,
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    matched_budget: MatchedBudget | None = None,
    in_default_compare: bool = False,
    colour: str | None = None,
    generations_param: str | None = None,
    importance_rate_param: str | None = None,
    threshold_param: str | None = None,
    sweepable: Mapping[str, str] | None = None,
    paper_method: bool = False,
) -> Any:
    """Register a Searcher class under ``name``: ``@register_searcher("x", ...)`` or ``register_searcher("x", cls, ...)``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"searcher name {name!r} must start with a letter or digit and hold only letters, digits, '.', '_' "
            "or '-' (it goes into run ids and comma-separated lists)"
        )
    if colour is not None and not (isinstance(colour, str) and _COLOUR.fullmatch(colour)):
        raise ValueError(f"searcher {name!r}: colour must be a '#RRGGBB' string, got {colour!r}")

    def add(klass: S) -> S:
        if not (isinstance(klass, type) and issubclass(klass, Searcher)):
            raise TypeError(f"only Searcher subclasses can be registered, got {klass!r}")
        params = klass.Params
        if not (dataclasses.is_dataclass(params) and params.__dataclass_params__.frozen):
            raise TypeError(f"{klass.__name__}.Params must be a frozen dataclass")
        if name in _REGISTRY:
            raise ValueError(f"searcher {name!r} is already registered, by {_REGISTRY[name].origin}; pick another name")
        if baseline and (current := baseline_name(missing_ok=True)):
            raise ValueError(f"searcher {name!r} cannot be the baseline: {current!r} is ({_REGISTRY[current].origin})")
        if paper_method and (current := paper_method_name(missing_ok=True)):
            raise ValueError(f"searcher {name!r} cannot be the paper's method: {current!r} is ({_REGISTRY[current].origin})")
        declared = [("generations_param", generations_param), ("importance_rate_param", importance_rate_param),
                    ("threshold_param", threshold_param), *(("sweepable", p) for p in sweepable or {})]
        _check_fields(name, klass, [(role, f) for role, f in declared if f is not None])
        labels = _checked_sweep_labels(name, sweepable or {})
        if matched_budget is not None and not callable(matched_budget):
            raise TypeError(f"searcher {name!r}: matched_budget must be callable, got {matched_budget!r}")
        checked = {family: _checked_preset(name, klass, family, values) for family, values in (presets or {}).items()}
        sharing = [e.name for e in _REGISTRY.values() if colour is not None and (e.colour or "").upper() == colour.upper()]
        if sharing:
            logger.warning("searcher %r shares colour %s with %r", name, colour, sharing[0])
        klass.name = name
        _REGISTRY[name] = SearcherEntry(
            name=name,
            cls=klass,
            description=description if description is not None else _first_line(klass.__doc__),
            origin=klass.__module__,
            baseline=baseline,
            freezing=freezing,
            presets=MappingProxyType(checked),
            matched_budget=matched_budget,
            in_default_compare=in_default_compare,
            colour=colour,
            generations_param=generations_param,
            importance_rate_param=importance_rate_param,
            threshold_param=threshold_param,
            sweepable=MappingProxyType(labels),
            paper_method=paper_method,
        )
        return klass

    return add if cls is None else add(cls)


def _checked_preset(name: str, klass: type[Searcher], family: str, values: Mapping[str, Any]) -> Mapping[str, Any]:
    fields = {f.name for f in dataclasses.fields(klass.Params)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"searcher {name!r}: presets for {family!r} set {', '.join(unknown)}, which {klass.Params.__name__} lacks")
    try:
        klass.Params(**values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"searcher {name!r}: presets for {family!r} are invalid: {exc}") from None
    return MappingProxyType(dict(values))


def _check_fields(name: str, klass: type[Searcher], declared: list[tuple[str, str]]) -> None:
    fields = {f.name for f in dataclasses.fields(klass.Params)}
    for role, field_name in declared:
        if field_name not in fields:
            raise ValueError(f"searcher {name!r}: {role} names {field_name!r}, which {klass.Params.__name__} lacks")


def _checked_sweep_labels(name: str, sweepable: Mapping[str, str]) -> dict[str, str]:
    """The sweep labels, each agreeing with any other searcher's label for the same parameter."""
    known = sweep_parameters()
    for parameter, label in sweepable.items():
        if not (isinstance(label, str) and label.strip()):
            raise ValueError(f"searcher {name!r}: sweepable {parameter!r} needs a label, got {label!r}")
        if known.get(parameter, label) != label:
            raise ValueError(
                f"searcher {name!r}: sweepable {parameter!r} is labelled {label!r}, but another searcher labels it "
                f"{known[parameter]!r}; one parameter name has one label in sweep reports"
            )
    return dict(sweepable)


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n", 1)[0]


def registered_searchers() -> Mapping[str, SearcherEntry]:
    """Every registered searcher by name, in registration order (read-only)."""
    return MappingProxyType(_REGISTRY)


def searcher_entry(name: str) -> SearcherEntry:
    """The entry registered as ``name``; an unknown name is an error listing the registered ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown searcher {name!r}; available: {', '.join(available())}") from None


def available() -> list[str]:
    """Registered searcher names, sorted."""
    return sorted(_REGISTRY)


def baseline_name(*, missing_ok: bool = False) -> str:
    """The searcher whose runs savings are measured against (``evolution``)."""
    return _holder(lambda e: e.baseline, "the baseline", "evolution", missing_ok)


def paper_method_name(*, missing_ok: bool = False) -> str:
    """The paper's proposed searcher (``pcf-es``): drawn beside the baseline, its preset H checks the premises."""
    return _holder(lambda e: e.paper_method, "the paper's method", "pcf-es", missing_ok)


def _holder(holds: Callable[[SearcherEntry], bool], role: str, builtin: str, missing_ok: bool) -> str:
    """The one searcher holding a role; "" or an error when none does."""
    for entry in _REGISTRY.values():
        if holds(entry):
            return entry.name
    if missing_ok:
        return ""
    raise ValueError(f"no searcher is registered as {role}; import searchers (it registers {builtin})")


def sweep_parameters() -> Mapping[str, str]:
    """Every parameter some registered searcher declares sweepable, with its label, in registration order."""
    found: dict[str, str] = {}
    for entry in _REGISTRY.values():
        for parameter, label in entry.sweepable.items():
            found.setdefault(parameter, label)
    return MappingProxyType(found)


def default_compare() -> tuple[str, ...]:
    """The searchers ``compare`` runs when none are named, in registration order."""
    return tuple(e.name for e in _REGISTRY.values() if e.in_default_compare)


def display_rank(name: str) -> int:
    """Position in tables and legends: the baseline first, then registration order, unregistered names last."""
    if name == baseline_name(missing_ok=True):
        return 0
    names = list(_REGISTRY)
    return 1 + names.index(name) if name in _REGISTRY else 1 + len(names)


def searcher_defaults(name: str) -> dict[str, Any]:
    """The parameters a registered searcher accepts, with their defaults."""
    return searcher_entry(name).defaults()


def get_searcher(name: str, space: SearchSpace, seed: int, **params: Any) -> Searcher:
    """Build the searcher registered as ``name``; ``params`` override its ``Params`` defaults."""
    entry = searcher_entry(name)
    valid = list(entry.defaults())
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"searcher {name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"valid parameters: {', '.join(valid) or '(none)'}"
        )
    return entry.cls(space, seed, entry.cls.Params(**params))
