"""pytest-benchmark suite of the CI gate: one smoke-size bench search of evolution and of PCF-ES.

`pcfes bench` compares it with `--benchmark-compare-fail=min:25%` against a run saved on the
same machine fingerprint (`pcfes bench --save-machine-baseline`); elsewhere it is skipped.
Whether benchmarked or run once under `--benchmark-disable`, a search's exact counts must
equal those of a plain run.
"""

from __future__ import annotations

import pytest

from harness import bench


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    config = bench.smoke_config()
    workspace = bench.prepare_workspace(config, tmp_path_factory.mktemp("bench-cache"))
    return config, workspace


@pytest.mark.parametrize("searcher", [bench.REFERENCE, bench.TIMED])
def test_bench_search(benchmark, smoke, searcher, tmp_path):
    config, workspace = smoke
    plain = bench.measure_searcher(config, workspace, searcher, tmp_path / "plain")

    measured = benchmark.pedantic(
        bench.measure_searcher, args=(config, workspace, searcher, tmp_path / "benchmarked"), rounds=3, iterations=1
    )

    benchmark.extra_info.update(measured.counts)
    assert measured.counts == plain.counts
    assert measured.counts["candidates"] > 0 and measured.counts["macs"] > 0
