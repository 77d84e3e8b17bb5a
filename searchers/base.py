"""Search-space operators and the Searcher interface (the registry is in ``searchers.registry``).

Searchers are pure: no data, no model, no clock. Every random draw takes an explicit
``numpy.random.Generator``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

logger = logging.getLogger(__name__)

Arch = tuple[int, ...]
Score = float

# SPOS bounds every "draw new candidates" loop by 10 tries per wanted candidate; so do we.
DRAW_ATTEMPTS_PER_CANDIDATE = 10


@dataclass(frozen=True)
class Hints:
    """What a searcher tells the evaluator: the frozen prefix, whether to importance-sample, and what it reuses.

    ``reuse_from``: archs whose prefixes the coming candidates will likely start from (evolution:
    its parents, which mutation and crossover copy). The evaluator keeps their stored prefix
    nodes; a hint never changes a score, only what reuse costs.
    """

    frozen: tuple[int, ...] = ()
    importance_rate: float | None = None
    reuse_from: tuple[tuple[int, ...], ...] = ()


@dataclass(frozen=True)
class GenerationDiagnostics:
    """Per-generation statistics for reports (paper Fig. 2)."""

    generation: int
    majority: tuple[int, ...]  # most popular choice per block among the generation's candidates
    share: tuple[float, ...]  # fraction of candidates picking that choice, per block
    unique_archs: int
    frozen_depth: int


class ConstraintError(ValueError):
    """No arch meeting the space's constraint was found within the attempt bound."""


@dataclass(frozen=True)
class CostLimit:
    """A constraint with an additive cost (e.g. MACs per image): ``fixed + sum(costs[i][arch[i]]) <= limit``.

    Unlike an opaque predicate it says exactly whether a frozen prefix can still be completed
    within the limit, so a space can tell "unreachable" from "rare" without sampling.
    """

    costs: tuple[tuple[int, ...], ...]  # per block, per choice
    limit: int
    fixed: int = 0

    def __call__(self, arch: Arch) -> bool:
        return self.cheapest(arch) <= self.limit

    def cheapest(self, prefix: Sequence[int]) -> int:
        """The least cost of an arch that starts with ``prefix`` (the cost of ``prefix`` itself if complete)."""
        k = len(prefix)
        return self.fixed + sum(self.costs[i][c] for i, c in enumerate(prefix)) + sum(min(c) for c in self.costs[k:])


def check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` if it is an int (not a bool) >= ``minimum``, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_fraction(name: str, value: object, *, low: float, high: float, open_low: bool, open_high: bool) -> float:
    """Return ``value`` as a float inside the given interval, else raise ValueError naming it."""
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        above = value > low if open_low else value >= low
        below = value < high if open_high else value <= high
        ok = above and below
    if not ok:
        interval = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return float(value)


def generation_diagnostics(
    generation: int, archs: Sequence[Arch], choices: Sequence[int], frozen_depth: int
) -> GenerationDiagnostics:
    """Majority choice per block (ties -> smallest index) and its share among ``archs``."""
    if not archs:
        raise ValueError("diagnostics need at least one arch")
    genes = np.asarray(archs, dtype=np.int64)
    majority, share = [], []
    for block, n in enumerate(choices):
        counts = np.bincount(genes[:, block], minlength=n)
        top = int(np.argmax(counts))  # argmax returns the first maximum: smallest choice on ties
        majority.append(top)
        share.append(float(counts[top]) / len(archs))
    return GenerationDiagnostics(
        generation=generation,
        majority=tuple(majority),
        share=tuple(share),
        unique_archs=len(set(archs)),
        frozen_depth=frozen_depth,
    )


class SearchSpace:
    """Per-block choice counts, an optional constraint, and seeded sample / mutate / crossover.

    Every operator keeps genes ``[:len(frozen)]`` equal to ``frozen`` and returns an arch
    that meets the constraint, redrawing at most ``max_attempts`` times before raising
    ``ConstraintError``.
    """

    def __init__(
        self,
        choices: Sequence[int],
        constraint: Callable[[Arch], bool] | None = None,
        *,
        max_attempts: int = 1000,
    ):
        if len(choices) == 0:
            raise ValueError("a search space needs at least one block")
        self.choices: tuple[int, ...] = tuple(
            check_int(f"choices[{i}]", c, 1) for i, c in enumerate(choices)
        )
        self.constraint = constraint
        self.max_attempts = check_int("max_attempts", max_attempts, 1)
        self._high = np.asarray(self.choices, dtype=np.int64)
        if constraint is not None:
            # Fail fast on a constraint nothing meets, instead of at the first sample.
            # A private fixed-seed generator keeps construction deterministic.
            try:
                self.sample(np.random.Generator(np.random.PCG64(0)))
            except ConstraintError:
                if isinstance(constraint, CostLimit):
                    raise  # its own message is exact: even the cheapest arch exceeds the limit
                raise ConstraintError(
                    f"the constraint rejected all {self.max_attempts} random archs of a space with "
                    f"choices {self.choices}; it looks unsatisfiable: loosen it, or raise max_attempts "
                    "if valid archs are just rare"
                ) from None

    @property
    def num_blocks(self) -> int:
        """Number of searchable blocks."""
        return len(self.choices)

    def __repr__(self) -> str:
        return f"SearchSpace(choices={self.choices}, constrained={self.constraint is not None})"

    def contains(self, arch: Sequence[int]) -> bool:
        """Whether ``arch`` has one in-range choice per block and meets the constraint."""
        if len(arch) != self.num_blocks:
            return False
        for c, n in zip(arch, self.choices):
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < n:
                return False
        return self.constraint is None or bool(self.constraint(tuple(int(c) for c in arch)))

    def sample(self, rng: np.random.Generator, frozen: Sequence[int] = ()) -> Arch:
        """A uniform arch (given the frozen prefix) that meets the constraint."""
        prefix = self._check_genes("frozen prefix", frozen, full=False)
        return self._draw(lambda: prefix + self._ints(rng.integers(0, self._high[len(prefix):])), prefix)

    def mutate(self, rng: np.random.Generator, parent: Sequence[int], prob: float, frozen: Sequence[int] = ()) -> Arch:
        """``parent`` with each unfrozen gene redrawn uniformly with probability ``prob`` (SPOS)."""
        genes = self._check_genes("parent", parent, full=True)
        prefix = self._check_genes("frozen prefix", frozen, full=False)
        prob = check_fraction("mutation prob", prob, low=0.0, high=1.0, open_low=False, open_high=False)
        k = len(prefix)
        tail = np.asarray(genes[k:], dtype=np.int64)

        def draw() -> Arch:
            hit = rng.random(len(tail)) < prob
            child = tail.copy()
            child[hit] = rng.integers(0, self._high[k:][hit])
            return prefix + self._ints(child)

        return self._draw(draw, prefix)

    def crossover(self, rng: np.random.Generator, a: Sequence[int], b: Sequence[int], frozen: Sequence[int] = ()) -> Arch:
        """Each unfrozen gene taken from ``a`` or ``b`` with equal probability (SPOS)."""
        first = np.asarray(self._check_genes("parent a", a, full=True), dtype=np.int64)
        second = np.asarray(self._check_genes("parent b", b, full=True), dtype=np.int64)
        prefix = self._check_genes("frozen prefix", frozen, full=False)
        k = len(prefix)

        def draw() -> Arch:
            take_b = rng.integers(0, 2, size=self.num_blocks - k).astype(bool)
            return prefix + self._ints(np.where(take_b, second[k:], first[k:]))

        return self._draw(draw, prefix)

    def _draw(self, propose: Callable[[], Arch], prefix: Arch) -> Arch:
        if isinstance(self.constraint, CostLimit) and (least := self.constraint.cheapest(prefix)) > self.constraint.limit:
            raise ConstraintError(
                f"no arch with frozen prefix {prefix} meets the cost limit {self.constraint.limit:,}: "
                f"the cheapest costs {least:,}"
            )
        for _ in range(self.max_attempts):
            arch = propose()
            if self.constraint is None or self.constraint(arch):
                return arch
        raise ConstraintError(
            f"no arch with frozen prefix {prefix} met the constraint in {self.max_attempts} draws; "
            "loosen the constraint or raise SearchSpace(max_attempts=...)"
        )

    def _check_genes(self, what: str, genes: Sequence[int], *, full: bool) -> Arch:
        n = len(genes)
        if (full and n != self.num_blocks) or n > self.num_blocks:
            want = f"{self.num_blocks}" if full else f"at most {self.num_blocks}"
            raise ValueError(f"{what} {tuple(genes)} has {n} genes; this space needs {want}")
        for i, (c, high) in enumerate(zip(genes, self.choices)):
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < high:
                raise ValueError(f"{what} {tuple(genes)}: gene {i} is {c!r}, not a choice in 0..{high - 1}")
        return tuple(int(c) for c in genes)

    @staticmethod
    def _ints(values: np.ndarray) -> Arch:
        return tuple(int(v) for v in values)


@dataclass(frozen=True)
class NoParams:
    """Parameters of a searcher that takes none."""


class Searcher(ABC):
    """Synchronous ask/tell searcher; the caller (runner) owns the loop and the clock.

    Contract: each ``ask()`` returns distinct archs never asked before in this search; the
    caller scores them all and calls ``tell`` with exactly those (arch, score) pairs; then
    ``hints()`` describes the next generation; repeat until ``done()``. ``ask()`` returns an
    empty list only when ``done()`` is True. Every asked arch starts with ``hints().frozen``;
    ``best()`` is a told arch with its told score. ``state_dict()`` is JSON (the runner writes
    it after every tell) and a searcher loaded from it asks what the original would have. A
    searcher's parameters are the fields of its frozen dataclass ``Params``; ``get_searcher``
    validates names against them and calls ``cls(space, seed, cls.Params(**params))``.
    """

    name: str = ""
    Params: ClassVar[type] = NoParams

    def __init__(self, space: SearchSpace, seed: int, params: Any = None):
        if not isinstance(space, SearchSpace):
            raise TypeError(f"space must be a SearchSpace, got {type(space).__name__}")
        self.space = space
        self.seed = check_int("seed", seed, 0)
        self.params = self.Params() if params is None else params
        if not isinstance(self.params, self.Params):
            raise TypeError(f"{type(self).__name__} takes {self.Params.__name__} params, got {type(self.params).__name__}")
        self.rng = np.random.Generator(np.random.PCG64(self.seed))

    @abstractmethod
    def ask(self) -> list[Arch]:
        """The next generation's candidates (never an arch told before)."""

    @abstractmethod
    def tell(self, scored: Sequence[tuple[Arch, Score]]) -> None:
        """Scores for every arch of the last ``ask``."""

    def hints(self) -> Hints:
        """Frozen prefix and sampling rate for the next ``ask``."""
        return Hints()

    @abstractmethod
    def done(self) -> bool: ...

    @abstractmethod
    def best(self) -> tuple[Arch, Score]: ...

    @property
    @abstractmethod
    def generation(self) -> int:
        """Number of generations told so far."""

    def diagnostics(self) -> GenerationDiagnostics | None:
        """Statistics of the last told generation, or None before the first tell."""
        return None

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state, RNG included."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class GenerationalSearcher(Searcher):
    """Bookkeeping shared by generation-based searchers: dedup, ask/tell checks, best, state.

    Subclasses implement ``propose`` (the next batch, built with ``draw_new``) and may extend
    ``on_tell`` (e.g. choose the answer with ``set_best``), ``extra_state`` and
    ``load_extra_state``. ``told`` holds every told arch with its score.
    """

    def __init__(self, space: SearchSpace, seed: int, params: Any = None):
        super().__init__(space, seed, params)
        self._scores: dict[Arch, Score] = {}  # every told arch, in first-seen order
        self._generation = 0
        self._next: list[Arch] | None = None  # drawn lazily, so done() can see an empty batch
        self._pending: list[Arch] | None = None
        self._best: tuple[Arch, Score] | None = None
        self._diagnostics: GenerationDiagnostics | None = None

    @abstractmethod
    def propose(self) -> list[Arch]:
        """The next batch of new archs (build it with ``draw_new``); empty when the search is over."""

    def on_tell(self, scored: list[tuple[Arch, Score]]) -> None:
        """Update search state after a generation was told (``scored`` in ask order)."""

    def extra_state(self) -> dict[str, Any]:
        """The subclass's own state for ``state_dict``: JSON values only (lists, not tuples)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what ``extra_state`` saved (``state`` is the whole ``state_dict``, read back from JSON)."""

    @property
    def told(self) -> Mapping[Arch, Score]:
        """Every told arch and its score, in the order first told (read-only)."""
        return MappingProxyType(self._scores)

    def set_best(self, arch: Arch) -> None:
        """Make the told ``arch`` the answer of ``best()`` (by default the highest-scored told arch)."""
        if arch not in self._scores:
            raise ValueError(f"{self.name}: set_best({arch}) names an arch that was never told; the answer must be a told arch")
        self._best = (arch, self._scores[arch])

    def draw_new(self, draw: Callable[[], Arch], count: int, batch: dict[Arch, None]) -> int:
        """Add up to ``count`` archs from ``draw()`` that are neither told nor in ``batch``.

        Tries at most ``DRAW_ATTEMPTS_PER_CANDIDATE * count`` draws (SPOS), so an exhausted
        space gives a smaller batch instead of an endless loop. Returns how many were added.
        """
        added = 0
        for _ in range(DRAW_ATTEMPTS_PER_CANDIDATE * count):
            if added == count:
                break
            try:
                arch = draw()
            except ConstraintError as err:
                logger.warning("%s: stopped drawing candidates: %s", self.name, err)
                break
            if arch not in self._scores and arch not in batch:
                batch[arch] = None
                added += 1
        return added

    def _upcoming(self) -> list[Arch]:
        if self._next is None:
            self._next = self.propose()
        return self._next

    def ask(self) -> list[Arch]:
        if self._pending is not None:
            raise RuntimeError(f"{self.name}: ask() called again before tell() of the previous generation")
        batch = self._upcoming()
        if batch:
            self._pending = batch
        return list(batch)

    def tell(self, scored: Sequence[tuple[Arch, Score]]) -> None:
        if self._pending is None:
            raise RuntimeError(f"{self.name}: tell() without a pending ask()")
        given: dict[Arch, Score] = {}
        for arch, score in scored:
            key = tuple(int(c) for c in arch)
            if key in given:
                raise ValueError(f"{self.name}: arch {key} told twice")
            if not isinstance(score, (int, float, np.number)) or not math.isfinite(score):
                raise ValueError(f"{self.name}: score of arch {key} must be a finite number, got {score!r}")
            given[key] = float(score)
        if given.keys() != set(self._pending):
            missing = [a for a in self._pending if a not in given][:3]
            extra = [a for a in given if a not in set(self._pending)][:3]
            raise ValueError(
                f"{self.name}: tell() must score exactly the {len(self._pending)} archs of the last ask(); "
                f"missing e.g. {missing}, not asked e.g. {extra}"
            )
        # Ask order, not tell order, so ties and history do not depend on the caller.
        ordered = [(arch, given[arch]) for arch in self._pending]
        self._pending = None
        for arch, score in ordered:
            self._scores[arch] = score
            if self._best is None or score > self._best[1]:
                self._best = (arch, score)
        self._diagnostics = generation_diagnostics(
            self._generation, [a for a, _ in ordered], self.space.choices, len(self.hints().frozen)
        )
        self._generation += 1
        self._next = None
        self.on_tell(ordered)

    def done(self) -> bool:
        return self._pending is None and not self._upcoming()

    def best(self) -> tuple[Arch, Score]:
        if self._best is None:
            raise RuntimeError(f"{self.name}: best() before any tell()")
        return self._best

    @property
    def generation(self) -> int:
        return self._generation

    def diagnostics(self) -> GenerationDiagnostics | None:
        return self._diagnostics

    def state_dict(self) -> dict[str, Any]:
        if self._pending is not None:
            raise RuntimeError(f"{self.name}: state_dict() between ask() and tell(); checkpoint after tell()")
        upcoming = self._upcoming()  # draw now, so a resumed searcher asks the same batch
        diag = self._diagnostics
        return {
            "searcher": self.name,
            "params": dataclasses.asdict(self.params),
            "choices": list(self.space.choices),
            "seed": self.seed,
            "rng": self.rng.bit_generator.state,
            "generation": self._generation,
            "scores": [[list(a), s] for a, s in self._scores.items()],
            "best": None if self._best is None else [list(self._best[0]), self._best[1]],
            "next": [list(a) for a in upcoming],
            "diagnostics": None if diag is None else dataclasses.asdict(diag),
            **self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        expected = {
            "searcher": self.name,
            "params": dataclasses.asdict(self.params),
            "choices": list(self.space.choices),
        }
        for key, value in expected.items():
            if state.get(key) != value:
                raise ValueError(
                    f"state was saved with {key}={state.get(key)!r} but this searcher has {value!r}; "
                    "build the searcher with the same name, params and space before loading"
                )
        self.rng.bit_generator.state = state["rng"]
        self._generation = int(state["generation"])
        self._scores = {tuple(a): float(s) for a, s in state["scores"]}
        self._best = None if state["best"] is None else (tuple(state["best"][0]), float(state["best"][1]))
        self._next = [tuple(a) for a in state["next"]]
        self._pending = None
        diag = state["diagnostics"]
        self._diagnostics = None if diag is None else GenerationDiagnostics(
            generation=diag["generation"],
            majority=tuple(diag["majority"]),
            share=tuple(diag["share"]),
            unique_archs=diag["unique_archs"],
            frozen_depth=diag["frozen_depth"],
        )
        self.load_extra_state(state)
