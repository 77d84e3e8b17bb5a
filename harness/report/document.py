"""``write_report``: report.md, summary.csv and the figures for any set of recorded runs."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib as mpl
import pandas as pd

from harness import rank_check, retrain
from harness.progress import progress_bar
from harness.report.figures import FIGURE_FILES, seed_strips, supernet_figures
from harness.report.premises import distance_figure, premise_threshold, premises, premises_md
from harness.report.paper import paper_md
from harness.report.runs import BASELINE, GROUP_KEYS, runs_frame
from harness.report.style import RC_PARAMS, figure_dir
from harness.report.standalone import attach_standalone, standalone_md
from harness.report.trust import assess, trust_md
from harness.report.statistics import pair_with_baseline, summarise
from harness.report.tables import TABLE_SOURCES, runs_md, savings_md, sources_md, summary_md
from harness import schema
from harness.store import StoredRun, find_runs, generations_frame, load_records, write_csv, write_text

log = logging.getLogger(__name__)


def report_dir(out_dir: str | Path) -> Path:
    """``out_dir``, created and checked writable before anything is computed, so a report is never half-written there."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write the report to {out_dir}: {exc.strerror or exc}; pass -o a folder you can write") from None
    return out_dir


def load(paths: Iterable[str | Path]) -> tuple[list[StoredRun], list[Path]]:
    """The complete runs under ``paths`` and the folders skipped (each skip is logged with its reason)."""
    paths = list(paths)
    records = load_records(paths, skip_bad=True)
    if not records:
        raise ValueError(f"no complete runs found in {', '.join(map(str, paths))}; nothing to report")
    loaded = {r.path for r in records}
    return records, [p for p in find_runs(paths) if p not in loaded]


def dropped_lines(records: Sequence[StoredRun], skipped: Sequence[Path]) -> list[str]:
    """What a report left out and why: incomplete runs, and copies of a kept run (not another seed)."""
    lines = []
    if skipped:
        lines.append("Skipped (incomplete or unknown schema; the log says why): " + ", ".join(f"`{p}`" for p in skipped) + "\n")
    duplicates = [d for r in records for d in r.duplicates]
    if duplicates:
        lines.append(
            "Dropped as duplicates of a kept run (same config hash and seed, so not another seed): "
            + ", ".join(f"`{d}`" for d in duplicates) + "\n"
        )
    return lines


def _group_heading(index: int, protocol_hash: str, checkpoint_hash: str, runs: pd.DataFrame) -> str:
    devices = ", ".join(sorted(set(runs["device"].astype(str))))
    datasets = ", ".join(sorted(set(runs["dataset"].astype(str))))
    limits = "; ".join(
        f"{supernet}: {', '.join(sorted(set(group['mac_limit'])))}" for supernet, group in runs.groupby("supernet")
    )
    return (
        f"## Group {index}: protocol `{protocol_hash}`, checkpoint `{checkpoint_hash}`\n\n"
        f"{len(runs)} runs; dataset {datasets}; device {devices}; search limit {limits}.\n"
    )


def _figure_md(caption: str, path: Path | None, out_dir: Path) -> str:
    """A figure with its caption under it, linked relative to report.md; a note in italics where none was drawn."""
    if path is None:
        return f"*{caption}.*\n"
    return f"![{caption}]({path.relative_to(out_dir).as_posix()})\n\n*{caption}.*\n"


def _premises_section(
    gens: pd.DataFrame, runs: pd.DataFrame, supernet: str, out_dir: Path, folder: Path, formats: Sequence[str]
) -> list[str]:
    answers = runs.set_index("run_id")["best_arch"]
    # Every reuse level scores the same candidates (tests/test_runner.py), so an evolution search run
    # at several levels is one search: count it once.
    searches = runs[runs["searcher"] == BASELINE].drop_duplicates(["seed", "params"])["run_id"]
    gens = gens[(gens["searcher"] != BASELINE) | gens["run_id"].isin(searches)]
    found = premises(gens, answers, premise_threshold(supernet))
    if found is None:
        return [f"*Premises of PCF-ES not checked on {supernet}: no {BASELINE} runs.*\n"]
    path = distance_figure(found, supernet, folder / FIGURE_FILES["majority_distance"], formats)
    caption = (
        "Binary distance between each block's majority choice at each generation and the final answer's choice, "
        f"share of {BASELINE} runs (cf. paper Fig. 3); right: mean over the shallow and the deep half of the blocks"
    )
    return [f"### Premises of PCF-ES on {supernet}\n", premises_md(found, supernet), _figure_md(caption, path, out_dir)]


def write_report(
    paths: Iterable[str | Path],
    out_dir: str | Path,
    *,
    title: str | None = None,
    formats: Sequence[str] = ("png",),
    standalone: str | Path | None = None,
    rank_checks: bool = False,
    progress: bool = False,
) -> Path:
    """Write report.md, summary.csv and the figures (PNG, plus each of ``formats``) for the runs under ``paths``.

    ``standalone``: the folder of ``pcfes retrain`` results (None: the stand-alone columns say they are missing).
    ``rank_checks``: first score the split-half sample of every group (``harness.rank_check``, needs the runs'
    checkpoints) into ``out_dir``; without it the report uses the rank_check-*.json files found there and in ``paths``.
    ``progress`` counts the figure sections (one per group and supernet).
    """
    paths = list(paths)
    out_dir = report_dir(out_dir)
    records, skipped = load(paths)
    if rank_checks:
        rank_check.write_checks(records, out_dir)
    checks = rank_check.read_checks([*map(Path, paths), out_dir])
    results = retrain.results_frame(None if standalone is None else Path(standalone))
    with_standalone, source = attach_standalone(runs_frame(records), records, standalone)
    runs = pair_with_baseline(with_standalone)
    summary = summarise(runs)
    write_csv(out_dir / schema.SUMMARY_CSV, summary)
    gens = generations_frame(records).merge(runs[["run_id", "variant"]], on="run_id")

    groups = list(runs.groupby(list(GROUP_KEYS), sort=True))
    md = [f"# {title or 'pcfes-bench report'}\n"]
    md.append(
        f"{len(records)} runs in {len(groups)} group(s). Runs with different evaluation protocols "
        "(`protocol_hash`) or supernet checkpoints (`checkpoint_hash`) are never averaged together: "
        "each group has its own section. Values are mean ± sample std over seeds; runs of one searcher "
        "with different `searcher_params` or reuse levels are separate rows. Savings vs `evolution` are "
        "computed per seed against the evolution run with the same seed (same group and supernet), then "
        "averaged with a 95% confidence interval. `n/a (reason)` marks a quantity that was not measured.\n"
    )
    md += dropped_lines(records, skipped)
    sections = runs.groupby([*GROUP_KEYS, "supernet"]).ngroups
    with mpl.rc_context(RC_PARAMS), progress_bar(sections, "report figures", "section", enabled=progress) as bar:
        for index, ((protocol_hash, checkpoint_hash), group_runs) in enumerate(groups, start=1):
            mask = (summary["protocol_hash"] == protocol_hash) & (summary["checkpoint_hash"] == checkpoint_hash)
            group_summary = summary[mask]
            md.append(_group_heading(index, protocol_hash, checkpoint_hash, group_runs))
            md += ["### Summary\n", summary_md(group_summary), sources_md(group_runs, TABLE_SOURCES)]
            md += [f"### Savings vs {BASELINE} (paired by seed)\n", savings_md(group_summary), sources_md(group_runs, TABLE_SOURCES)]
            md += ["### Stand-alone ground truth (cf. the paper's Table 1)\n", standalone_md(group_summary, source)]
            paper = paper_md(group_summary)
            if paper:
                md += [
                    "### Comparison with the paper\n",
                    "Paper: ImageNet on Tesla P100, time = GPU hours, energy = GPU energy. "
                    "Ours: wall and CPU time and total energy of this group's runs, mean [95% CI] over paired seeds.\n",
                    paper,
                    sources_md(group_runs, TABLE_SOURCES),
                ]
            group_gens = gens[(gens["protocol_hash"] == protocol_hash) & (gens["checkpoint_hash"] == checkpoint_hash)]
            for supernet, supernet_gens in group_gens.groupby("supernet"):
                folder = figure_dir(out_dir, supernet, index, len(groups))
                supernet_runs = group_runs[group_runs["supernet"] == supernet]
                md.append(f"### Figures: {supernet} (in `{folder.relative_to(out_dir).as_posix()}/`)\n")
                energy_sources = dict(zip(supernet_runs["run_id"], supernet_runs[schema.source_column("energy_j")]))
                for caption, path in supernet_figures(supernet_gens, supernet, folder, formats, energy_sources):
                    md.append(_figure_md(caption, path, out_dir))
                strips = seed_strips(supernet_runs, supernet, folder / FIGURE_FILES["seed_savings"], formats)
                if strips is not None:
                    caption = (
                        f"CPU time saved and held-out test accuracy difference vs {BASELINE}, one point per paired seed: "
                        "a bimodal outcome shows as two clusters that a mean would hide"
                    )
                    md.append(_figure_md(caption, strips, out_dir))
                md += _premises_section(supernet_gens, group_runs, supernet, out_dir, folder, formats)
                mine = [
                    r for r in records
                    if (r.run.setup.protocol_hash, r.run.setup.checkpoint_hash, r.run.setup.supernet) == (protocol_hash, checkpoint_hash, supernet)
                ]
                trust = assess(supernet, mine, checks, results, source.recipe_hash if source else None)
                md += [f"### Can {supernet} rank?\n", trust_md([trust])]
                bar.set_postfix(done=folder.relative_to(out_dir).as_posix())
                bar.update(1)
    md += ["## Runs\n", runs_md(runs)]
    report = out_dir / "report.md"
    write_text(report, "\n".join(md))
    log.info("wrote %s (%d runs, %d skipped)", report, len(records), len(skipped))
    return report
