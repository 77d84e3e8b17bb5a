"""Can a supernet rank? Kendall τ with interval, noise vs signal, the arch sample, drift, the report section."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

import supernets
from conftest import FORCED_FREEZE, SMALL_NET, SMALL_OVERRIDES, with_searcher
from fixtures_runs import table_rows
from harness import rank_check, workflow
from harness.report import write_report
from harness.resolution import resolve
from harness.retrain import RESULT_JSON
from harness.report.trust import Drift, Trust, verdict


def test_kendall_on_perfect_reversed_and_random_scores() -> None:
    x = list(range(30))
    perfect = rank_check.kendall(x, [2 * v + 1 for v in x])
    assert perfect.tau == 1.0 and perfect.n == 30 and perfect.low == pytest.approx(1.0) and perfect.high == pytest.approx(1.0)
    reversed_ = rank_check.kendall(x, x[::-1])
    assert reversed_.tau == -1.0 and reversed_.high == pytest.approx(-1.0)
    rng = np.random.default_rng(7)
    a, b = rng.random(200), rng.random(200)
    random = rank_check.kendall(a, b)
    assert random.tau == pytest.approx(scipy.stats.kendalltau(a, b).statistic)
    assert random.low < 0 < random.high  # independent scores: the interval includes 0
    # The interval: tanh(atanh(tau) -+ z * sqrt(0.437 / (n - 4))).
    half = scipy.stats.norm.ppf(0.975) * math.sqrt(0.437 / 196)
    assert (random.low, random.high) == pytest.approx((math.tanh(math.atanh(random.tau) - half), math.tanh(math.atanh(random.tau) + half)))
    assert rank_check.kendall([1, 2, 3], [1, 3, 2]).low is None  # fewer than 5 pairs: no interval
    with pytest.raises(ValueError, match="3 and 2 values"):
        rank_check.kendall([1, 2, 3], [1, 2])


def test_noise_vs_signal_from_constructed_candidates() -> None:
    scores = [0.70, 0.72, 0.74, 0.76, 0.78, 0.80, 0.82, 0.84, 0.86, 0.88, 0.90]
    candidates = pd.DataFrame({
        "arch": [f"a{i}" for i in range(11)] + ["a0", "sampled"],
        "score": scores + [0.70, 0.99],  # a repeat of a0, and an importance-sampled estimate: both left out
        "sample_size": [1000] * 12 + [400],
    })
    found = rank_check.noise_vs_signal(candidates, 1000)
    assert found.candidates == 11 and found.score == pytest.approx(0.80)
    assert found.se == pytest.approx(math.sqrt(0.8 * 0.2 / 1000))
    assert found.spread_all == pytest.approx(np.std(scores, ddof=1))
    assert found.spread_top == pytest.approx(np.std([0.88, 0.90], ddof=1))  # the top decile, at least 2
    assert found.ratio_top == pytest.approx(found.se / found.spread_top)
    with pytest.raises(ValueError, match="no candidate was scored on all 500"):
        rank_check.noise_vs_signal(candidates, 500)


def test_the_arch_sample_is_seeded_distinct_and_within_the_limit() -> None:
    net = supernets.get_supernet("spos-cpu")
    limit = supernets.supernet_entry("spos-cpu").mac_limit.macs
    archs = rank_check.sample_archs(net, limit, 50)
    assert archs == rank_check.sample_archs(net, limit, 50) and len(set(archs)) == 50
    assert all(net.macs(a) <= limit for a in archs)
    assert archs != rank_check.sample_archs(net, limit, 50, seed=1)
    cheapest, _ = net.mac_range()
    with pytest.raises(ValueError, match="fewer than 50 distinct archs"):
        rank_check.sample_archs(net, cheapest, 50)


def test_drift_freezes_every_block_under_a_threshold_that_always_passes() -> None:
    params = {"population": 10, "top_k": 3, "mutation_num": 4, "crossover_num": 4, "generations": 6, **FORCED_FREEZE, "monitor": 3}
    outcomes = rank_check.drift_depths(SMALL_NET, SMALL_OVERRIDES, "pcf-es", params, None, seeds=3, generations=6)
    assert [depth for _, depth in outcomes] == [12, 12, 12] and all(first == 1 for first, _ in outcomes)
    never = {**params, "threshold": 1.0}
    assert [depth for _, depth in rank_check.drift_depths(SMALL_NET, SMALL_OVERRIDES, "pcf-es", never, None, seeds=2, generations=4)] == [0, 0]


def test_the_verdict_names_what_fails_and_what_falls() -> None:
    agree = rank_check.RankAgreement(0.6, 0.4, 0.75, 100, 1e-9)
    noise = rank_check.NoiseSignal(1000, 0.8, 0.0126, 0.05, 0.02, 500)
    trusted = verdict(Trust("net-a", noise, agree, None, ()))
    assert trusted.startswith("net-a: its rankings can be trusted at this protocol") and "stand-alone training was not measured" in trusted
    noisy = dataclasses.replace(noise, spread_top=0.01)
    drift = Drift("pcf-es", "{}", 20, (20, 20), (19, 20, 20))
    text = verdict(Trust("net-b", noisy, rank_check.RankAgreement(0.05, -0.1, 0.2, 100, 0.4), None, (drift,)))
    assert text.startswith("net-b: its rankings cannot be trusted at this protocol")
    for part in ("two halves of the validation split do not agree",
                 "the binomial noise of one score, an upper bound for comparing archs on the same images (1.26 points) is at least",
                 "its savings, being costs, stand", "; pcf-es freezes as deep on scores without any signal"):
        assert part in text, part
    unmeasured = verdict(Trust("net-c", noise, None, None, ()))
    assert "whether its rankings can be trusted is not established" in unmeasured
    drift_only = verdict(Trust("net-d", noise, agree, agree, (drift,)))
    assert drift_only.startswith("net-d: its rankings can be trusted") and "pcf-es freezes as deep" in drift_only
    # With the split halves measured, the paired noise (not the binomial bound) is weighed against the spread.
    paired = verdict(Trust("net-e", dataclasses.replace(noise, spread_top=0.01), agree, agree, (), paired_noise=0.004))
    assert paired.startswith("net-e: its rankings can be trusted")
    loud = verdict(Trust("net-f", noise, agree, agree, (), paired_noise=0.03))
    assert "the paired noise of one score, from the split halves (3.00 points) is at least the spread" in loud


def test_paired_noise_ignores_what_the_halves_do_to_every_arch_alike() -> None:
    base = [0.70 + 0.01 * i for i in range(10)]
    wobble = [0.002 * (-1) ** i for i in range(10)]
    def check(a, b):
        return rank_check.SplitHalf("n", {}, "d", "c", "p", 200, 100, None, 0, ["0"] * 10, base, list(a), list(b), 0.0)
    harder = check(base, [v - 0.05 for v in base])  # the second half's images are harder for every arch
    assert harder.paired_noise == pytest.approx(0.0, abs=1e-12) and harder.agreement.tau == pytest.approx(1.0)
    noisy = check([v + w for v, w in zip(base, wobble)], [v - w for v, w in zip(base, wobble)])
    differences = np.array([2 * w for w in wobble])
    assert noisy.paired_noise == pytest.approx(np.std(differences - differences.mean(), ddof=1) / 2)


@pytest.mark.slow
def test_a_report_with_rank_checks_scores_the_sample_on_both_halves(small_config, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    configs = [with_searcher(small_config, "evolution"), dataclasses.replace(small_config, searcher_params={**small_config.searcher_params, "monitor": 3})]
    workspace = workflow.open_workspace(resolve(configs[0]), progress=False)
    for config in configs:
        workflow.run_search(resolve(config), workspace, run_dir=runs / config.searcher, progress=False)
    text = write_report([runs], tmp_path / "report", rank_checks=True).read_text()
    [path] = list((tmp_path / "report").glob("rank_check-*.json"))
    [check] = rank_check.read_checks([tmp_path / "report"])
    assert len(check.archs) == rank_check.SAMPLE_ARCHS and check.half_images == 100 and check.val_images == 200
    # The full-protocol scores are the run's evaluator's: the same arch scores the same.
    assert check.full_scores == workspace.evaluator.score([tuple(map(int, a.split("-"))) for a in check.archs])
    tau = scipy.stats.kendalltau(check.half_a, check.half_b).statistic
    assert f"| {tau:.2f} [" in text and f"### Can {SMALL_NET} rank?" in text
    assert "frozen blocks on random scores" in text and "| pcf-es |" in text
    mtime = path.stat().st_mtime_ns
    write_report([runs], tmp_path / "report", rank_checks=True)
    assert path.stat().st_mtime_ns == mtime  # computed once

    # pcfes retrain --runs: the answers and the sample's first archs, then a report that reads them all.
    from harness import store
    from harness.cli import main

    rank_check.write_checks(store.load_records([runs]), runs)
    cache = tmp_path / "standalone"
    assert main(["retrain", "--runs", str(runs), "--rank-archs", "5", "--set", "epochs=1", "--set", "batch_size=256",
                 "--cache", str(cache), "--quiet"]) == 0
    assert len(list(cache.iterdir())) <= 2 + 5 and len(list(cache.glob(f"*/{RESULT_JSON}"))) == len(list(cache.iterdir()))
    text = write_report([runs], tmp_path / "report2", standalone=cache).read_text()
    rows = {r["searcher"]: r for r in table_rows(text, "| supernet | searcher | answers retrained")}
    assert rows["pcf-es"]["answers retrained"] == "1 of 1" and rows["evolution"]["answers retrained"] == "1 of 1"
    assert "| one-shot vs stand-alone" in text
    agreement = next(line for line in text.splitlines() if line.startswith(f"| {SMALL_NET} | 200 |"))
    assert agreement.rstrip(" |").endswith("(n = 5)")



@pytest.mark.slow
def test_reproduce_with_retrain_writes_rank_checks_stand_alone_results_and_a_report_that_reads_them(
    small_checkpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness import reproduce
    from harness.cli import main
    from conftest import SMALL_EVOLUTION, SMALL_PROTOCOL

    plans = tmp_path / "plans"
    plans.mkdir()
    protocol = "\n".join(f"{k} = {json_value(v)}" for k, v in dataclasses.asdict(SMALL_PROTOCOL).items())
    params = "\n".join(f"{k} = {json_value(v)}" for k, v in {**SMALL_EVOLUTION, **FORCED_FREEZE, "monitor": 3}.items())
    overrides = "\n".join(f"{k} = {json_value(v)}" for k, v in SMALL_OVERRIDES.items())
    (plans / "reproduce-cpu.toml").write_text(
        f'name = "tiny"\n[matrix]\nsupernets = ["{SMALL_NET}"]\nsearchers = ["evolution", "pcf-es"]\nseeds = 1\n'
        f'[base]\ncheckpoint = "{small_checkpoint}"\n[base.supernet_overrides]\n{overrides}\n[base.searcher_params]\n{params}\n'
        f"[base.protocol]\n{protocol}\n[resources]\nthreads = 1\n"
    )
    (tmp_path / "recipe.toml").write_text("epochs = 1\nbatch_size = 256\n")
    monkeypatch.setattr(reproduce, "PLANS_DIR", plans)
    monkeypatch.setattr(rank_check, "SAMPLE_ARCHS", 12)
    monkeypatch.setattr(rank_check, "RETRAIN_ARCHS", 6)
    out, report, cache = tmp_path / "runs", tmp_path / "report", tmp_path / "standalone"
    assert main(["reproduce", "--out", str(out), "--report", str(report), "--retrain", "--recipe", str(tmp_path / "recipe.toml"),
                 "--standalone", str(cache), "--quiet"]) == 0
    [check] = rank_check.read_checks([out])
    assert len(check.archs) == 12
    assert 2 <= len(list(cache.iterdir())) <= 2 + 6  # the two answers and the sample's first 6 (some may coincide)
    text = (report / "report.md").read_text()
    rows = {r["searcher"]: r for r in table_rows(text, "| supernet | searcher | answers retrained")}
    assert rows["pcf-es"]["answers retrained"] == "1 of 1"
    assert next(line for line in text.splitlines() if line.startswith(f"| {SMALL_NET} | 200 |")).rstrip(" |").endswith("(n = 6)")


def json_value(value: object) -> str:
    """A TOML value for plain JSON-like data (lists, numbers, strings, booleans)."""
    import json

    return json.dumps(value)
