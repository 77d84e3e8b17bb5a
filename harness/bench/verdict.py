"""The gate's verdict: a bench result compared with the baseline, layer by layer, and the result as a table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.bench.baseline import check_format
from harness.bench.gate import COUNT_METRICS, INFO_METRICS, BenchResult
from harness.bench.settings import DEFAULT_MARGIN


@dataclass(frozen=True)
class GateReport:
    """The gate's verdict: failures (each naming searcher, level or ratio, metric, baseline and new value) and notes."""

    failures: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """True when nothing failed (notes never fail the gate)."""
        return not self.failures

    def format(self) -> str:
        """Notes, then one FAIL line per failure, then the verdict."""
        lines = [f"note: {n}" for n in self.notes]
        lines += [f"FAIL {f}" for f in self.failures]
        lines.append("gate: PASSED" if self.passed else f"gate: FAILED ({len(self.failures)} problem(s))")
        return "\n".join(lines)


def _change(old: float, new: float) -> str:
    return f"{(new - old) / old:+.2%}" if old else "from 0"


def _decision_failures(name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    failures = []
    for metric, value in new.items():
        before = old.get(metric)
        if before == value:
            continue
        if isinstance(value, list) and isinstance(before, list):
            first = next((i for i, (a, b) in enumerate(zip(before, value)) if a != b), min(len(before), len(value)))
            failures.append(
                f"{name}: {metric} changed from generation {first}: baseline {before[first:first + 4]} "
                f"({len(before)} generations), now {value[first:first + 4]} ({len(value)} generations)"
            )
        else:
            failures.append(f"{name}: {metric} changed: baseline {before}, now {value}")
    return failures


def check(baseline: Mapping[str, Any], result: BenchResult, *, margin: float = DEFAULT_MARGIN) -> GateReport:
    """Compare a bench result with a baseline: decisions, exact counts, MAC ratios, timing ratios + ``margin``."""
    check_format(baseline)
    identity = result.config.identity()
    if baseline["config"] != identity:
        keys = sorted(k for k in identity.keys() | baseline["config"].keys() if identity.get(k) != baseline["config"].get(k))
        diffs = "; ".join(f"{k}: baseline {baseline['config'].get(k)!r}, now {identity.get(k)!r}" for k in keys)
        return GateReport(
            (f"bench configuration differs from the baseline's ({diffs}); counts are not comparable — "
             "if the change is intended, run `pcfes bench --update-baseline` and commit the reason",),
            (),
        )
    failures: list[str] = []
    notes: list[str] = []
    for name, decisions in result.decisions.items():
        if name not in baseline["decisions"]:
            failures.append(f"{name}: not in the baseline (searchers {sorted(baseline['decisions'])})")
            continue
        failures += _decision_failures(name, baseline["decisions"][name], decisions)
    if baseline.get("replay_sha256") != result.replay_sha256:
        failures.append(
            f"replay changed (baseline sha256 {str(baseline.get('replay_sha256'))[:12]}, now {result.replay_sha256[:12]}): "
            "work counts are not comparable; run `pcfes bench --update-baseline` and commit why"
        )
    else:
        failures += _count_failures(baseline["counts"], result.counts())
    for ratio, new in result.ratios().items():
        old = baseline["ratios"].get(ratio)
        if old is None:
            failures.append(f"ratio {ratio}: not in the baseline (now {new:.6f})")
        elif new > old:
            failures.append(f"ratio {ratio}: {new:.6f} > baseline {old:.6f}")
    env, base_env = result.environment, baseline.get("environment", {})
    if base_env.get("fingerprint") != env.get("fingerprint"):
        notes.append(
            f"machine differs from the baseline's ({base_env.get('fingerprint')!r} -> {env.get('fingerprint')!r}): "
            "exact layers compared as usual; timing ratios are compared with the margin"
        )
    if not result.timing:
        notes.append("timing layer skipped (no timing runs)")
    for t in result.timing:
        old_timing = baseline.get("timing", {}).get(t.pair.name)
        if old_timing is None:
            notes.append(f"timing {t.pair.name}: not in the baseline, not gated (now {t.ratio:.3f})")
            continue
        old, limit = float(old_timing["ratio"]), float(old_timing["ratio"]) + margin
        line = (
            f"time {t.pair.name}: {t.ratio:.3f} (min of {len(t.numerator_s)}: {t.pair.numerator.label} "
            f"{min(t.numerator_s):.3f} s, {t.pair.denominator.label} {min(t.denominator_s):.3f} s) "
            f"vs baseline {old:.3f} + margin {margin:.2f} = {limit:.3f}"
        )
        (failures if t.ratio > limit else notes).append(line)
    return GateReport(tuple(failures), tuple(notes))


def _count_failures(baseline: Mapping[str, Any], counts: Mapping[str, Mapping[str, Mapping[str, int]]]) -> list[str]:
    failures = []
    for name, levels in counts.items():
        for level, measured in levels.items():
            base = baseline.get(name, {}).get(level)
            if base is None:
                failures.append(f"{name}[{level}]: not in the baseline")
                continue
            for metric, new in measured.items():
                old = base.get(metric)
                if old != new:
                    change = _change(old, new) if isinstance(old, int) else "new metric"
                    failures.append(f"{name}[{level}]: {metric} changed: baseline {old}, now {new} ({change})")
    return failures


def format_result(result: BenchResult) -> str:
    """A table of decisions and per-replay counts and costs, the ratios and the timing."""
    decisions = pd.DataFrame(
        [{"searcher": n, "candidates": d["candidates"], "generations": d["generations"],
          "frozen depth per generation": " ".join(map(str, d["frozen_depth"]))} for n, d in result.decisions.items()]
    )
    rows = [
        {"replay": r.label, **{k: m.counts[k] for k in COUNT_METRICS}, **{k: m.info[k] for k in INFO_METRICS}}
        for r, m in result.work.items()
    ]
    work = pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}")
    lines = ["decisions on the integer landscape:", decisions.to_string(index=False), "", "work of the replay:", work]
    lines += [f"{k}: {v:.4f}" for k, v in result.ratios().items()]
    for t in result.timing:
        lines.append(
            f"time {t.pair.name}: {t.ratio:.3f} ({t.pair.numerator.label} runs {', '.join(f'{s:.2f}' for s in t.numerator_s)} s; "
            f"{t.pair.denominator.label} runs {', '.join(f'{s:.2f}' for s in t.denominator_s)} s CPU)"
        )
    sources = {str(m.info["energy_source"]) for m in result.work.values()}
    lines.append(f"energy / CO2 (information only, source: {', '.join(sorted(sources))}); bench wall {result.wall_s:.1f} s")
    return "\n".join(lines)
