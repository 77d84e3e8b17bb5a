"""`pcfes bench --cost`: the rows' exact parts (MACs, ratios to level none, store counts) on a seconds-scale config."""

from __future__ import annotations

import pytest

import supernets
from harness import cli, store
from harness.bench import cost
from harness.config import EvalProtocol
from harness.datasets import dataset_options

TINY = cost.CostConfig(
    supernet="conv-tiny",
    supernet_overrides={"widths": [8, 16, 32], "depths": [2, 2, 2], "stem_width": 8, "last_width": 64},
    searchers=("evolution", "random"),
    protocol=EvalProtocol(calib_batches=1, calib_batch_size=32, val_size=64, eval_batch_size=64),
    generations=2,
    repeats=1,
)


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    return cost.run_cost(TINY, tmp_path_factory.mktemp("cost"))


def test_rows_compare_each_level_with_the_same_searcher_without_reuse(rows):
    assert [(r.searcher, r.level) for r in rows] == [(s, lv) for s in TINY.searchers for lv in TINY.levels]
    for r in rows:
        assert r.reference.macs > 0 and r.sample.search_cpu_s > 0 and r.roofline_gmac_s > 0
        assert r.mac_ratio == r.sample.macs / r.reference.macs and r.quotient == r.cpu_ratio / r.mac_ratio
        assert sum(r.sample.unit_macs) == r.sample.macs  # every search MAC is in some unit
        if r.level == "none":
            assert r.sample is r.reference and r.mac_ratio == r.cpu_ratio == 1.0
            assert r.sample.captured == r.sample.read_again == 0
        else:
            assert r.mac_ratio < 1 and r.sample.captured > 0 and 0 <= r.sample.read_again <= r.sample.captured
    table = cost.format_cost(rows, TINY)
    assert "evolution[prefix]" in table and "random[none]" in table and "roofline" in table


def test_roofline_combines_unit_rates_by_their_macs():
    assert cost.combined_roofline([1.0, 4.0], [2, 4, 99]) == 6 / (2 / 1 + 4 / 4)  # the head's MACs left out
    assert cost.combined_roofline([2.0, 8.0], [0, 8]) == 8.0


def test_a_config_without_level_none_is_refused():
    with pytest.raises(ValueError, match="lack 'none'"):
        cost.CostConfig(levels=("prefix",))


def test_a_real_size_space_gets_the_reduced_protocol_on_images_of_its_shape(tmp_path):
    config = cost.space_config("spos", generations=2)
    assert config.protocol == cost.REAL_SIZE_PROTOCOL and config.generations == 2
    spos, data = supernets.default_config("spos"), dataset_options(config.protocol.dataset)
    assert tuple(data["input_shape"]) == (spos["in_channels"], spos["input_size"], spos["input_size"])
    assert data["num_classes"] == spos["num_classes"] and data["n_val"] >= config.protocol.val_size
    runs = config.run_configs(tmp_path / "init.pt")
    assert runs["evolution"].searcher_params["population"] == cost.REAL_SIZE_SEARCH["population"]
    assert runs["evolution"].searcher_params["generations"] == 2
    assert cost.space_config("spos-tiny", generations=2) == cost.CostConfig(supernet="spos-tiny", generations=2)


def test_cli_cost_records_rows(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cost, "CostConfig", lambda **kw: TINY)
    path = tmp_path / "cost.json"
    assert cli.main(["bench", "--cost", "--quiet", "--cache-dir", str(tmp_path), "--record", str(path)]) == 0
    out = capsys.readouterr().out
    assert "cost of reuse on conv-tiny" in out and f"wrote {path}" in out
    data = store.read_json(path)
    assert data["config"]["supernet"] == "conv-tiny" and len(data["rows"]) == 4
    assert {"mac_ratio", "cpu_ratio", "cpu_per_mac_ratio", "kernel_s", "minor_faults", "captured", "read_again"} <= set(data["rows"][0])
