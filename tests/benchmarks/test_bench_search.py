"""pytest-benchmark suite of the CI gate: the smoke-size replay of evolution and of PCF-ES.

`pcfes bench` compares it with `--benchmark-compare-fail=min:25%` against a run saved on the
same machine fingerprint (`pcfes bench --save-machine-baseline`); elsewhere it is skipped.
Whether benchmarked or run once under `--benchmark-disable`, a replay's exact counts must
equal those of a plain run.
"""

from __future__ import annotations

import pytest

from harness import bench

# Smoke runs of the benchmarks (the gate's machine layer times them): with the slow tests.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    config = bench.smoke_config()
    workspace = bench.prepare_workspace(config, tmp_path_factory.mktemp("bench-cache"))
    return config, workspace, bench.record_replay(config)


@pytest.mark.parametrize("replayed", bench.gate.timed_replays(), ids=lambda r: r.label)
def test_bench_replay(benchmark, smoke, replayed, tmp_path):
    config, workspace, replay = smoke
    trace = replay.traces[replayed.searcher]
    plain = bench.measure_replay(config, workspace, trace, replayed.level, tmp_path / "plain")

    measured = benchmark.pedantic(
        bench.measure_replay, args=(config, workspace, trace, replayed.level, tmp_path / "benchmarked"), rounds=3, iterations=1
    )

    benchmark.extra_info.update(measured.counts)
    assert measured.counts == plain.counts
    assert measured.counts["candidates"] > 0 and measured.counts["macs"] > 0
