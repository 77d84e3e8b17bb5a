"""The MAC limit: in the run config and its hash, resolved per supernet, wired into every searcher's space."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

import searchers
import supernets
from harness import checkpoints, cli, schema, workflow
from harness.config import RunConfig, run_config_from_dict
from harness.resolution import resolve, resolved_config
from conftest import with_searcher

SEARCHERS = ["random", "evolution", "cf-es", "pcf-es", "pcf-es-is"]


@pytest.mark.parametrize("value", [0, -5, "lots", 1.5, True])
def test_a_bad_limit_is_refused_naming_the_key(value):
    with pytest.raises(ValueError, match="mac_limit"):
        RunConfig(mac_limit=value)


def test_the_limit_is_in_the_config_hash():
    hashes = {RunConfig(mac_limit=limit).hash() for limit in ("auto", "none", 300_000, 300_001)}
    assert len(hashes) == 4


@pytest.mark.parametrize("name", ["spos", "spos-cpu", "fairnas-cpu", "greedynas-cpu", "spos-tiny"])
def test_auto_takes_the_supernets_registered_limit(name):
    resolved = resolve(RunConfig(supernet=name, searcher="evolution")).config
    assert resolved.mac_limit == supernets.supernet_entry(name).mac_limit.macs
    assert resolved_config(resolved) == resolved  # resolving twice changes nothing


def test_spaces_without_a_registered_limit_search_unconstrained_and_a_given_limit_wins():
    assert resolve(RunConfig(supernet="conv-tiny")).config.mac_limit == "none"
    assert resolve(RunConfig(supernet="spos-cpu", mac_limit=400_000)).config.mac_limit == 400_000
    assert resolve(RunConfig(supernet="spos-cpu", mac_limit="none")).config.mac_limit == "none"
    assert supernets.supernet_entry("spos").mac_limit.macs == supernets.PAPER_MAC_LIMIT == 330_000_000


@pytest.mark.parametrize("searcher", SEARCHERS)
def test_every_asked_arch_meets_the_limit(searcher):
    run = resolve(RunConfig(supernet="spos-cpu", searcher=searcher))
    net = checkpoints.build_supernet(run.config)
    limit = run.mac_limit
    searcher_obj = workflow.make_searcher(run, net)
    rng = np.random.default_rng(0)
    asked = []
    for _ in range(3):
        if searcher_obj.done():
            break
        archs = searcher_obj.ask()
        asked += archs
        searcher_obj.tell([(arch, float(rng.random())) for arch in archs])
    assert asked and max(net.macs(arch) for arch in asked) <= limit
    # the limit binds: uniformly random archs of this space exceed it about 41% of the time
    assert (net.sample_macs(np.random.default_rng(1), 2000) > limit).mean() > 0.3


def test_a_limit_below_the_cheapest_arch_is_a_clear_error():
    run = resolve(RunConfig(supernet="spos-cpu", searcher="evolution", mac_limit=1000))
    net = checkpoints.build_supernet(run.config)
    cheapest = net.mac_range()[0]
    with pytest.raises(ValueError, match=f"below the cheapest arch of spos-cpu \\({cheapest:,} MACs"):
        workflow.make_searcher(run, net)


def test_a_searched_run_records_the_limit_and_evaluates_only_archs_within_it(small_config, tmp_path):
    net = checkpoints.build_supernet(small_config)
    limit = int(np.median(net.sample_macs(np.random.default_rng(0), 1000)))
    run = resolve(dataclasses.replace(with_searcher(small_config, "evolution"), mac_limit=limit))
    workspace = workflow.open_workspace(run, progress=False)
    run_dir = workflow.run_search(run, workspace, run_dir=tmp_path / "run", progress=False).path
    archs = pd.read_csv(run_dir / schema.CANDIDATES_CSV)["arch"]
    assert max(net.macs([int(c) for c in arch.split("-")]) for arch in archs) <= limit
    assert json.loads((run_dir / schema.RUN_JSON).read_text())["config"]["mac_limit"] == limit


def test_the_toml_key_and_the_flag_reach_the_config(tmp_path, monkeypatch, capsys):
    assert run_config_from_dict({"mac_limit": 330_000_000}).mac_limit == 330_000_000
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error
        cli.main(["search", "--mac-limit", "lots", "--quiet"])
    assert exit_info.value.code == 2
    assert "'lots' is not auto, none or a positive whole number of MACs" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["search", "compare"])
def test_a_limit_no_arch_meets_is_an_error_before_any_training(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main([command, "--supernet", "spos-cpu", "--mac-limit", "1e3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pcfes {command}: error: ") and err.count("\n") == 1
    assert "mac_limit 1,000 is below the cheapest arch of spos-cpu (322,240 MACs per image" in err
    assert list(tmp_path.iterdir()) == []  # nothing trained, no run folder


def test_a_cost_limit_says_exactly_when_a_frozen_prefix_cannot_be_completed():
    net = supernets.get_supernet("spos-cpu")
    limit = supernets.supernet_entry("spos-cpu").mac_limit.macs
    constraint = workflow._within(net, limit)
    rng = np.random.default_rng(3)
    archs = [tuple(int(c) for c in rng.integers(0, net.choices)) for _ in range(200)]
    assert [constraint(a) for a in archs] == [net.macs(a) <= limit for a in archs]  # the same rule as Supernet.macs
    dearest = tuple(int(np.argmax(block.op_macs)) for block in net.blocks)
    k = next(k for k in range(1, net.num_blocks + 1) if constraint.cheapest(dearest[:k]) > limit)
    space = searchers.SearchSpace(net.choices, constraint)
    with pytest.raises(searchers.ConstraintError, match=f"frozen prefix {re.escape(str(dearest[:k]))} meets the cost limit"):
        space.sample(rng, dearest[:k])
    assert space.contains(space.sample(rng, dearest[: k - 1]))  # one block less: still reachable, and met


@dataclass(frozen=True)
class _NoParams:
    pass


class _FreezeTheDearestFirstChoice(searchers.GenerationalSearcher):
    """Scores the cheapest arch, then freezes block 0 to its dearest op, which no arch within the limit has."""

    Params = _NoParams

    def propose(self):
        if self.generation == 0:
            return [self.cheapest]
        batch: dict = {}
        self.draw_new(lambda: self.space.sample(self.rng, self.hints().frozen), 4, batch)
        return list(batch)

    def hints(self):
        return searchers.Hints(frozen=(self.dearest_first,) if self.generation > 0 else ())


def test_a_limit_unreachable_after_a_freeze_ends_the_search_cleanly_and_is_recorded(small_config, tmp_path):
    run = resolve(with_searcher(small_config, "evolution"))
    workspace = workflow.open_workspace(run, progress=False)
    net = workspace.net
    first = net.blocks[0].op_macs
    dearest_first = int(np.argmax(first))
    cheapest, _ = net.mac_range()
    limit = cheapest + (first[dearest_first] - min(first)) - 1  # block 0 at its dearest op exceeds it, whatever follows
    run = resolve(dataclasses.replace(run.config, mac_limit=int(limit)))
    searcher = _FreezeTheDearestFirstChoice(workflow.make_searcher(run, net).space, 0)
    searcher.cheapest = tuple(int(np.argmin(block.op_macs)) for block in net.blocks)
    searcher.dearest_first = dearest_first
    run_dir = workflow.run_search(run, workspace, run_dir=tmp_path / "run", progress=False, searcher=searcher).path
    run = json.loads((run_dir / schema.RUN_JSON).read_text())
    assert run["status"] == "complete" and len(pd.read_csv(run_dir / schema.CANDIDATES_CSV)) == 1
    assert any(f"no arch with frozen prefix ({dearest_first},) meets the cost limit {limit:,}" in note for note in run["searcher_notes"])
