"""The plugin contract as runnable checks: ``pcfes check searcher NAME`` and ``pcfes check supernet NAME``.

Each check returns one ``Check`` per rule of the contract (docs/plugins.md), with what was wrong
when it fails. Searchers run on the bench's exact integer landscape, so a verdict never depends
on trained weights or floating-point results; supernets are checked on seeded random inputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

import searchers
import supernets
from harness.bench.landscape import Landscape
from searchers import Arch, Hints, Searcher, SearchSpace


@dataclass(frozen=True)
class Check:
    """One rule of the contract and whether the plugin keeps it."""

    name: str
    passed: bool
    detail: str = ""

    def line(self) -> str:
        """``PASS name`` or ``FAIL name: what was wrong``."""
        return f"PASS {self.name}" if self.passed else f"FAIL {self.name}: {self.detail}"


class _Broken(Exception):
    """A rule the plugin breaks; the message says how."""


def _run(name: str, rule: Callable[[], None]) -> Check:
    try:
        rule()
    except _Broken as broken:
        return Check(name, False, str(broken))
    except Exception as exc:  # noqa: BLE001 - a plugin may raise anything: that is the finding
        return Check(name, False, f"raised {type(exc).__name__}: {exc}")
    return Check(name, True)


# --------------------------------------------------------------------------- searchers

SEARCHER_SPACE = (4,) * 12
MAX_GENERATIONS = 2000


@dataclass(frozen=True)
class _Generation:
    hints: Hints
    archs: tuple[Arch, ...]


def _search(searcher: Searcher, landscape: Landscape, inspect: Callable[[Searcher], None] | None = None) -> list[_Generation]:
    """Run to done() in the runner's order; ``inspect`` sees the searcher after every tell."""
    generations: list[_Generation] = []
    while not searcher.done():
        if len(generations) >= MAX_GENERATIONS:
            raise _Broken(f"done() still False after {MAX_GENERATIONS} generations")
        hints = searcher.hints()
        archs = tuple(tuple(int(c) for c in arch) for arch in searcher.ask())
        if not archs:
            raise _Broken(f"ask() returned no archs at generation {len(generations)} while done() is False")
        searcher.tell([(arch, landscape.score(arch)) for arch in archs])
        generations.append(_Generation(hints, archs))
        if inspect is not None:
            inspect(searcher)
    return generations


def check_searcher(name: str, *, seed: int = 0, params: dict[str, Any] | None = None) -> list[Check]:
    """The searcher contract, on a 12 x 4 space scored by an exact integer landscape."""
    params = params or {}
    space = SearchSpace(SEARCHER_SPACE)
    landscape = Landscape(SEARCHER_SPACE, seed=seed)

    def build() -> Searcher:
        return searchers.get_searcher(name, space, seed, **params)

    checks = [_run("builds from its registered name and default parameters", build)]
    if not checks[0].passed:
        return checks
    trace: list[_Generation] = []
    told: dict[Arch, float] = {}

    def runs_to_done() -> None:
        searcher = build()
        trace.extend(_search(searcher, landscape))
        told.update({arch: landscape.score(arch) for g in trace for arch in g.archs})
        best_arch, best_score = searcher.best()
        best_arch = tuple(int(c) for c in best_arch)
        if best_arch not in told or told[best_arch] != best_score:
            raise _Broken(f"best() returned {best_arch} with score {best_score}, which is not a told arch with its told score")

    checks.append(_run("runs to done(), asking at least one arch per generation; best() is a told arch", runs_to_done))
    if not checks[-1].passed:
        return checks
    checks.append(_run("asks are distinct and never repeat an arch asked before", lambda: _distinct(trace)))
    checks.append(_run("every asked arch lies in the space and starts with the frozen prefix of its hints",
                       lambda: _within_hints(trace, space)))
    checks.append(_run("hints are valid: a frozen prefix of in-range choices, a rate in (0, 1] or none",
                       lambda: _valid_hints(trace, space)))
    checks.append(_run("the same seed asks the same stream", lambda: _same_stream(trace, _search(build(), landscape))))
    checks.append(_run("state_dict() is JSON after every tell, and a copy loaded from it asks the same",
                       lambda: _resumable(build, landscape, trace)))
    return checks


def _distinct(trace: Sequence[_Generation]) -> None:
    seen: set[Arch] = set()
    for g, generation in enumerate(trace):
        for arch in generation.archs:
            if arch in seen:
                raise _Broken(f"generation {g} asked {arch} again")
            seen.add(arch)


def _within_hints(trace: Sequence[_Generation], space: SearchSpace) -> None:
    for g, generation in enumerate(trace):
        frozen = tuple(generation.hints.frozen)
        for arch in generation.archs:
            if not space.contains(arch):
                raise _Broken(f"generation {g} asked {arch}, which is not in a space with choices {space.choices}")
            if arch[: len(frozen)] != frozen:
                raise _Broken(f"generation {g} asked {arch}, which does not start with the frozen prefix {frozen}")


def _valid_hints(trace: Sequence[_Generation], space: SearchSpace) -> None:
    for g, generation in enumerate(trace):
        frozen, rate = tuple(generation.hints.frozen), generation.hints.importance_rate
        if len(frozen) > space.num_blocks or any(not 0 <= c < n for c, n in zip(frozen, space.choices)):
            raise _Broken(f"generation {g} hinted frozen prefix {frozen}, not a prefix of the space {space.choices}")
        if rate is not None and not 0 < rate <= 1:
            raise _Broken(f"generation {g} hinted importance rate {rate}, not in (0, 1]")


def _same_stream(first: Sequence[_Generation], second: Sequence[_Generation]) -> None:
    for g, (a, b) in enumerate(zip(first, second)):
        if a != b:
            raise _Broken(f"generation {g} differs between two searchers with the same seed")
    if len(first) != len(second):
        raise _Broken(f"one run took {len(first)} generations, the other {len(second)}")


def _resumable(build: Callable[[], Searcher], landscape: Landscape, trace: Sequence[_Generation]) -> None:
    states: list[str] = []

    def keep(searcher: Searcher) -> None:
        try:
            states.append(json.dumps(searcher.state_dict(), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise _Broken(f"state_dict() after generation {len(states)} is not JSON: {exc}") from None

    _search(build(), landscape, keep)
    loaded_after = max(len(trace) // 2 - 1, 0)
    copy = build()
    copy.load_state_dict(json.loads(states[loaded_after]))
    if _search(copy, landscape) != list(trace[loaded_after + 1:]):
        raise _Broken(f"a copy loaded from the state after generation {loaded_after} asked differently from the original")


# --------------------------------------------------------------------------- supernets

def check_supernet(name: str, *, seed: int = 0, archs: int = 3) -> list[Check]:
    """The supernet contract: JSON defaults, meta construction, exact MACs, exact split forward, pure blocks."""
    checks = [
        _run("defaults are JSON and round-trip", lambda: _json_defaults(name)),
        _run("builds on the meta device (no memory, no compute)", lambda: _meta(name)),
    ]
    holder: list[supernets.Supernet] = []

    def builds() -> None:
        torch.manual_seed(seed)  # only the throw-away weights of a check; searches never see them
        net = supernets.get_supernet(name).eval()
        holder.append(net)

    checks.append(_run("builds from its registered name and defaults", builds))
    if not holder:
        return checks
    net = holder[0]
    rng = np.random.default_rng(seed)
    paths = [tuple(int(c) for c in rng.integers(0, net.choices)) for _ in range(archs)]
    x = torch.randn(2, *net.input_shape, generator=torch.Generator().manual_seed(seed))
    checks += [
        _run("every op of a block gives the same output shape", lambda: _equal_shapes(net, x)),
        _run("blocks do not modify their input in place", lambda: _pure_blocks(net, x)),
        _run("split forward is exact: net(net(x, a, 0, k), a, k) == net(x, a)", lambda: _split_exact(net, x, paths)),
        _run("macs() equals torch's FLOP counter / 2 per image, for whole paths and parts",
             lambda: _macs_match(net, x, paths)),
    ]
    return checks


def _json_defaults(name: str) -> None:
    defaults = supernets.default_config(name)
    if json.loads(json.dumps(defaults, allow_nan=False)) != defaults:
        raise _Broken("the defaults change in a JSON round trip (tuples, non-string keys?)")


def _meta(name: str) -> None:
    with torch.device("meta"):
        supernets.get_supernet(name)


def _block_inputs(net: supernets.Supernet, x: torch.Tensor) -> list[torch.Tensor]:
    """The input of every block along the all-zeros path."""
    path = (0,) * net.num_blocks
    with torch.inference_mode():
        return [x if k == 0 else net(x, path, 0, k) for k in range(net.num_blocks)]


def _equal_shapes(net: supernets.Supernet, x: torch.Tensor) -> None:
    for k, inputs in enumerate(_block_inputs(net, x)):
        with torch.inference_mode():
            shapes = {tuple(_block_output(net, inputs, k, c).shape) for c in range(net.choices[k])}
        if len(shapes) > 1:
            raise _Broken(f"block {k}'s ops give shapes {sorted(shapes)}")


def _block_output(net: supernets.Supernet, inputs: torch.Tensor, block: int, choice: int) -> torch.Tensor:
    arch = (0,) * block + (choice,) + (0,) * (net.num_blocks - block - 1)
    return net(inputs, arch, block, block + 1) if block else net(inputs, arch, 0, 1)


def _pure_blocks(net: supernets.Supernet, x: torch.Tensor) -> None:
    for k, inputs in enumerate(_block_inputs(net, x)):
        for c in range(net.choices[k]):
            before = inputs.clone()
            with torch.inference_mode():
                _block_output(net, inputs, k, c)
            if not torch.equal(before, inputs):
                raise _Broken(f"block {k} op {c} changed its input in place (prefix reuse shares that tensor)")


def _split_exact(net: supernets.Supernet, x: torch.Tensor, paths: Sequence[Arch]) -> None:
    with torch.inference_mode():
        for arch in paths:
            full = net(x, arch)
            for k in range(1, net.num_blocks + 1):
                if not torch.equal(net(net(x, arch, 0, k), arch, k), full):
                    raise _Broken(f"arch {arch} split after block {k} differs from the whole forward")


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


def format_checks(what: str, name: str, checks: Sequence[Check]) -> str:
    """The checker's report: one line per check, then a verdict."""
    failed = sum(not c.passed for c in checks)
    verdict = "keeps the contract" if not failed else f"breaks {failed} of {len(checks)} checks"
    return "\n".join([*(c.line() for c in checks), f"{what} {name!r} {verdict}"])
