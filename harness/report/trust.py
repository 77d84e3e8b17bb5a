"""The "Can this supernet rank?" section of a report: noise vs signal, split-half τ, stand-alone τ, drift.

The checks are computed in ``harness.rank_check``; this module lays them out for one group and
says in one sentence per supernet whether its rankings can be trusted at the group's protocol, and
which of the report's conclusions would not hold if they cannot.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

import searchers
from harness import rank_check, retrain
from harness.rank_check import NoiseSignal, RankAgreement, SplitHalf
from harness.report.tables import md_table
from harness.store import StoredRun

SPLIT_HALF_HINT = "not measured: pcfes report --rank-check (one extra scoring pass with the run's checkpoint)"
STANDALONE_HINT = f"not measured: pcfes retrain --runs <runs folder> trains the first {rank_check.RETRAIN_ARCHS} archs of the split-half sample"


@dataclass(frozen=True)
class Drift:
    """A freezing configuration's frozen depth in its runs and under scores without signal."""

    searcher: str
    params: str
    blocks: int
    run_depths: tuple[int, ...]
    drift_depths: tuple[int, ...]

    @property
    def explained(self) -> bool:
        """Whether drift alone freezes at least as deep as the runs did (median against median)."""
        return statistics.median(self.drift_depths) >= statistics.median(self.run_depths)


@dataclass(frozen=True)
class Trust:
    """Everything the section says about one supernet of one group."""

    supernet: str
    noise: NoiseSignal | None
    split_half: RankAgreement | None
    standalone: RankAgreement | None
    drift: tuple[Drift, ...]
    notes: tuple[str, ...] = ()  # checks that could not be made, and why
    paired_noise: float | None = None  # SplitHalf.paired_noise: the noise of one score for comparing archs

    @property
    def ranking_noise(self) -> tuple[float, str] | None:
        """The noise the verdict weighs against the top decile's spread, and what it is."""
        if self.paired_noise is not None:
            return self.paired_noise, "the paired noise of one score, from the split halves"
        if self.noise is not None:
            return self.noise.se, "the binomial noise of one score, an upper bound for comparing archs on the same images"
        return None


def _interval(agreement: RankAgreement | None, hint: str) -> str:
    if agreement is None:
        return hint
    if agreement.low is None:
        return f"{agreement.tau:.2f} (n = {agreement.n}: no interval)"
    return f"{agreement.tau:.2f} [{agreement.low:.2f}, {agreement.high:.2f}] (n = {agreement.n})"


def _standalone_agreement(check: SplitHalf, results: pd.DataFrame, recipe_hash: str | None) -> RankAgreement | None:
    """Kendall τ between the sample's full-protocol scores and the stand-alone test accuracy of its retrained archs."""
    if results.empty:
        return None
    keys = [retrain.answer_key(check.supernet, check.supernet_config, check.dataset, arch) for arch in check.archs]
    found = results[results["answer"].isin(set(keys))]
    if recipe_hash is None and not found.empty:
        recipe_hash = str(found["recipe_hash"].value_counts().index[0])
    accuracy = found[found["recipe_hash"] == recipe_hash].drop_duplicates("answer").set_index("answer")["test_accuracy"]
    pairs = [(score, accuracy[key]) for key, score in zip(keys, check.full_scores) if key in accuracy.index]
    if len(pairs) < 2:
        return None
    return rank_check.kendall([p[0] for p in pairs], [p[1] for p in pairs])


def _drift(records: Sequence[StoredRun]) -> tuple[tuple[Drift, ...], tuple[str, ...]]:
    configurations: dict[tuple[str, str], list[StoredRun]] = {}
    for record in records:
        name = record.run.setup.searcher
        entry = searchers.registered_searchers().get(name)
        if entry is not None and entry.freezing:
            configurations.setdefault((name, json.dumps(record.run.setup.searcher_params, sort_keys=True)), []).append(record)
    drifts, notes = [], []
    for (name, params), mine in configurations.items():
        run = mine[0].run
        limit = run.config.mac_limit
        try:
            outcomes = rank_check.drift_depths(
                run.setup.supernet, dict(run.setup.supernet_config), name, json.loads(params),
                limit if isinstance(limit, int) else None,
            )
        except (ValueError, TypeError) as exc:  # a space or searcher this installation cannot build any more
            notes.append(f"drift check of {name} not made: {exc}")
            continue
        depths = tuple(int(r.generations["frozen_depth"].max()) for r in mine)
        blocks = len(run.result.best_arch)
        drifts.append(Drift(name, params, blocks, depths, tuple(depth for _, depth in outcomes)))
    return tuple(drifts), tuple(notes)


def assess(
    supernet: str, records: Sequence[StoredRun], checks: Sequence[SplitHalf], results: pd.DataFrame, recipe_hash: str | None
) -> Trust:
    """The checks for one supernet of one group (``records``: its runs, one protocol and checkpoint)."""
    setup = records[0].run.setup
    val_images = int(setup.protocol["val_size"])
    candidates = pd.concat([r.candidates for r in records], ignore_index=True)
    try:
        noise = rank_check.noise_vs_signal(candidates, val_images)
    except ValueError:
        noise = None
    mine = [c for c in checks if c.supernet == supernet and c.checkpoint_hash == setup.checkpoint_hash and c.protocol_hash == setup.protocol_hash]
    check = mine[0] if mine else None
    drift, notes = _drift(records)
    return Trust(
        supernet=supernet,
        noise=noise,
        split_half=check.agreement if check else None,
        standalone=_standalone_agreement(check, results, recipe_hash) if check else None,
        drift=drift,
        notes=notes,
        paired_noise=check.paired_noise if check else None,
    )


def _excludes_zero(agreement: RankAgreement | None) -> bool | None:
    if agreement is None or agreement.low is None:
        return None
    return agreement.low > 0


def verdict(trust: Trust) -> str:
    """One plain sentence: can the supernet's rankings be trusted at this protocol, and what falls if not."""
    problems = []
    if _excludes_zero(trust.split_half) is False:
        problems.append("its scores on two halves of the validation split do not agree on the order of archs")
    if _excludes_zero(trust.standalone) is False:
        problems.append("its order of archs does not agree with their stand-alone accuracy")
    noise = trust.ranking_noise
    if noise is not None and trust.noise is not None and noise[0] >= trust.noise.spread_top:
        problems.append(
            f"{noise[1]} ({100 * noise[0]:.2f} points) is at least the spread of the candidates' top decile "
            f"({100 * trust.noise.spread_top:.2f} points), so which near-best candidate wins is luck"
        )
    protocol = "this protocol" if trust.noise is None else f"this protocol ({trust.noise.val_images:,} validation images)"
    if problems:
        head = (
            f"its rankings cannot be trusted at {protocol}: {'; '.join(problems)}; so the report's quality ranking of "
            "searchers does not hold (which answer is better, and by how much, beyond the held-out noise), while its "
            "savings, being costs, stand"
        )
    elif trust.split_half is None:
        head = (
            "no sign of a ranking problem in the recorded scores, but without the split-half check "
            "(pcfes report --rank-check) whether its rankings can be trusted is not established"
        )
    else:
        measured = "" if trust.standalone is not None else " (its agreement with stand-alone training was not measured)"
        head = f"its rankings can be trusted at {protocol}: split-half τ excludes 0 and the noise is below the top decile's spread{measured}"
    drifting = sorted({d.searcher for d in trust.drift if d.explained})
    drift = (
        f"; {', '.join(drifting)} freeze{'s' if len(drifting) == 1 else ''} as deep on scores without any signal, so "
        "its frozen blocks are no evidence that the supernet agreed on them"
        if drifting else ""
    )
    return f"{trust.supernet}: {head}{drift}."


def trust_md(trusts: Sequence[Trust]) -> str:
    """The section body: the noise, τ and drift tables, then one sentence per supernet."""
    header = [
        "supernet", "validation images", "SE of one score (points)", "score spread, all (points)", "noise/signal, all",
        "score spread, top decile (points)", "noise/signal, top decile", "paired noise of one score (points)",
        "paired noise/signal, top decile", "split-half Kendall τ [95% CI]",
        "one-shot vs stand-alone Kendall τ [95% CI]",
    ]
    rows = []
    for t in trusts:
        n = t.noise
        cells = (
            [str(n.val_images), f"{100 * n.se:.2f}", f"{100 * n.spread_all:.2f}", f"{n.ratio_all:.2f}",
             f"{100 * n.spread_top:.2f}", f"{n.ratio_top:.2f}"]
            if n is not None else ["n/a (no candidate scored on the whole validation split)"] + ["–"] * 5
        )
        if t.paired_noise is None:
            paired = [SPLIT_HALF_HINT.split(":")[0], "–"]
        else:
            ratio = "–" if n is None or n.spread_top == 0 else f"{t.paired_noise / n.spread_top:.2f}"
            paired = [f"{100 * t.paired_noise:.2f}", ratio]
        rows.append([t.supernet, *cells, *paired, _interval(t.split_half, SPLIT_HALF_HINT), _interval(t.standalone, STANDALONE_HINT)])
    parts = [
        md_table(header, rows),
        "SE: the binomial standard error of one candidate's accuracy at the median candidate score and the protocol's "
        "validation size; spread: the standard deviation of the distinct candidates' scores in candidates.csv (all, and "
        "the top 10%); a noise/signal ratio near or above 1 means the scores cannot order those candidates. The binomial "
        "SE counts what the images do to every arch alike, so it overstates the noise of comparing two archs on the same "
        "images; the paired noise removes it: half the std, over the split-half sample, of the difference between an "
        "arch's score on the two halves after centring each half on its mean. Split-half: "
        f"{rank_check.SAMPLE_ARCHS} archs drawn uniformly under the MAC limit (seed {rank_check.SAMPLE_SEED}) scored on "
        "each half of the validation split. Intervals: Fieller-Hartley-Pearson on atanh τ.\n",
    ]
    drifts = [(t.supernet, d) for t in trusts for d in t.drift]
    if drifts:
        parts.append(md_table(
            ["supernet", "searcher", "settings", "frozen blocks in the runs (median [min, max])",
             f"frozen blocks on random scores ({rank_check.DRIFT_SEEDS} seeds, median [min, max])"],
            [
                [supernet, d.searcher, d.params, _depths(d.run_depths, d.blocks), _depths(d.drift_depths, d.blocks)]
                for supernet, d in drifts
            ],
        ))
        parts.append(
            "Random scores: every candidate scored by an independent uniform draw with the run's settings, space and MAC "
            f"limit ({rank_check.DRIFT_GENERATIONS} generations at most): how far freezing goes on genetic drift alone.\n"
        )
    parts += [f"*{note}.*\n" for t in trusts for note in t.notes]
    parts += [f"- {verdict(t)}" for t in trusts]
    return "\n".join(parts) + "\n"


def _depths(depths: Sequence[int], blocks: int) -> str:
    return f"{statistics.median(depths):g} [{min(depths)}, {max(depths)}] of {blocks}"

