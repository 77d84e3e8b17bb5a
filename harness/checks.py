"""`pcfes check searcher NAME` / `pcfes check supernet NAME`: the plugin contract, check by check (docs/plugins.md).

The searcher runs to ``done()`` on an exact integer landscape (``harness.bench.landscape``) in the
runner's order (hints, ask, tell, checkpoint), through its public methods only, so every verdict
is the same on every machine. What is checked is what the runner and the evaluator rely on:
asks are non-empty until done, distinct, never repeated, inside the space (constraint included)
and keep the hinted frozen prefix; hints are valid; ``state_dict()`` after every tell is JSON
(the runner checkpoints every generation) and a copy loaded from it asks what the original asks;
the same seed gives the same asks; ``best()`` is a told arch with its told score.

The supernet is checked on seeded random weights, inputs and archs for what prefix reuse and the
MAC accounting rely on: JSON defaults, construction on the meta device, equal output shapes within
a block, blocks that leave their input untouched, a bit-exact split forward, ``macs()`` equal
to torch's FLOP counter (Conv2d and Linear FLOPs / 2) for whole paths and their parts, and the
evaluator's unit-by-unit direct calls (``harness.evaluation.units``) equal to ``forward``.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

import supernets
from harness.bench.landscape import Landscape
from harness.evaluation.units import UnitRunner, head_unit
from searchers import Arch, Hints, Searcher, SearchSpace

MakeSearcher = Callable[[SearchSpace, int], Searcher]
MakeSupernet = Callable[..., supernets.Supernet]

CHECK_CHOICES = (4,) * 12
CHECK_MAX_GENES_SUM = 24  # rejects about a tenth of the space: a searcher must keep to the constraint
MAX_GENERATIONS = 10_000

RUNS_TO_DONE = "runs to done(), asking something every generation"
IN_SPACE = "asks are in the space and meet its constraint"
DISTINCT = "asks are distinct and never repeat a told arch"
FROZEN = "asks keep the hinted frozen prefix"
HINTS = "hints are valid (frozen prefix in the space, importance rate in (0, 1], reuse_from archs of the space)"
STATE_JSON = "state_dict() after every tell is JSON"
RESUMES = "a copy loaded from state_dict() asks the same"
SEEDED = "the same seed gives the same asks"
BEST = "best() is a told arch with its told score"
SEARCHER_CHECKS = (RUNS_TO_DONE, IN_SPACE, DISTINCT, FROZEN, HINTS, STATE_JSON, RESUMES, SEEDED, BEST)


@dataclass(frozen=True)
class CheckResult:
    """One contract check: its name, whether it held, and the first thing that was wrong."""

    name: str
    passed: bool
    problem: str = ""

    def format(self) -> str:
        """``pass  name`` or ``FAIL  name: what was wrong``."""
        return f"pass  {self.name}" if self.passed else f"FAIL  {self.name}: {self.problem}"


def check_space() -> SearchSpace:
    """The space every searcher is checked on: 12 blocks of 4 choices, gene sum at most 24."""
    return SearchSpace(CHECK_CHOICES, constraint=lambda arch: sum(arch) <= CHECK_MAX_GENES_SUM)


def check_searcher(make: MakeSearcher, seed: int = 0) -> list[CheckResult]:
    """Every searcher check, in ``SEARCHER_CHECKS`` order, for searchers built by ``make(space, seed)``."""
    landscape = Landscape(CHECK_CHOICES, seed=seed)
    problems: dict[str, str] = {}
    first, second = _Run(make, seed, landscape, problems), _Run(make, seed, landscape, {})
    for run in (first, second):
        try:
            run.run()
        except Exception as exc:  # noqa: BLE001 - a searcher that raises fails the check, it does not stop it
            run.fail(RUNS_TO_DONE, f"generation {len(run.asks)}: {type(exc).__name__}: {exc}")
        if RUNS_TO_DONE in problems:
            break
    else:
        if second.asks != first.asks:
            problems[SEEDED] = f"generation {_first_difference(first.asks, second.asks)} differs between two runs with seed {seed}"
    return [CheckResult(name, name not in problems, problems.get(name, "")) for name in SEARCHER_CHECKS]


class _Run:
    """One search on the landscape, noting the first problem of each check in ``problems``."""

    def __init__(self, make: MakeSearcher, seed: int, landscape: Landscape, problems: dict[str, str]) -> None:
        self.make, self.seed, self.landscape, self.problems = make, seed, landscape, problems
        self.space = check_space()
        self.asks: list[tuple[Arch, ...]] = []
        self.told: dict[Arch, float] = {}

    def fail(self, check: str, problem: str) -> None:
        self.problems.setdefault(check, problem)

    def run(self) -> None:
        searcher = self.make(self.space, self.seed)
        resumed: Searcher | None = None
        while not searcher.done():
            generation = len(self.asks)
            if generation >= MAX_GENERATIONS:
                return self.fail(RUNS_TO_DONE, f"not done after {MAX_GENERATIONS} generations")
            hints = searcher.hints()
            self.check_hints(generation, hints)
            archs = tuple(tuple(arch) for arch in searcher.ask())
            if not archs:
                return self.fail(RUNS_TO_DONE, f"generation {generation}: ask() returned nothing while done() is False")
            if resumed is not None:
                if resumed.done() or resumed.hints() != hints or tuple(map(tuple, resumed.ask())) != archs:
                    self.fail(RESUMES, f"generation {generation}: the loaded copy's hints or asks differ from the original's")
            self.check_asks(generation, hints, archs)
            self.asks.append(archs)
            scored = [(arch, self.landscape.score(arch)) for arch in archs]
            self.told.update(scored)
            searcher.tell(scored)
            resumed = self.reload(generation, searcher)
        self.check_best(searcher)

    def check_hints(self, generation: int, hints: Hints) -> None:
        frozen, rate = hints.frozen, hints.importance_rate
        if len(frozen) > self.space.num_blocks or any(not 0 <= c < n for c, n in zip(frozen, self.space.choices)):
            self.fail(HINTS, f"generation {generation}: frozen prefix {frozen} is not a prefix of an arch in the space")
        if rate is not None and not (isinstance(rate, (int, float)) and math.isfinite(rate) and 0 < rate <= 1):
            self.fail(HINTS, f"generation {generation}: importance_rate {rate!r} is not in (0, 1]")
        stray = [
            a for a in hints.reuse_from
            if len(a) != self.space.num_blocks or any(not 0 <= c < n for c, n in zip(a, self.space.choices))
        ]
        if stray:
            self.fail(HINTS, f"generation {generation}: reuse_from arch {tuple(stray[0])} is not an arch of the space")

    def check_asks(self, generation: int, hints: Hints, archs: tuple[Arch, ...]) -> None:
        outside = [a for a in archs if not self.space.contains(a)]
        if outside:
            self.fail(IN_SPACE, f"generation {generation} asked {outside[0]}, which is not in the space")
        repeated = [a for a in archs if a in self.told]
        if repeated:
            self.fail(DISTINCT, f"generation {generation} asked {repeated[0]} again, told before")
        elif len(set(archs)) != len(archs):
            self.fail(DISTINCT, f"generation {generation} asked an arch twice")
        unfrozen = [a for a in archs if a[: len(hints.frozen)] != tuple(hints.frozen)]
        if unfrozen:
            self.fail(FROZEN, f"generation {generation} asked {unfrozen[0]} with frozen prefix {tuple(hints.frozen)} hinted")

    def reload(self, generation: int, searcher: Searcher) -> Searcher | None:
        """A fresh searcher loaded from ``searcher``'s state, as the runner resumes one (None if it is not JSON)."""
        try:
            state = json.loads(json.dumps(searcher.state_dict(), allow_nan=False))
        except (TypeError, ValueError) as exc:
            self.fail(STATE_JSON, f"after generation {generation}: {type(exc).__name__}: {exc}")
            return None
        copy = self.make(self.space, self.seed)
        try:
            copy.load_state_dict(state)
        except Exception as exc:  # noqa: BLE001 - any failure to load its own state breaks resuming
            self.fail(RESUMES, f"after generation {generation}: load_state_dict() raised {type(exc).__name__}: {exc}")
            return None
        return copy

    def check_best(self, searcher: Searcher) -> None:
        try:
            arch, score = searcher.best()
        except Exception as exc:  # noqa: BLE001 - a searcher that ran must have an answer
            return self.fail(BEST, f"best() raised {type(exc).__name__}: {exc}")
        arch = tuple(arch)
        if arch not in self.told:
            self.fail(BEST, f"best() returned {arch}, which was never told")
        elif self.told[arch] != score:
            self.fail(BEST, f"best() returned {arch} with score {score!r}; it was told {self.told[arch]!r}")


def _first_difference(a: list[tuple[Arch, ...]], b: list[tuple[Arch, ...]]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


# --------------------------------------------------------------------------- supernets

JSON_DEFAULTS = "defaults are JSON and round-trip"
META = "builds on the meta device (no memory, no compute)"
BUILDS = "builds from its registered name and defaults"
EQUAL_SHAPES = "every op of a block gives the same output shape"
PURE_BLOCKS = "blocks do not modify their input in place"
SPLIT_EXACT = "split forward is exact: net(net(x, a, 0, k), a, k) == net(x, a)"
MACS_EXACT = "macs() equals torch's FLOP counter / 2 per image, for whole paths and parts"
UNITS_EXACT = "the evaluator's unit by unit direct calls give net(x, a) exactly"
SUPERNET_CHECKS = (JSON_DEFAULTS, META, BUILDS, EQUAL_SHAPES, PURE_BLOCKS, SPLIT_EXACT, MACS_EXACT, UNITS_EXACT)


class _Broken(Exception):
    """A rule the supernet breaks; the message says how."""


def _held(name: str, rule: Callable[[], None]) -> CheckResult:
    try:
        rule()
    except _Broken as broken:
        return CheckResult(name, False, str(broken))
    except Exception as exc:  # noqa: BLE001 - a plugin may raise anything: that is the finding
        return CheckResult(name, False, f"raised {type(exc).__name__}: {exc}")
    return CheckResult(name, True)


def check_supernet(
    make: MakeSupernet, defaults: Mapping[str, Any], *, seed: int = 0, archs: int = 3
) -> list[CheckResult]:
    """Every supernet check, in ``SUPERNET_CHECKS`` order, for ``make(**defaults)`` on seeded weights, inputs, archs."""
    results = [_held(JSON_DEFAULTS, lambda: _json_defaults(defaults))]

    def on_meta() -> None:
        with torch.device("meta"):
            make(**defaults)

    results.append(_held(META, on_meta))
    holder: list[supernets.Supernet] = []

    def builds() -> None:
        torch.manual_seed(seed)  # only the throw-away weights of a check; searches never see them
        holder.append(make(**defaults).eval())

    results.append(_held(BUILDS, builds))
    if not holder:
        return results + [CheckResult(check, False, "the supernet did not build") for check in SUPERNET_CHECKS[3:]]
    net = holder[0]
    rng = np.random.default_rng(seed)
    paths = [tuple(int(c) for c in rng.integers(0, net.choices)) for _ in range(archs)]
    x = torch.randn(2, *net.input_shape, generator=torch.Generator().manual_seed(seed))
    block_inputs = functools.cache(lambda: _block_inputs(net, x))  # shared by two checks; a failure is not kept
    return results + [
        _held(EQUAL_SHAPES, lambda: _equal_shapes(net, block_inputs())),
        _held(PURE_BLOCKS, lambda: _pure_blocks(net, block_inputs())),
        _held(SPLIT_EXACT, lambda: _split_exact(net, x, paths)),
        _held(MACS_EXACT, lambda: _macs_match(net, x, paths)),
        _held(UNITS_EXACT, lambda: _units_exact(net, x, paths)),
    ]


def check_registered_supernet(name: str, *, seed: int = 0, archs: int = 3) -> list[CheckResult]:
    """``check_supernet`` for the supernet registered as ``name``, built from its entry's factory and defaults."""
    entry = supernets.supernet_entry(name)
    return check_supernet(entry.factory, entry.config(), seed=seed, archs=archs)


def _json_defaults(defaults: Mapping[str, Any]) -> None:
    plain = dict(defaults)
    if json.loads(json.dumps(plain, allow_nan=False)) != plain:
        raise _Broken("the defaults change in a JSON round trip (tuples, non-string keys?)")


def _block_inputs(net: supernets.Supernet, x: torch.Tensor) -> list[torch.Tensor]:
    """The input of every block along the all-zeros path, one block further each time."""
    path = (0,) * net.num_blocks
    inputs = [x]
    with torch.inference_mode():
        for k in range(net.num_blocks - 1):
            inputs.append(net(inputs[-1], path, k, k + 1))
    return inputs


def _equal_shapes(net: supernets.Supernet, inputs: Sequence[torch.Tensor]) -> None:
    for k, block_input in enumerate(inputs):
        with torch.inference_mode():
            shapes = {tuple(_block_output(net, block_input, k, c).shape) for c in range(net.choices[k])}
        if len(shapes) > 1:
            raise _Broken(f"block {k}'s ops give shapes {sorted(shapes)}")


def _block_output(net: supernets.Supernet, block_input: torch.Tensor, block: int, choice: int) -> torch.Tensor:
    """Block ``block`` at op ``choice`` (the stem first, for block 0)."""
    arch = (0,) * block + (choice,) + (0,) * (net.num_blocks - block - 1)
    return net(block_input, arch, block, block + 1)


def _pure_blocks(net: supernets.Supernet, inputs: Sequence[torch.Tensor]) -> None:
    for k, block_input in enumerate(inputs):
        for c in range(net.choices[k]):
            before = block_input.clone()
            with torch.inference_mode():
                _block_output(net, block_input, k, c)
            if not torch.equal(before, block_input):
                raise _Broken(f"block {k} op {c} changed its input in place (prefix reuse shares that tensor)")


def _split_exact(net: supernets.Supernet, x: torch.Tensor, paths: Sequence[Arch]) -> None:
    with torch.inference_mode():
        for arch in paths:
            full = net(x, arch)
            for k in range(1, net.num_blocks + 1):
                if not torch.equal(net(net(x, arch, 0, k), arch, k), full):
                    raise _Broken(f"arch {arch} split after block {k} differs from the whole forward")


def _units_exact(net: supernets.Supernet, x: torch.Tensor, paths: Sequence[Arch]) -> None:
    runner = UnitRunner(net)  # what every reuse level runs: a forward of its own would be bypassed
    with torch.inference_mode():
        for arch in paths:
            if not torch.equal(runner.run(x, arch, range(head_unit(net) + 1)), net(x, arch)):
                raise _Broken(f"arch {arch}: stem, blocks and head run as units differ from forward (does forward do more?)")


def _counted_macs(net: supernets.Supernet, inputs: torch.Tensor, arch: Arch, start: int, stop: int | None) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(inputs, arch, start, stop)
    return counter.get_total_flops() // 2 // inputs.shape[0]


def _macs_match(net: supernets.Supernet, x: torch.Tensor, paths: Sequence[Arch]) -> None:
    n = net.num_blocks
    spans = [(0, None), (0, n // 2), (n // 2, None), (n - 1, n)]
    for arch in paths:
        for start, stop in spans:
            with torch.inference_mode():
                inputs = net(x, arch, 0, start) if start else x
            counted, stated = _counted_macs(net, inputs, arch, start, stop), net.macs(arch, start, stop)
            if counted != stated:
                raise _Broken(f"arch {arch} blocks {start}:{stop}: macs() says {stated:,}, the FLOP counter {counted:,}")
