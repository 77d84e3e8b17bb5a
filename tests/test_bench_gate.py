"""The CI performance regression gate (harness/bench.py, `pcfes bench`) on the smoke-size bench."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import bench, cli, provenance
from harness.config import CacheConfig
from harness.evaluation import Evaluator

REPO = Path(__file__).resolve().parent.parent
SMOKE = bench.smoke_config()
SLOW = dataclasses.replace(SMOKE, cache=CacheConfig(enabled=False))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench-cache")


@pytest.fixture(scope="module")
def workspace(cache_dir):
    return bench.prepare_workspace(SMOKE, cache_dir)


@pytest.fixture(scope="module")
def recorded(workspace, cache_dir):
    """The smoke bench with timing, written as a baseline file and read back."""
    result = bench.run_bench(SMOKE, workspace, cache_dir / "runs", timing_repeats=3)
    path = cache_dir / "baseline.json"
    bench.write_baseline(result, path)
    return result, bench.load_baseline(path)


def _counts(result: bench.BenchResult) -> dict[str, dict[str, int]]:
    return {name: dict(m.counts) for name, m in result.searchers.items()}


def test_bench_measures_saved_work(recorded):
    result, baseline = recorded
    counts = _counts(result)
    assert list(counts) == list(bench.BENCH_SEARCHERS)
    assert baseline["counts"] == counts
    assert counts["evolution"]["cache_peak_bytes"] == counts["random"]["cache_peak_bytes"] == 0
    for name in ("cf-es", "pcf-es", "pcf-es-is"):
        assert counts[name]["cache_peak_bytes"] > 0, name
    ratios = result.ratios()
    assert 0 < ratios["macs pcf-es-is/evolution"] < ratios["macs pcf-es/evolution"] < 1
    assert baseline["ratios"] == ratios
    assert baseline["timing"]["ratio pcf-es/evolution"] == result.timing.ratio
    assert baseline["environment"]["fingerprint"] == provenance.fingerprint()
    assert set(baseline["info"]["pcf-es"]) >= {"wall_s", "cpu_s", "energy_j", "co2_g", "energy_source"}


def test_counts_identical_on_two_runs_and_fresh_evaluators(recorded, workspace, cache_dir, tmp_path):
    result, baseline = recorded
    again = bench.run_bench(SMOKE, workspace, tmp_path / "again", timing_repeats=0)
    fresh = bench.run_bench(SMOKE, bench.prepare_workspace(SMOKE, cache_dir), tmp_path / "fresh", timing_repeats=0)
    assert _counts(again) == _counts(fresh) == _counts(result)
    report = bench.check(baseline, again)
    assert report.passed, report.format()
    assert report.notes == ("timing layer skipped (no timing runs)",)


def test_disabled_cache_fails_naming_metric_and_numbers(recorded, cache_dir, tmp_path):
    _, baseline = recorded
    slow = bench.run_bench(SLOW, bench.prepare_workspace(SLOW, cache_dir), tmp_path, timing_repeats=0)
    report = bench.check(baseline, slow)
    assert not report.passed
    base, new = baseline["counts"]["pcf-es"]["macs"], slow.searchers["pcf-es"].counts["macs"]
    assert new > base
    assert f"pcf-es: macs changed: baseline {base}, now {new} (+{(new - base) / base:.2%})" in report.failures
    assert f"pcf-es: cache_peak_bytes changed: baseline {baseline['counts']['pcf-es']['cache_peak_bytes']}, now 0 (-100.00%)" in report.failures
    old_ratio, new_ratio = baseline["ratios"]["macs pcf-es/evolution"], slow.ratios()["macs pcf-es/evolution"]
    assert f"ratio macs pcf-es/evolution: {new_ratio:.6f} > baseline {old_ratio:.6f}" in report.failures
    assert not any(f.startswith(("random:", "evolution:")) for f in report.failures)  # they never freeze
    assert report.format().endswith(f"gate: FAILED ({len(report.failures)} problem(s))")


def test_slowed_cache_preparation_fails_the_timing_layer_only(recorded, workspace, tmp_path, monkeypatch):
    _, baseline = recorded
    prepare = Evaluator.prepare

    def slow_prepare(self, hints, reference_archs=()):
        if hints.frozen:  # only the freezing searchers pay: evolution's time is unchanged
            time.sleep(0.1)
        prepare(self, hints, reference_archs)

    monkeypatch.setattr(Evaluator, "prepare", slow_prepare)
    slowed = bench.run_bench(SMOKE, workspace, tmp_path, timing_repeats=3)
    report = bench.check(baseline, slowed, margin=0.25)
    assert len(report.failures) == 1, report.format()
    old = baseline["timing"]["ratio pcf-es/evolution"]
    assert report.failures[0].startswith(f"time ratio pcf-es/evolution: {slowed.timing.ratio:.3f} (min of 3: pcf-es ")
    assert report.failures[0].endswith(f"vs baseline {old:.3f} + margin 0.25 = {old + 0.25:.3f}")


def test_restored_evaluator_passes(recorded, cache_dir, tmp_path):
    _, baseline = recorded
    restored = bench.run_bench(SMOKE, bench.prepare_workspace(SMOKE, cache_dir), tmp_path, timing_repeats=3)
    report = bench.check(baseline, restored)
    assert report.passed, report.format()
    assert report.notes[-1].startswith("time ratio pcf-es/evolution: ")


def test_ratio_gate_and_environment_notes(recorded):
    result, baseline = recorded
    lowered = json.loads(json.dumps(baseline))
    lowered["ratios"]["macs pcf-es-is/evolution"] /= 2
    lowered["environment"]["torch"] = "0.0.0"
    report = bench.check(lowered, result)
    ratio = result.ratios()["macs pcf-es-is/evolution"]
    assert report.failures == (
        f"ratio macs pcf-es-is/evolution: {ratio:.6f} > baseline {lowered['ratios']['macs pcf-es-is/evolution']:.6f}",
    )
    assert any(n.startswith("torch differs from the baseline's ('0.0.0' -> ") for n in report.notes)


def test_other_bench_configuration_is_not_compared(recorded):
    result, baseline = recorded
    other = json.loads(json.dumps(baseline))
    other["config"]["seed"] = 7
    report = bench.check(other, result)
    assert len(report.failures) == 1
    assert "seed: baseline 7, now 0" in report.failures[0]
    assert "pcfes bench --update-baseline" in report.failures[0]


def test_baseline_file_errors(tmp_path, recorded):
    result, _ = recorded
    with pytest.raises(FileNotFoundError, match="pcfes bench --update-baseline"):
        bench.load_baseline(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="not a pcfes-bench-baseline v1 file"):
        bench.check({"format": "other"}, result)


def test_committed_baseline_matches_the_default_bench():
    baseline = bench.load_baseline(REPO / bench.BASELINE_PATH)
    assert baseline["format"] == bench.FORMAT and baseline["format_version"] == bench.FORMAT_VERSION
    assert baseline["config"] == bench.BenchConfig().identity(), "the default bench changed: pcfes bench --update-baseline"
    assert list(baseline["counts"]) == list(bench.BENCH_SEARCHERS)
    for counts in baseline["counts"].values():
        assert set(counts) == set(bench.COUNT_METRICS) and all(isinstance(v, int) for v in counts.values())
    assert set(baseline["ratios"]) == {"macs pcf-es/evolution", "macs pcf-es-is/evolution"}
    assert baseline["timing"]["ratio pcf-es/evolution"] > 0


def test_machine_layer_skips_without_a_run_saved_on_this_fingerprint(tmp_path):
    outcome = bench.machine_benchmark(storage_root=tmp_path, suite=REPO / bench.SUITE)
    assert outcome.status == "skipped"
    assert provenance.fingerprint() in outcome.reason
    assert "pcfes bench --save-machine-baseline" in outcome.reason


def test_cli_gate_exit_codes(cache_dir, tmp_path, monkeypatch, capsys):
    """`pcfes bench`: --update-baseline writes the file; the same code passes (0); --no-cache fails (1)."""
    monkeypatch.setattr(bench, "BenchConfig", lambda cache: dataclasses.replace(SMOKE, cache=cache))
    monkeypatch.setattr(bench, "machine_benchmark", lambda save: bench.MachineBenchOutcome("skipped", "not in this test"))
    path = tmp_path / "baseline.json"
    common = ["bench", "--baseline", str(path), "--cache-dir", str(cache_dir), "--quiet", "--no-timing"]
    assert cli.main([*common, "--update-baseline"]) == 0
    assert "Commit it with a message that says WHY" in capsys.readouterr().out
    assert cli.main(common) == 0
    assert "gate: PASSED" in capsys.readouterr().out
    assert cli.main([*common, "--no-cache"]) == 1
    out = capsys.readouterr().out
    assert "FAIL pcf-es: macs changed: baseline " in out and "gate: FAILED" in out


@pytest.mark.slow
def test_benchmark_suite_under_benchmark_disable():
    """The pytest-benchmark suite (counts benchmarked == counts plain) also holds when benchmarks are disabled."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / bench.SUITE), "-q", "-p", "no:cacheprovider", "--benchmark-disable"],
        capture_output=True, text=True, cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


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
    assert "--update-baseline" in out and "--benchmark-compare-fail=min:25%" in out
