"""The CI performance regression gate (harness/bench, `pcfes bench`) on the smoke-size bench."""

from __future__ import annotations

import dataclasses
import json
import time
from fractions import Fraction
from pathlib import Path

import pytest

from harness import bench, cli, provenance, store
from harness.evaluation import Evaluator
from searchers import SearchSpace, get_searcher

REPO = Path(__file__).resolve().parent.parent
SMOKE = bench.smoke_config()
SLOW = dataclasses.replace(SMOKE, disable_reuse=True)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench-cache")


@pytest.fixture(scope="module")
def workspace(cache_dir):
    return bench.prepare_workspace(SMOKE, cache_dir)


@pytest.fixture(scope="module")
def replay():
    return bench.record_replay(SMOKE)


@pytest.fixture(scope="module")
def recorded(workspace, replay, cache_dir):
    """The smoke bench with timing, written as a baseline file and read back."""
    result = bench.run_bench(SMOKE, workspace, replay, cache_dir / "runs", timing_repeats=3)
    path = cache_dir / "baseline.json"
    bench.write_baseline(result, path)
    return result, bench.load_baseline(path)


def test_landscape_scores_are_exact_dyadic_rationals():
    landscape = bench.Landscape((4, 4, 6, 7), seed=3)
    assert landscape.denominator & (landscape.denominator - 1) == 0  # a power of two
    for arch in [(0, 0, 0, 0), (3, 1, 5, 6), (2, 3, 4, 1)]:
        total = sum(row[c] for row, c in zip(landscape.weights, arch))
        assert Fraction(landscape.score(arch)) == Fraction(total, landscape.denominator)
    # Shallow blocks weigh more: their weights are scaled by the depth rank (4, 3, 2, 1).
    assert max(landscape.weights[0]) > max(landscape.weights[-1])


def test_smoke_decisions_are_forced_by_the_landscape(replay):
    """The landscape is exact, so this outcome holds on every machine: a test may assert it."""
    depths = {name: [len(g.hints.frozen) for g in trace.generations] for name, trace in replay.traces.items()}
    assert depths["pcf-es"] == [0, 0, 1, 2, 4]
    assert depths["cf-es"] == [0, 0, 1, 1, 1, 1, 1, 1]
    assert depths["evolution"] == depths["random"] == [0] * 8
    rates = [g.hints.importance_rate for g in replay.traces["pcf-es-is"].generations]
    assert rates == [None, None, 0.4, 0.4, 0.4]


def test_replay_searcher_replays_the_trace_exactly(replay):
    trace = replay.traces["pcf-es"]
    searcher = bench.ReplaySearcher(trace, SearchSpace((4,) * 6))
    assert bench.trace_search(searcher, bench.Landscape((4,) * 6, seed=99)) == trace
    again = bench.Replay.from_dict(json.loads(json.dumps(replay.to_dict())))
    assert again == replay and again.digest() == replay.digest()


@pytest.mark.slow
def test_bench_measures_saved_work(recorded):
    result, baseline = recorded
    counts = result.counts()
    assert list(counts) == list(bench.BENCH_SEARCHERS)
    assert baseline["counts"] == counts
    for name in ("random", "evolution"):
        assert counts[name]["none"] == counts[name]["frozen"], name  # nothing frozen: nothing cached
    for name in ("cf-es", "pcf-es", "pcf-es-is"):
        assert counts[name]["frozen"]["cache_peak_bytes"] > 0 == counts[name]["none"]["cache_peak_bytes"], name
        assert counts[name]["frozen"]["macs"] < counts[name]["none"]["macs"], name
        assert counts[name]["frozen"]["macs_cache_build"] > 0, name
    ratios = result.ratios()
    assert 0 < ratios["macs pcf-es-is[frozen]/evolution[none]"] < ratios["macs pcf-es[frozen]/evolution[none]"] < 1
    assert baseline["ratios"] == ratios
    assert baseline["timing"]["cpu pcf-es[frozen]/evolution[none]"]["ratio"] == result.timing[0].ratio
    assert baseline["environment"]["fingerprint"] == provenance.fingerprint()
    assert set(baseline["info"]["pcf-es[frozen]"]) >= {"wall_s", "cpu_s", "energy_j", "co2_g", "energy_source"}


@pytest.mark.slow
def test_work_counts_do_not_depend_on_weights_threads_or_floats(recorded, replay, tmp_path):
    """Other weights (every float result changes) and two threads (other summation orders): same counts."""
    result, baseline = recorded
    other = dataclasses.replace(SMOKE, weights_seed=7, threads=2)
    perturbed = bench.run_bench(
        other, bench.prepare_workspace(other, tmp_path / "cache"), bench.record_replay(other), tmp_path / "runs",
        timing_repeats=0,
    )
    assert perturbed.environment["checkpoint_hash"] != result.environment["checkpoint_hash"]
    assert perturbed.counts() == result.counts()
    assert perturbed.decisions == result.decisions


@pytest.mark.slow
def test_a_fresh_workspace_gives_identical_counts_and_passes(recorded, replay, cache_dir, tmp_path):
    result, baseline = recorded
    fresh = bench.run_bench(SMOKE, bench.prepare_workspace(SMOKE, cache_dir), replay, tmp_path, timing_repeats=0)
    assert fresh.counts() == result.counts()
    report = bench.check(baseline, fresh)
    assert report.passed, report.format()
    assert report.notes == ("timing layer skipped (no timing runs)",)


@pytest.mark.slow
def test_timing_measured_again_passes_the_timing_layer(recorded, workspace, replay, tmp_path):
    result, baseline = recorded
    again = dataclasses.replace(result, timing=bench.measure_timing(SMOKE, workspace, replay, tmp_path))
    report = bench.check(baseline, again)
    assert report.passed, report.format()
    timed = [n for n in report.notes if n.startswith("time cpu ")]
    assert [n.split(":")[0] for n in timed] == [f"time {p.name}" for p in bench.TIMING_PAIRS]


@pytest.mark.slow
def test_disabled_cache_fails_naming_metric_and_numbers(recorded, replay, cache_dir, tmp_path):
    _, baseline = recorded
    slow = bench.run_bench(SLOW, bench.prepare_workspace(SLOW, cache_dir), replay, tmp_path, timing_repeats=0)
    report = bench.check(baseline, slow)
    assert not report.passed
    base, new = baseline["counts"]["pcf-es"]["frozen"]["macs"], slow.counts()["pcf-es"]["frozen"]["macs"]
    assert new > base
    assert f"pcf-es[frozen]: macs changed: baseline {base}, now {new} (+{(new - base) / base:.2%})" in report.failures
    peak = baseline["counts"]["pcf-es"]["frozen"]["cache_peak_bytes"]
    assert f"pcf-es[frozen]: cache_peak_bytes changed: baseline {peak}, now 0 (-100.00%)" in report.failures
    old_ratio, new_ratio = baseline["ratios"]["macs pcf-es[frozen]/evolution[none]"], slow.ratios()["macs pcf-es[frozen]/evolution[none]"]
    assert f"ratio macs pcf-es[frozen]/evolution[none]: {new_ratio:.6f} > baseline {old_ratio:.6f}" in report.failures
    # Random and evolution never freeze: without the prefix tree they lose nothing.
    assert not any(f.startswith(("random[none]", "random[frozen]", "evolution[none]", "evolution[frozen]")) for f in report.failures)
    assert any(f.startswith("evolution[prefix]: macs changed: ") for f in report.failures)
    assert report.format().endswith(f"gate: FAILED ({len(report.failures)} problem(s))")


@pytest.mark.slow
def test_a_changed_searcher_decision_fails_naming_searcher_and_generation(recorded, monkeypatch):
    result, baseline = recorded
    original = get_searcher

    def nudged(name, space, seed, **params):
        if name == "pcf-es":
            params["threshold"] = 0.65  # a slightly more eager freeze
        return original(name, space, seed, **params)

    monkeypatch.setattr(bench.gate.searchers, "get_searcher", nudged)
    changed = {name: bench.gate.decision_record(t) for name, t in bench.trace_searches(SMOKE).items()}
    report = bench.check(baseline, dataclasses.replace(result, decisions=changed))
    assert report.failures and all(f.startswith("pcf-es: ") for f in report.failures), report.format()
    assert any(f.startswith("pcf-es: asks changed from generation ") for f in report.failures)


@pytest.mark.slow
def test_slowed_cache_preparation_fails_the_timing_layer_only(recorded, workspace, replay, tmp_path, monkeypatch):
    result, baseline = recorded
    prepare = Evaluator.prepare

    def slow_prepare(self, hints, reference_archs=()):
        if hints.frozen:  # only the freezing replays pay: evolution's CPU time is unchanged
            spin_until = time.process_time() + 0.3
            while time.process_time() < spin_until:
                pass
        prepare(self, hints, reference_archs)

    monkeypatch.setattr(Evaluator, "prepare", slow_prepare)
    slowed = dataclasses.replace(result, timing=bench.measure_timing(SMOKE, workspace, replay, tmp_path))
    report = bench.check(baseline, slowed, margin=0.25)
    assert len(report.failures) == 1, report.format()
    old = baseline["timing"]["cpu pcf-es[frozen]/evolution[none]"]["ratio"]
    ratio = slowed.timing[0].ratio
    assert report.failures[0].startswith(f"time cpu pcf-es[frozen]/evolution[none]: {ratio:.3f} (min of 3: pcf-es[frozen] ")
    assert report.failures[0].endswith(f"vs baseline {old:.3f} + margin 0.25 = {old + 0.25:.3f}")


@pytest.mark.slow
def test_ratio_gate_and_environment_notes(recorded):
    result, baseline = recorded
    lowered = json.loads(json.dumps(baseline))
    key = "macs pcf-es-is[frozen]/evolution[none]"
    lowered["ratios"][key] /= 2
    lowered["environment"]["fingerprint"] = "another machine"
    report = bench.check(lowered, result)
    assert report.failures == (f"ratio {key}: {result.ratios()[key]:.6f} > baseline {lowered['ratios'][key]:.6f}",)
    assert any(n.startswith("machine differs from the baseline's ('another machine' -> ") for n in report.notes)


@pytest.mark.slow
def test_another_replay_is_not_compared_count_by_count(recorded):
    result, baseline = recorded
    other = json.loads(json.dumps(baseline))
    other["replay_sha256"] = "0" * 64
    report = bench.check(other, result)
    assert len(report.failures) == 1 and report.failures[0].startswith("replay changed (baseline sha256 000000000000, now ")


@pytest.mark.slow
def test_other_bench_configuration_is_not_compared(recorded):
    result, baseline = recorded
    other = json.loads(json.dumps(baseline))
    other["config"]["seed"] = 7
    report = bench.check(other, result)
    assert len(report.failures) == 1
    assert "seed: baseline 7, now 0" in report.failures[0]
    assert "pcfes bench --update-baseline" in report.failures[0]


@pytest.mark.slow
def test_baseline_and_replay_file_errors(tmp_path, recorded, replay, workspace):
    result, _ = recorded
    with pytest.raises(FileNotFoundError, match=f"pcfes bench --baseline-dir {tmp_path} --update-baseline"):
        bench.load_baseline(tmp_path / "missing.json")
    with pytest.raises(FileNotFoundError, match="does not exist .*source checkout .*--baseline-dir DIR"):
        bench.load_baseline(tmp_path / "no-such-folder" / "baseline.json")
    # A baseline another project version wrote: refused when read, before any bench runs.
    old = tmp_path / "old.json"
    store.write_json(old, {"format": bench.FORMAT, "format_version": 1, "pcfes_version": "0.0.9"})
    with pytest.raises(ValueError, match=r"v1, written by pcfes 0\.0\.9\); regenerate it with this version: .*--update-baseline"):
        bench.load_baseline(old)
    with pytest.raises(ValueError, match="not a pcfes-bench-baseline v2 file"):
        bench.check({"format": "other"}, result)
    with pytest.raises(FileNotFoundError, match="--update-replay"):
        bench.load_replay(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="not a pcfes-bench-replay v2 file"):
        bench.Replay.from_dict({"format": "pcfes-bench-replay", "format_version": 0})
    with pytest.raises(ValueError, match="recorded for another bench configuration"):
        bench.run_bench(dataclasses.replace(SMOKE, seed=3), workspace, replay, tmp_path, timing_repeats=0)


def test_the_committed_baseline_is_found_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert bench.BASELINE_PATH.is_absolute() and bench.BASELINE_PATH == REPO / "benchmarks" / "baseline.json"
    assert bench.load_baseline()["format"] == bench.FORMAT
    assert bench.load_replay(bench.REPLAY_PATH).recorded_from == bench.BenchConfig().identity()
    assert bench.SUITE == REPO / "tests" / "benchmarks" / "test_bench_search.py"


def test_committed_baseline_and_replay_match_the_default_bench():
    """Layer 1 of the committed baseline, checked for real (landscape searches take a second)."""
    config = bench.BenchConfig()
    baseline = bench.load_baseline(REPO / bench.BASELINE_PATH)
    replay = bench.load_replay(REPO / bench.REPLAY_PATH)
    assert baseline["format"] == bench.FORMAT and baseline["format_version"] == bench.FORMAT_VERSION
    assert baseline["config"] == config.identity(), "the default bench changed: pcfes bench --update-baseline"
    assert replay.recorded_from == config.identity() and baseline["replay_sha256"] == replay.digest()
    assert replay == bench.record_replay(config), "the searchers changed: pcfes bench --update-replay"
    traced = {name: bench.gate.decision_record(t) for name, t in bench.trace_searches(config).items()}
    assert baseline["decisions"] == json.loads(json.dumps(traced))
    assert list(baseline["counts"]) == list(bench.BENCH_SEARCHERS)
    for levels in baseline["counts"].values():
        assert list(levels) == list(bench.LEVELS)
        for counts in levels.values():
            assert all(isinstance(v, int) for v in counts.values())
    assert set(baseline["timing"]) == {p.name for p in bench.TIMING_PAIRS}


def test_machine_layer_skips_without_a_run_saved_on_this_fingerprint(tmp_path):
    outcome = bench.machine_benchmark(storage_root=tmp_path, suite=REPO / bench.SUITE)
    assert outcome.status == "skipped"
    assert provenance.fingerprint() in outcome.reason
    assert "pcfes bench --save-machine-baseline" in outcome.reason


@pytest.mark.slow
def test_cli_gate_exit_codes_and_outputs(cache_dir, tmp_path, monkeypatch, capsys):
    """`pcfes bench`: --update-replay writes both files; the same code passes (0); --no-cache fails (1)."""
    few = dataclasses.replace(SMOKE, searchers=("evolution", "pcf-es", "pcf-es-is"))
    monkeypatch.setattr(bench.session, "BenchConfig", lambda disable_reuse: dataclasses.replace(few, disable_reuse=disable_reuse))
    monkeypatch.setattr(bench.session, "machine_benchmark", lambda save: bench.MachineBenchOutcome("skipped", "not in this test"))
    path, replay = tmp_path / "baseline.json", tmp_path / "replay.json"
    common = ["bench", "--baseline", str(path), "--replay", str(replay), "--cache-dir", str(cache_dir), "--quiet", "--no-timing"]
    assert cli.main([*common, "--update-replay"]) == 0
    assert "Commit it with a message that says WHY" in capsys.readouterr().out
    assert path.exists() and replay.exists()
    output, record = tmp_path / "action.json", tmp_path / "record.json"
    decisions, times = tmp_path / "decisions.json", tmp_path / "times.json"
    assert cli.main([*common, "--output", str(output), "--record", str(record), "--output-decisions", str(decisions),
                     "--output-times", str(times)]) == 0
    assert "gate: PASSED" in capsys.readouterr().out
    entries = store.read_json(output)
    assert entries and all(set(e) <= {"name", "unit", "value", "extra"} and {"name", "unit", "value"} <= set(e) for e in entries)
    counts = store.read_json(record)["counts"]
    assert {"name": "pcf-es[frozen] macs", "unit": "MACs", "value": counts["pcf-es"]["frozen"]["macs"]} in entries
    # Costs only, every one able to regress: no absolute time, no zero, no copy of the level-none count.
    assert not any(e["unit"] == "s" or e["value"] == 0 for e in entries)
    assert "evolution[frozen] macs" not in {e["name"] for e in entries}  # evolution reuses nothing at "frozen"
    assert not any(e["name"].startswith("evolution[none] cache_peak_bytes") for e in entries)
    recorded_decisions = store.read_json(record)["decisions"]
    charted = {e["name"]: e["value"] for e in store.read_json(decisions)}
    assert charted["pcf-es final frozen depth"] == recorded_decisions["pcf-es"]["frozen_depth"][-1] > 0
    assert charted["evolution candidates"] == recorded_decisions["evolution"]["candidates"]
    assert "evolution final frozen depth" not in charted  # always 0: evolution never freezes
    timed = store.read_json(times)
    assert timed and all(e["unit"] == "s" and "(this runner)" in e["name"] and "absolute" in e["extra"] for e in timed)
    assert cli.main([*common, "--no-cache"]) == 1
    out = capsys.readouterr().out
    assert "FAIL pcf-es[frozen]: macs changed: baseline " in out and "gate: FAILED" in out


@pytest.mark.slow
def test_machine_layer_saves_then_compares(tmp_path):
    saved = bench.machine_benchmark(save=True, storage_root=tmp_path, suite=REPO / bench.SUITE)
    assert saved.status == "saved", saved.output
    assert list(bench.machine_storage(tmp_path).rglob("*_pcfes-bench.json"))
    # A generous threshold: this checks the wiring (storage, compare), not this machine's noise.
    compared = bench.machine_benchmark(storage_root=tmp_path, suite=REPO / bench.SUITE, fail="min:300%")
    assert compared.status == "passed", compared.output
    assert "Comparing against benchmarks from" in compared.output


def test_cli_bench_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--update-baseline" in out and "--benchmark-compare-fail=min:25%" in out and "customSmallerIsBetter" in out
