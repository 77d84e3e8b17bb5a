"""A fixed sequence of hints and archs, replayed through the real runner and evaluator.

The gate's evaluator layer scores a committed replay (``benchmarks/replay.json``: one landscape
search per searcher), so the work it counts — MACs, images, cache bytes — depends only on the
evaluator code and the sequence, never on which archs a trained supernet's float scores would
have made a searcher pick.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import schema, store
from harness.bench.landscape import GenerationTrace, SearchTrace
from searchers import Arch, Hints, NoParams, Score, Searcher, SearchSpace

FORMAT = "pcfes-bench-replay"
FORMAT_VERSION = 2  # 2: each generation's reuse_from hint


@dataclass(frozen=True)
class Replay:
    """Traces by searcher name, with the landscape config they were recorded from."""

    traces: Mapping[str, SearchTrace]
    recorded_from: Mapping[str, Any]  # the bench config identity at recording time

    def to_dict(self) -> dict[str, Any]:
        """The replay file's content (archs as ``0-3-1`` strings)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "recorded_from": dict(self.recorded_from),
            "searchers": {name: _trace_to_dict(trace) for name, trace in self.traces.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Replay:
        """Parse ``to_dict()`` output; another format is an error saying how to regenerate it."""
        if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"not a {FORMAT} v{FORMAT_VERSION} file (got {data.get('format')!r} v{data.get('format_version')!r}); "
                "regenerate it with `pcfes bench --update-baseline --update-replay`"
            )
        traces = {name: _trace_from_dict(name, t) for name, t in data["searchers"].items()}
        return cls(traces, dict(data["recorded_from"]))

    def digest(self) -> str:
        """sha256 of the canonical JSON: which replay a baseline's counts belong to."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def load_replay(path: Path) -> Replay:
    """Read a replay file, saying how to make one when it is missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no bench replay at {path}; record one with `pcfes bench --update-baseline --update-replay`")
    return Replay.from_dict(store.read_json(path))


def write_replay(replay: Replay, path: Path) -> None:
    """Write ``replay`` atomically."""
    store.write_json(Path(path), replay.to_dict())


def _arch_pair(best: tuple[Arch, float] | None) -> list[Any] | None:
    return None if best is None else [schema.arch_to_str(best[0]), best[1]]


def _trace_to_dict(trace: SearchTrace) -> dict[str, Any]:
    return {
        "generations": [
            {
                "frozen": schema.arch_to_str(g.hints.frozen),
                "importance_rate": g.hints.importance_rate,
                "reuse_from": [schema.arch_to_str(a) for a in g.hints.reuse_from],
                "best": _arch_pair(g.best),
                "archs": [schema.arch_to_str(a) for a in g.archs],
            }
            for g in trace.generations
        ],
        "best": _arch_pair(trace.best),
    }


def _best_from(value: Sequence[Any] | None) -> tuple[Arch, float] | None:
    return None if value is None else (schema.arch_from_str(value[0]), float(value[1]))


def _trace_from_dict(name: str, data: Mapping[str, Any]) -> SearchTrace:
    generations = tuple(
        GenerationTrace(
            Hints(
                frozen=schema.arch_from_str(g["frozen"]),
                importance_rate=g["importance_rate"],
                reuse_from=tuple(schema.arch_from_str(a) for a in g["reuse_from"]),
            ),
            _best_from(g["best"]),
            tuple(schema.arch_from_str(a) for a in g["archs"]),
        )
        for g in data["generations"]
    )
    best = _best_from(data["best"])
    if best is None or not generations:
        raise ValueError(f"replay of {name} has no generations or no final answer")
    return SearchTrace(name, generations, best)


class ReplaySearcher(Searcher):
    """Asks, hints and answers exactly what a recorded search did, whatever scores it is told."""

    Params = NoParams

    def __init__(self, trace: SearchTrace, space: SearchSpace):
        super().__init__(space, 0)
        self.name = trace.searcher
        self._trace = trace
        self._generation = 0
        self._pending = False

    def _current(self) -> GenerationTrace:
        return self._trace.generations[self._generation]

    def ask(self) -> list[Arch]:
        if self._pending:
            raise RuntimeError(f"replay of {self.name}: ask() called again before tell()")
        self._pending = True
        return list(self._current().archs)

    def tell(self, scored: Sequence[tuple[Arch, Score]]) -> None:
        asked = self._current().archs
        if not self._pending or [tuple(a) for a, _ in scored] != list(asked):
            raise ValueError(f"replay of {self.name}: tell() must score the {len(asked)} asked archs in ask order")
        self._pending = False
        self._generation += 1

    def hints(self) -> Hints:
        if self.done():
            return self._trace.generations[-1].hints
        return self._current().hints

    def done(self) -> bool:
        return self._generation >= len(self._trace.generations)

    def best(self) -> tuple[Arch, Score]:
        recorded = self._trace.best if self.done() else self._current().best
        if recorded is None:
            raise RuntimeError(f"replay of {self.name}: best() before any tell()")
        return recorded

    @property
    def generation(self) -> int:
        return self._generation

    def state_dict(self) -> dict[str, Any]:
        return {"replay": self.name, "generation": self._generation}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("replay") != self.name:
            raise ValueError(f"state of replay {state.get('replay')!r} cannot be loaded into the replay of {self.name}")
        self._generation = int(state["generation"])
        self._pending = False
