"""Comparative reports: files, numbers (checked against an independent pandas computation), grouping, n/a."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import scipy.stats

import searchers
from harness import schema
from harness.report import style
from harness.report import PAPER_RESULTS, searcher_colour, sweep_report, write_report
from harness.report.figures import FIGURE_FILES
from harness.report.statistics import SCORE_DIFFERENCE, SEARCH_SCORE_DIFFERENCE, SELECTION_GAP
from fixtures_runs import TEST_IMAGES, FixtureRun, result_for, table_rows, totals_for, write_fixture_runs, write_run

SEEDS = (3, 11)
PAGE_WIDE = ("majority_share_per_block.png", "savings_per_seed.png", "majority_vs_final_choice.png")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NO_ENERGY = "unavailable: no RAPL and no NVML"


def _figure_names(folder: str = "spos-tiny") -> set[str]:
    return {f"{folder}/{name}" for name in FIGURE_FILES.values()}


def _pngs(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*.png")}


def _assert_png(path: Path, width_px: int) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[1] == width_px, f"{path.name}: {pixels.shape}"
    assert pixels.shape[0] > 300 and pixels.std() > 0.05, f"{path.name} looks empty"


def _independent_runs(root: Path) -> pd.DataFrame:
    """Per-run numbers read straight from run.json, without harness.store or harness.report."""
    rows = []
    for run_json in sorted(root.glob(f"*/{schema.RUN_JSON}")):
        run = json.loads(run_json.read_text())
        rows.append({"searcher": run["searcher"], "seed": run["seed"], "protocol_hash": run["protocol_hash"], **run["totals"], **run["result"]})
    return pd.DataFrame(rows)


def _interval_text(per_seed: pd.Series) -> str:
    """The expected savings cell: mean [95% Student-t interval], computed independently with scipy."""
    low, high = scipy.stats.t.interval(0.95, len(per_seed) - 1, loc=per_seed.mean(), scale=scipy.stats.sem(per_seed))
    text = f"{per_seed.mean():.1f} [{low:.1f}, {high:.1f}]"
    return text if not low <= 0 <= high else f"{text} not significant"


def _interval_pts(per_seed: pd.Series) -> str:
    """The expected score-difference cell (2 decimals), computed independently with scipy."""
    low, high = scipy.stats.t.interval(0.95, len(per_seed) - 1, loc=per_seed.mean(), scale=scipy.stats.sem(per_seed))
    text = f"{per_seed.mean():.2f} [{low:.2f}, {high:.2f}]"
    return text if not low <= 0 <= high else f"{text} not significant"


@pytest.fixture(scope="module")
def basic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    write_fixture_runs(root, seeds=SEEDS)
    out = tmp_path_factory.mktemp("report")
    return root, write_report([root], out, title="fixture report")


def test_report_writes_every_file(basic: tuple[Path, Path]) -> None:
    _, report = basic
    out = report.parent
    assert report == out / "report.md"
    assert report.read_text().startswith("# fixture report\n")
    expected = _figure_names()
    assert _pngs(out) == expected
    text = report.read_text()
    for name in expected:
        assert f"]({name})" in text, f"report.md does not show {name}"
        # Paper sizes at 200 dpi: one column (3.5 in) or the full page width (7 in).
        _assert_png(out / name, 1400 if name.endswith(PAGE_WIDE) else 700)
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["searcher"]) == ["evolution", "random", "pcf-es", "pcf-es-is"]


def test_score_figures_warn_that_importance_sampled_scores_are_estimates(basic: tuple[Path, Path], tmp_path: Path) -> None:
    note = "once importance sampling starts, search scores are estimates"
    captions = [line for line in basic[1].read_text().splitlines() if line.startswith("*Best search score")]
    assert len(captions) == 3 and all(f"pcf-es-is: {note}" in c for c in captions), captions
    root = tmp_path / "runs"
    write_fixture_runs(root, seeds=SEEDS, searchers=("evolution", "pcf-es"))
    assert note not in write_report([root], tmp_path / "report").read_text()


def test_summary_numbers_match_independent_pandas(basic: tuple[Path, Path]) -> None:
    root, report = basic
    summary = pd.read_csv(report.parent / "summary.csv").set_index("searcher")
    runs = _independent_runs(root)
    for metric in ("wall_s", "energy_j", "co2_g", "macs", "candidates_evaluated", "generations", "final_score", "test_accuracy"):
        stats = runs.groupby("searcher")[metric].agg(["mean", "std"])
        for searcher, (mean, std) in stats.iterrows():
            assert summary.loc[searcher, f"{metric}_mean"] == pytest.approx(mean, rel=1e-12), (metric, searcher)
            assert summary.loc[searcher, f"{metric}_std"] == pytest.approx(std, rel=1e-12), (metric, searcher)
    assert (summary["runs"] == 2).all() and (summary["seeds"] == "3 11").all()

    evolution = runs[runs["searcher"] == "evolution"].set_index("seed")
    table = {r["searcher"]: r for r in table_rows(report.read_text(), "| supernet | searcher | paired seeds")}
    for searcher in ("random", "pcf-es", "pcf-es-is"):
        mine = runs[runs["searcher"] == searcher].set_index("seed")
        for quantity in ("wall_s", "energy_j", "co2_g", "macs"):
            per_seed = 100.0 * (1.0 - mine[quantity] / evolution.loc[mine.index, quantity])
            column = f"{quantity}_reduction_pct"
            assert summary.loc[searcher, f"{column}_mean"] == pytest.approx(per_seed.mean(), rel=1e-12)
            assert summary.loc[searcher, f"{column}_std"] == pytest.approx(per_seed.std(), rel=1e-12)
            # The fixture makes a pairing with the mean evolution run give a different answer.
            unpaired = 100.0 * (1.0 - mine[quantity] / evolution[quantity].mean())
            assert not unpaired.mean() == pytest.approx(per_seed.mean(), rel=1e-3)
        wall = 100.0 * (1.0 - mine["wall_s"] / evolution.loc[mine.index, "wall_s"])
        assert table[searcher]["time saved (%)"] == _interval_text(wall)
        cpu = 100.0 * (1.0 - mine["cpu_s"] / evolution.loc[mine.index, "cpu_s"])
        assert table[searcher]["CPU time saved (%)"] == _interval_text(cpu)
    assert table["evolution"]["time saved (%)"] == "baseline"


def test_paper_comparison_sits_next_to_our_numbers(basic: tuple[Path, Path]) -> None:
    _, report = basic
    rows = table_rows(report.read_text(), "| family (ours)")
    pcf = next(r for r in rows if r["searcher (ours)"] == "pcf-es")
    assert (pcf["family (ours)"], pcf["paper time saved (%)"], pcf["paper energy saved (%)"]) == ("SPOS (spos-tiny)", "55", "51")
    summary = pd.read_csv(report.parent / "summary.csv").set_index("searcher")
    low, high = summary.loc["pcf-es", "wall_s_reduction_pct_ci_low"], summary.loc["pcf-es", "wall_s_reduction_pct_ci_high"]
    expected = f"{summary.loc['pcf-es', 'wall_s_reduction_pct_mean']:.1f} [{low:.1f}, {high:.1f}]"
    assert pcf["ours time saved (%)"] in (expected, f"{expected} not significant")
    journal = next(r for r in rows if r["searcher (ours)"] == "pcf-es-is")
    assert (journal["paper time saved (%)"], journal["paper CO2 saved (%)"]) == ("76", "71")
    cf = [r for r in rows if r["searcher (ours)"].startswith("cf-es")]
    assert cf and all(r["searcher (ours)"] == "cf-es (not run)" for r in cf)
    # Only SPOS-family rows: no FairNAS / GreedyNAS numbers for a spos supernet.
    assert {r["paper settings"] for r in rows} <= {p.settings + (f" ({p.qualifier})" if p.qualifier else "") for p in PAPER_RESULTS if p.family in ("SPOS", None)}


def test_sources_printed_under_energy_tables(basic: tuple[Path, Path]) -> None:
    _, report = basic
    text = report.read_text()
    assert text.count("- GPU energy: unavailable: no CUDA device") == 3  # summary, savings, paper tables
    assert "- CO2: codecarbon_estimate (estimate, not a measurement)" in text
    assert "- grid intensity for CO2: 56.0 g/kWh for FRA" in text


def test_bad_runs_are_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "runs"
    write_fixture_runs(root, seeds=SEEDS, searchers=("evolution", "pcf-es"))
    running = write_run(root, FixtureRun("evolution", 99, status="running", run_id="evo-running"))
    no_candidates = write_run(root, FixtureRun("evolution", 98, run_id="evo-no-candidates"))
    (no_candidates / schema.CANDIDATES_CSV).unlink()
    future = write_run(root, FixtureRun("evolution", 97, schema_version=99, run_id="evo-future-schema"))
    with caplog.at_level(logging.WARNING):
        report = write_report([root], tmp_path / "out")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for bad, why in ((running, "status 'running'"), (no_candidates, "missing candidates.csv"), (future, "schema version 99")):
        assert any(str(bad) in w and why in w for w in warnings), (bad, warnings)
        assert f"`{bad}`" in report.read_text()
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("searcher")
    assert summary.loc["evolution", "runs"] == 2
    clean = [totals_for(FixtureRun("evolution", s))["wall_s"] for s in SEEDS]
    assert summary.loc["evolution", "wall_s_mean"] == pytest.approx(sum(clean) / 2, rel=1e-12)


def test_protocols_are_reported_in_separate_groups(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    write_fixture_runs(root, seeds=SEEDS, searchers=("evolution", "pcf-es"), second_protocol=True)
    report = write_report([root], tmp_path / "out")
    text = report.read_text()
    assert "## Group 1: protocol `protoA`, checkpoint `ckptA`" in text
    assert "## Group 2: protocol `protoB`, checkpoint `ckptA`" in text
    assert "never averaged together" in text
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert len(summary) == 4 and (summary["runs"] == 2).all()
    for protocol in ("protoA", "protoB"):
        wall = [totals_for(FixtureRun("evolution", s, protocol_hash=protocol))["wall_s"] for s in SEEDS]
        row = summary[(summary["protocol_hash"] == protocol) & (summary["searcher"] == "evolution")]
        assert row["wall_s_mean"].item() == pytest.approx(sum(wall) / 2, rel=1e-12)
    assert _pngs(tmp_path / "out") == _figure_names("spos-tiny-group1") | _figure_names("spos-tiny-group2")
    assert "### Figures: spos-tiny (in `spos-tiny-group2/`)" in text


def test_unavailable_energy_is_na_with_reason_never_zero(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    write_fixture_runs(root, seeds=SEEDS, searchers=("evolution", "pcf-es"), unavailable={"energy_j": NO_ENERGY})
    report = write_report([root], tmp_path / "out")
    text = report.read_text()
    for row in table_rows(text, "| supernet | searcher | seeds"):
        assert row["energy (J)"] == f"n/a ({NO_ENERGY})"
        assert row["wall time (s)"] != "" and not row["wall time (s)"].startswith("n/a")
    pcf = next(r for r in table_rows(text, "| supernet | searcher | paired seeds") if r["searcher"] == "pcf-es")
    assert pcf["energy saved (%)"] == f"n/a ({NO_ENERGY})"
    assert f"- energy (total): {NO_ENERGY}" in text
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert summary["energy_j_mean"].isna().all() and summary["energy_j_std"].isna().all()
    assert (summary["energy_j_missing_reason"] == NO_ENERGY).all()
    assert f"not drawn: energy unavailable for every run ({NO_ENERGY}); runs with CodeCarbon on (no --no-carbon)" in text
    assert not (tmp_path / "out" / "spos-tiny" / FIGURE_FILES["score_vs_energy"]).exists()


def test_partly_unavailable_cell_is_na_and_all_sources_are_listed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "runs"
    write_fixture_runs(root, seeds=SEEDS, searchers=("evolution", "pcf-es"))
    lone = write_run(root, FixtureRun("pcf-es", 5, unavailable={"energy_j": NO_ENERGY}))  # no evolution run with seed 5
    with caplog.at_level(logging.WARNING):
        report = write_report([root], tmp_path / "out")
    assert any(lone.name in r.getMessage() and "no evolution run with the same seed" in r.getMessage() for r in caplog.records)
    text = report.read_text()
    pcf = next(r for r in table_rows(text, "| supernet | searcher | seeds") if r["searcher"] == "pcf-es")
    assert pcf["seeds"] == "3 5 11"
    assert pcf["energy (J)"] == f"n/a ({NO_ENERGY})"  # not the mean of the two runs that have it
    saved = next(r for r in table_rows(text, "| supernet | searcher | paired seeds") if r["searcher"] == "pcf-es")
    assert saved["paired seeds"] == "2" and not saved["energy saved (%)"].startswith("n/a")
    assert f"- energy (total): rapl [4 runs]; {NO_ENERGY} [1 run]" in text


def test_sweep_report_figure_and_table(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    write_fixture_runs(root, seeds=SEEDS, searchers=("evolution",))
    thresholds = (0.6, 0.7, 0.8)
    for threshold in thresholds:
        for seed in SEEDS:
            write_run(root, FixtureRun("pcf-es", seed, searcher_params={"threshold": threshold, "monitor": 3}))
    report = sweep_report([root], tmp_path / "out", "threshold")
    assert report == tmp_path / "out" / "sweep_threshold.md"
    _assert_png(tmp_path / "out" / "spos-tiny" / "sweep_threshold.png", 700)
    assert "](spos-tiny/sweep_threshold.png)" in report.read_text()
    table = pd.read_csv(tmp_path / "out" / "sweep_threshold.csv")
    pcf = table[table["searcher"] == "pcf-es"].sort_values("value")
    assert list(pcf["value"]) == list(thresholds)
    for threshold, saved in zip(thresholds, pcf["cpu_s_reduction_pct_mean"]):
        per_seed = [
            100.0 * (1.0 - totals_for(FixtureRun("pcf-es", s, searcher_params={"threshold": threshold}))["cpu_s"] / totals_for(FixtureRun("evolution", s))["cpu_s"])
            for s in SEEDS
        ]
        assert saved == pytest.approx(sum(per_seed) / 2, rel=1e-12)
    rows = table_rows(report.read_text(), "| searcher | threshold")
    assert [(r["searcher"], r["threshold"]) for r in rows] == [("evolution", "–"), ("pcf-es", "0.6"), ("pcf-es", "0.7"), ("pcf-es", "0.8")]
    assert rows[1]["CPU time saved (%)"].startswith(f"{pcf['cpu_s_reduction_pct_mean'].iloc[0]:.1f} [")
    held_out = [100 * (result_for(FixtureRun("pcf-es", s))["test_accuracy"] - result_for(FixtureRun("evolution", s))["test_accuracy"]) for s in SEEDS]
    assert rows[1][SCORE_DIFFERENCE[1]] == _interval_pts(pd.Series(held_out))
    assert rows[1]["held-out test accuracy"].startswith(f"{np.mean([result_for(FixtureRun('pcf-es', s))['test_accuracy'] for s in SEEDS]):.4f} ±")


def test_sweep_report_rejects_bad_requests(tmp_path: Path) -> None:
    write_fixture_runs(tmp_path / "runs", seeds=(3,), searchers=("evolution", "random"))
    with pytest.raises(ValueError, match="unknown sweep parameter 'depth'; choose one of threshold, monitor, rate"):
        sweep_report([tmp_path / "runs"], tmp_path / "out", "depth")
    with pytest.raises(ValueError, match="no runs with searcher parameter 'threshold'"):
        sweep_report([tmp_path / "runs"], tmp_path / "out", "threshold")
    with pytest.raises(ValueError, match="no complete runs found"):
        write_report([tmp_path / "empty"], tmp_path / "out")


def test_every_searcher_keeps_one_colour() -> None:
    known = [searcher_colour(s) for s in ("random", "evolution", "cf-es", "pcf-es", "pcf-es-is")]
    assert known == [searchers.searcher_entry(s).colour for s in ("random", "evolution", "cf-es", "pcf-es", "pcf-es-is")]
    assert known == [style.registered_styles()[s][0] for s in ("random", "evolution", "cf-es", "pcf-es", "pcf-es-is")]
    assert known == ["#999999", "#000000", "#E69F00", "#0072B2", "#D55E00"]  # the built-ins' colours before the registry
    assert len(set(known)) == 5
    assert searcher_colour("my-searcher") == searcher_colour("my-searcher") and searcher_colour("my-searcher") not in known


def test_figures_draw_a_user_searcher_in_its_entry_style_and_an_unregistered_one_in_a_free_colour(monkeypatch) -> None:
    from harness.report import searcher_style
    from searchers import RandomSearcher, registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_searcher("optuna", type("Optuna", (RandomSearcher,), {}))
    registry.register_searcher("optuna-nsga2", type("OptunaNSGA2", (RandomSearcher,), {}))
    styles = style.registered_styles()
    assert registry.registered_searchers()["optuna"].colour is None  # declared none: the style picks one
    assert searcher_style("optuna") == styles["optuna"] and styles["optuna"][1] == "-"
    assert searcher_colour("optuna") != searcher_colour("optuna-nsga2")
    assert len(set(styles.values())) == len(styles)
    # A searcher found only in old run folders: a stable colour that no registered searcher has.
    assert searcher_style("from-an-old-run") == searcher_style("from-an-old-run")
    assert searcher_colour("from-an-old-run") not in {colour for colour, _ in styles.values()}


def test_once_the_palette_is_spent_colours_repeat_with_another_line_style(monkeypatch) -> None:
    from searchers import RandomSearcher, registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    free = len(style.PALETTE) - len(registry.registered_searchers())
    for i in range(free + 1):
        registry.register_searcher(f"user-{i}", type(f"User{i}", (RandomSearcher,), {}))
    styles = style.registered_styles()
    assert len(set(styles.values())) == len(styles)
    assert styles[f"user-{free}"][1] == "--"


def test_sweep_points_that_coincide_share_one_label() -> None:
    from harness.report.sweeps import _joint_label

    assert _joint_label(["f=1", "f=2", "f=4"]) == "f=1, 2, 4"
    assert _joint_label(["H=0.7"]) == "H=0.7"
    assert _joint_label(["evolution", "rate=1"]) == "evolution, rate=1"


def test_runs_that_end_early_are_held_to_their_configurations_last_generation() -> None:
    from harness.report.figures import hold_after_end

    gens = pd.DataFrame({
        "run_id": ["a", "a", "a", "b", "b", "b", "b", "b", "c", "c"],
        "searcher": ["pcf-es"] * 8 + ["evolution"] * 2,
        "variant": [""] * 10,
        "generation": [0, 1, 2, 0, 1, 2, 3, 4, 0, 1],
        "frozen_depth": [0, 3, 5, 0, 1, 1, 1, 1, 0, 0],
        "best_score": [0.5, 0.6, 0.7, 0.5, 0.55, 0.6, 0.65, 0.66, 0.4, 0.45],
    })
    held = hold_after_end(gens, "frozen_depth", final=12)
    added = held.iloc[len(gens):]
    assert list(added["run_id"]) == ["a", "a"] and list(added["generation"]) == [3, 4]
    assert list(added["frozen_depth"]) == [12, 12] and list(added["best_score"]) == [0.7, 0.7]
    assert hold_after_end(gens, "best_score").iloc[len(gens):]["best_score"].tolist() == [0.7, 0.7]
    # A freezing run with no other seed, held to the longest run's end (what the depth figure does).
    alone = hold_after_end(gens[gens["run_id"] == "a"], "frozen_depth", final=12, until={"a": 4})
    assert alone["generation"].tolist() == [0, 1, 2, 3, 4] and alone["frozen_depth"].tolist() == [0, 3, 5, 12, 12]


def test_a_lone_freezing_search_that_froze_every_block_shows_fully_frozen_after_its_end(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    write_fixture_runs(root, seeds=(3,), searchers=("evolution", "pcf-es"))  # pcf-es ends a generation early
    report = write_report([root], tmp_path / "out")
    assert "counts as fully frozen afterwards, up to the last generation of the longest run" in report.read_text()


def test_contended_run_is_flagged_and_its_cpu_time_saving_shown(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    write_fixture_runs(root, seeds=SEEDS, searchers=("evolution", "random"))
    for seed in SEEDS:
        write_run(root, FixtureRun("pcf-es", seed, cpu_ratio=0.5 if seed == SEEDS[0] else 0.9))
    # Two threads: wall > CPU time is then no sign of waiting, and such a run is never flagged.
    write_run(root, FixtureRun("pcf-es-is", SEEDS[0], cpu_ratio=0.3, threads=2))
    text = write_report([root], tmp_path / "report").read_text()
    rows = {r["searcher"]: r for r in table_rows(text, "| supernet | searcher | paired seeds")}
    assert rows["pcf-es"]["time saved (%)"].endswith(" †")
    assert not rows["random"]["time saved (%)"].endswith("†") and not rows["pcf-es-is"]["time saved (%)"].endswith("†")
    contended = FixtureRun("pcf-es", SEEDS[0]).name
    footnote = next(line for line in text.splitlines() if line.startswith("† contended:"))
    assert contended in footnote and "rely on the CPU-time saving" in footnote
    runs = {r["run_id"]: r for r in table_rows(text, "| run_id |")}
    assert runs[contended]["contended"] == "yes" and runs[FixtureRun("pcf-es", SEEDS[1]).name]["contended"] == "no"
    # The CPU-time saving is computed from CPU times, not wall times.
    cpu = pd.Series([100.0 * (1.0 - totals_for(FixtureRun("pcf-es", s, cpu_ratio=r))["cpu_s"] / totals_for(FixtureRun("evolution", s))["cpu_s"])
                     for s, r in zip(SEEDS, (0.5, 0.9))])
    assert rows["pcf-es"]["CPU time saved (%)"] == _interval_text(cpu)


def test_one_seed_savings_say_so_instead_of_an_interval(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    write_fixture_runs(root, seeds=(3,), searchers=("evolution", "pcf-es"))
    text = write_report([root], tmp_path / "report").read_text()
    row = next(r for r in table_rows(text, "| supernet | searcher | paired seeds") if r["searcher"] == "pcf-es")
    for label in ("time saved (%)", "CPU time saved (%)", "MACs saved (%)", SCORE_DIFFERENCE[1], SEARCH_SCORE_DIFFERENCE[1]):
        assert row[label].endswith("(1 seed: no interval)") and "±" not in row[label] and "[" not in row[label], row[label]
    from harness.report.console import console_summary
    from harness.store import load_records

    summary = console_summary(load_records([root]))
    assert list(summary.table.columns[-3:]) == ["time_saved_%", "CPU_time_saved_%", "MACs_saved_%"]
    assert summary.notes[2:] == ("1 seed: the savings above have no confidence interval; run --seeds 2 or more to get one.",)
    assert summary.notes[0].startswith("macs_without_reuse: what reuse level none would have executed")
    assert summary.notes[1].startswith("test_acc: the answer's accuracy on held-out test images, the quality measure")
    assert list(summary.table["time_saved_%"]) == ["baseline", summary.table["time_saved_%"].iloc[1]]
    assert isinstance(summary.table["time_saved_%"].iloc[1], float)


def test_a_single_search_prints_its_own_costs_without_none_or_a_pairing_warning(tmp_path: Path, caplog) -> None:
    from harness.report.console import console_summary
    from harness.store import load_records

    root = tmp_path / "runs"
    write_fixture_runs(root, seeds=(3,), searchers=("pcf-es",))
    with caplog.at_level(logging.WARNING):
        summary = console_summary(load_records([root]))
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    text = summary.format()
    assert "None" not in text and "saved" not in " ".join(summary.table.columns)
    assert {"wall_s", "cpu_s", "macs", "energy_j", "co2_g", "search_split_score", "test_acc"} <= set(summary.table.columns)
    assert summary.notes[-1].startswith("Savings need a evolution run with the same seed")
    # Beside an evolution run of another seed: the unpaired run says why, never None.
    write_run(root, FixtureRun("evolution", 4))
    table = console_summary(load_records([root])).table
    assert list(table["time_saved_%"]) == ["baseline", "n/a (no evolution s3)"]


def test_legend_with_long_labels_fits_the_figure() -> None:
    from harness.report.style import COLUMN_WIDTH_IN, legend, new_figure

    figure = new_figure(COLUMN_WIDTH_IN, 2.9)
    axes = figure.add_subplot()
    labels = ["evolution", "optuna (sampler=TPESampler, n_startup_trials=20)", "optuna-nsga2 (population=50)", "pcf-es"]
    for i, label in enumerate(labels):
        axes.plot([0, 1], [i, i + 1], label=label)
    legend(figure, axes, labels)
    drawn = figure.legends[-1]
    box = drawn.get_window_extent(figure.canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= figure.get_figwidth() * figure.dpi
    assert [t.get_text().replace("\n", " ") for t in drawn.get_texts()] == labels


def test_figures_also_in_pdf_and_svg_with_an_integer_depth_axis(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    write_fixture_runs(root, seeds=SEEDS, searchers=("evolution", "pcf-es"))
    out = tmp_path / "report"
    write_report([root], out, formats=("png", "pdf", "svg"))
    for name in FIGURE_FILES.values():
        stem = out / "spos-tiny" / name
        assert stem.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
        assert b"<svg" in stem.with_suffix(".svg").read_bytes()[:500]
    svg = (out / "spos-tiny" / FIGURE_FILES["frozen_depth"]).with_suffix(".svg").read_text()
    ticks = re.findall(r"<!-- ([0-9.\-−]+) -->", svg)
    assert ticks and all(float(t.replace("−", "-")).is_integer() for t in ticks), ticks
    with pytest.raises(ValueError, match="unknown figure format"):
        write_report([root], tmp_path / "bad", formats=("png", "gif"))


def test_premises_table_and_rank_correlation_follow_the_evolution_runs(basic: tuple[Path, Path]) -> None:
    root, report = basic
    from harness.report.premises import premises
    from harness.store import generations_frame, load_records

    records = load_records([root])
    gens = generations_frame(records)
    answers = pd.Series({r.run.setup.run_id: schema.arch_to_str(r.run.result.best_arch) for r in records})
    found = premises(gens, answers, 0.7)
    evolution = gens[gens["searcher"] == "evolution"]
    for block in range(4):
        firsts = [run.loc[run[f"share_b{block}"] > 0.7, "generation"].min() for _, run in evolution.groupby("run_id")]
        assert found.first_above.loc[block, "first_generation_above_h"] == pytest.approx(np.nanmean(firsts))
    expected = np.mean([
        (run.set_index("generation")["majority_b1"] != schema.arch_from_str(answers[run_id])[1]).astype(float)
        for run_id, run in evolution.groupby("run_id")
    ], axis=0)
    assert found.distance[1].to_numpy() == pytest.approx(expected)
    text = report.read_text()
    assert "### Premises of PCF-ES on spos-tiny" in text
    rho = scipy.stats.spearmanr(found.first_above["block"], found.first_above["first_generation_above_h"]).statistic
    assert found.spearman_rho == pytest.approx(rho)
    assert f"ρ = {rho:.2f} (p = " in text
    assert "first generation with majority share > H = 0.7 (mean)" in text


def test_premises_count_an_evolution_search_run_at_two_reuse_levels_once(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for seed in (0, 1):
        write_run(root, FixtureRun("evolution", seed))
        other = write_run(root, FixtureRun("evolution", seed, run_id=f"evolution-none-s{seed}"))
        run = json.loads((other / schema.RUN_JSON).read_text())
        run["config"]["reuse"] = {"level": "none"}
        (other / schema.RUN_JSON).write_text(json.dumps(run))
    text = write_report([root], tmp_path / "rep").read_text()
    assert "Evolution runs on spos-tiny (2)," in text and "/4 |" not in text


def test_the_same_run_given_twice_is_one_seed_and_the_report_says_so(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    run = write_run(root, FixtureRun("evolution", 3))
    copy = root / "copy-of-it"
    shutil.copytree(run, copy)
    report = write_report([run, run, copy], tmp_path / "rep")
    summary = pd.read_csv(tmp_path / "rep" / "summary.csv")
    assert list(summary["runs"]) == [1] and list(summary["seeds"].astype(str)) == ["3"]
    assert summary["wall_s_std"].isna().all()  # one run: no spread to show
    line = next(line for line in report.read_text().splitlines() if line.startswith("Dropped as duplicates"))
    assert f"`{run}`" in line and f"`{copy}`" in line
    assert "Skipped" not in report.read_text()  # a copy is a duplicate, not an incomplete run


def test_every_figure_kind_keeps_its_text_inside_the_canvas_and_its_bands_feasible(tmp_path: Path, monkeypatch) -> None:
    """Render every figure kind (report and sweep, one and two groups) and check each drawn text artist
    lies inside its canvas, and each ±std band of an accuracy or a depth within its feasible range."""
    import matplotlib.text
    from matplotlib.collections import FillBetweenPolyCollection, PolyCollection

    outside: list[str] = []
    drawn_text = matplotlib.text.Text.draw

    def checked_draw(text, renderer):
        drawn_text(text, renderer)
        if text.get_visible() and text.get_text().strip():
            box, canvas = text.get_window_extent(renderer), text.figure.bbox
            if not (box.x0 >= canvas.x0 - 0.5 and box.y0 >= canvas.y0 - 0.5 and box.x1 <= canvas.x1 + 0.5 and box.y1 <= canvas.y1 + 0.5):
                outside.append(f"{text.get_text()!r} at {box.bounds} outside {canvas.bounds}")

    monkeypatch.setattr(matplotlib.text.Text, "draw", checked_draw)
    bands: dict[str, list[tuple[float, float]]] = {}
    saving = matplotlib.figure.Figure.savefig

    def record_bands(figure, path, **kwargs):
        for axes in figure.axes:
            title = axes.get_title()
            for band in axes.collections:
                if isinstance(band, (PolyCollection, FillBetweenPolyCollection)):
                    ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
                    bands.setdefault(title, []).append((float(ys.min()), float(ys.max())))
        return saving(figure, path, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record_bands)
    root = tmp_path / "runs"
    write_fixture_runs(root, seeds=(3, 11, 12), searchers=("evolution", "random", "cf-es", "pcf-es", "pcf-es-is"), second_protocol=True)
    for threshold in (0.5, 0.9):
        write_run(root, FixtureRun("pcf-es", 3, searcher_params={"population": 6, "threshold": threshold, "monitor": 3}))
        write_run(root, FixtureRun("pcf-es", 11, searcher_params={"population": 6, "threshold": threshold, "monitor": 3}))
    write_report([root], tmp_path / "out")
    sweep_report([root], tmp_path / "out", "threshold")
    assert len(_pngs(tmp_path / "out")) == 2 * len(FIGURE_FILES) + 2
    assert not outside, "\n".join(outside)
    depth_bands = [b for title, found in bands.items() if "frozen prefix depth" in title for b in found]
    score_bands = [b for title, found in bands.items() if "best score per generation" in title for b in found]
    assert depth_bands and all(0.0 <= low and high <= 4.0 for low, high in depth_bands), depth_bands
    assert score_bands and all(0.0 <= low and high <= 1.0 for low, high in score_bands), score_bands


def test_a_depth_band_that_would_run_above_every_block_stops_at_the_number_of_blocks(tmp_path: Path, monkeypatch) -> None:
    import matplotlib.figure
    from matplotlib.collections import FillBetweenPolyCollection

    from harness.report.figures import _mean_lines

    # Two seeds of one configuration: depths 2 and 4 of 4 blocks at generation 1 -> mean 3 ± 1.41.
    gens = pd.DataFrame({
        "run_id": ["a", "a", "b", "b"], "searcher": "pcf-es", "variant": "", "generation": [0, 1, 0, 1],
        "frozen_depth": [0, 2, 0, 4],
    })
    captured = []
    saving = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda figure, path, **kw: captured.append(figure) or saving(figure, path, **kw))
    _mean_lines(gens, "frozen_depth", "depth", "frozen blocks (of 4)", tmp_path / "d.png", ("png",), bounds=(0.0, 4.0), steps=True)
    band = next(c for c in captured[0].axes[0].collections if isinstance(c, FillBetweenPolyCollection))
    ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
    assert ys.max() == 4.0 and ys.min() == 0.0


def test_a_report_folder_that_cannot_be_written_is_one_line_naming_the_fix(tmp_path: Path, capsys) -> None:
    from harness import cli

    root = tmp_path / "runs"
    write_fixture_runs(root, seeds=(3,), searchers=("evolution",))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match=f"cannot write the report to {blocker / 'out'}: .*; pass -o a folder you can write"):
        write_report([root], blocker / "out")
    assert cli.main(["report", str(root), "-o", str(blocker / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pcfes report: error: cannot write the report to ")
    with pytest.raises(ValueError, match="pass -o a folder you can write"):
        sweep_report([root], blocker / "out", "threshold")


def test_summary_csv_reads_back_with_stable_dtypes(tmp_path: Path) -> None:
    """``seeds`` a string for one seed and for several; ``*_significant`` nullable booleans, <NA> without an interval."""
    from harness.store import read_summary

    root = tmp_path / "runs"
    write_fixture_runs(root, seeds=SEEDS, searchers=("evolution", "pcf-es"))
    write_run(root, FixtureRun("random", 3))  # one seed: no interval
    write_run(root, FixtureRun("evolution", 5, supernet="spos-other"))
    write_run(root, FixtureRun("pcf-es", 5, supernet="spos-other"))
    out = tmp_path / "report"
    write_report([root], out)
    summary = read_summary(out / schema.SUMMARY_CSV)
    assert summary["seeds"].dtype == "string"
    assert dict(zip(summary["searcher"] + "/" + summary["supernet"], summary["seeds"])) == {
        "evolution/spos-other": "5", "pcf-es/spos-other": "5", "evolution/spos-tiny": "3 11", "random/spos-tiny": "3",
        "pcf-es/spos-tiny": "3 11",
    }
    significant = [c for c in summary.columns if c.endswith("_significant")]
    assert significant and all(summary[c].dtype == "boolean" for c in significant)
    pcf = summary[(summary["searcher"] == "pcf-es") & (summary["supernet"] == "spos-tiny")].iloc[0]
    lone = summary[summary["searcher"] == "random"].iloc[0]
    assert not pd.isna(pcf["wall_s_reduction_pct_significant"]) and bool(pcf["wall_s_reduction_pct_significant"])
    assert pd.isna(lone["wall_s_reduction_pct_significant"])
    # The same with plain pandas and the schema's dtypes, as a user outside the package would read it.
    plain = pd.read_csv(out / schema.SUMMARY_CSV, dtype=schema.summary_dtypes(pd.read_csv(out / schema.SUMMARY_CSV, nrows=0).columns))
    pd.testing.assert_frame_equal(plain, summary)


def test_quality_is_the_paired_held_out_difference_and_the_selection_gap_is_shown(basic: tuple[Path, Path]) -> None:
    _, report = basic
    text = report.read_text()
    rows = {r["searcher"]: r for r in table_rows(text, "| supernet | searcher | paired seeds")}
    for searcher in ("pcf-es", "pcf-es-is", "random"):
        held_out, search_split = [], []
        for seed in SEEDS:
            mine, base = result_for(FixtureRun(searcher, seed)), result_for(FixtureRun("evolution", seed))
            held_out.append(100 * (mine["test_accuracy"] - base["test_accuracy"]))
            search_split.append(100 * (mine["final_score"] - base["final_score"]))
        assert rows[searcher][SCORE_DIFFERENCE[1]] == _interval_pts(pd.Series(held_out)), searcher
        # The fixtures' search-split differences are the same every seed: a zero-width interval.
        assert rows[searcher][SEARCH_SCORE_DIFFERENCE[1]].startswith(f"{np.mean(search_split):.2f} ["), searcher
        gaps = [100 * (result_for(FixtureRun(searcher, seed))["final_score"] - result_for(FixtureRun(searcher, seed))["test_accuracy"]) for seed in SEEDS]
        assert rows[searcher][SELECTION_GAP[1]] == _interval_pts(pd.Series(gaps)), searcher
    # Evolution is the baseline of the differences but has a winner's curse of its own: 2 points every seed.
    assert rows["evolution"][SCORE_DIFFERENCE[1]] == "baseline"
    assert rows["evolution"][SELECTION_GAP[1]] == "2.00 [2.00, 2.00]"
    # The held-out and search-split differences disagree in sign for pcf-es: the table must not mix them up.
    assert rows["pcf-es"][SEARCH_SCORE_DIFFERENCE[1]].startswith("0.00")
    assert rows["pcf-es"][SCORE_DIFFERENCE[1]].startswith("0.45")
    accuracy = pd.read_csv(report.parent / "summary.csv")["test_accuracy_mean"].mean()
    se = 100 * np.sqrt(accuracy * (1 - accuracy) / TEST_IMAGES)
    assert f"Test split: {TEST_IMAGES:,} images; at accuracy {accuracy:.3f} one held-out accuracy has a binomial standard error of {se:.2f} points" in text


def test_a_report_without_test_split_says_the_held_out_column_is_missing_and_why(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    write_fixture_runs(root, seeds=SEEDS, searchers=("evolution", "pcf-es"), test_split=False)
    text = write_report([root], tmp_path / "report").read_text()
    row = next(r for r in table_rows(text, "| supernet | searcher | paired seeds") if r["searcher"] == "pcf-es")
    assert row[SCORE_DIFFERENCE[1]] == "n/a (dataset has no test split)"
    assert row[SELECTION_GAP[1]] == "n/a (dataset has no test split)"
    assert row[SEARCH_SCORE_DIFFERENCE[1]].startswith("0.00")  # still shown, named for what it is
    assert "Held-out column missing: dataset has no test split (datasets fashion16)." in text


def test_stand_alone_table_pairs_each_answers_retrained_accuracy_with_evolutions(tmp_path: Path) -> None:
    from fixtures_runs import standalone_accuracy, write_standalone

    root, cache = tmp_path / "runs", tmp_path / "standalone"
    write_fixture_runs(root, seeds=SEEDS)
    for searcher in ("evolution", "pcf-es", "random"):  # pcf-es-is answers as pcf-es does: no training of its own
        for seed in SEEDS:
            if (searcher, seed) != ("random", 11):
                write_standalone(cache, FixtureRun(searcher, seed))
    write_standalone(cache, FixtureRun("evolution", 3), recipe_seed=5)  # another recipe, covering less: not used
    text = write_report([root], tmp_path / "report", standalone=cache).read_text()
    rows = {r["searcher"]: r for r in table_rows(text, "| supernet | searcher | answers retrained")}
    assert rows["pcf-es"]["answers retrained"] == "2 of 2" and rows["pcf-es-is"]["answers retrained"] == "2 of 2"
    for searcher in ("pcf-es", "pcf-es-is"):
        per_seed = [100 * (standalone_accuracy(FixtureRun(searcher, s)) - standalone_accuracy(FixtureRun("evolution", s))) for s in SEEDS]
        assert rows[searcher]["stand-alone test accuracy − evolution (points)"].startswith(f"{np.mean(per_seed):.2f} [")
    evolution = [standalone_accuracy(FixtureRun("evolution", s)) for s in SEEDS]
    assert rows["evolution"]["stand-alone test accuracy"] == f"{np.mean(evolution):.4f} ± {np.std(evolution, ddof=1):.4f}"
    assert rows["random"]["answers retrained"] == "1 of 2"
    assert rows["random"]["stand-alone test accuracy − evolution (points)"] == "n/a (answer not retrained: pcfes retrain --runs <runs folder>)"
    assert "1 other recipe(s) in the folder were not used" in text
    assert "7 of 8 answers covered by 5 distinct archs" in text  # pcf-es and pcf-es-is share their 2 archs


def test_a_report_without_stand_alone_results_says_the_columns_are_missing_and_why(basic: tuple[Path, Path]) -> None:
    _, report = basic
    assert "Stand-alone columns missing: no stand-alone results given: pcfes retrain --runs <runs folder>" in report.read_text()
