"""Resolution (harness/resolution.py): one ResolvedRun per run, one id, and no unresolved config past the boundary."""

from __future__ import annotations

import dataclasses
import json
import tarfile
from pathlib import Path

import pytest

from harness import reproduce, sweep, workflow
from harness.config import RunConfig
from harness.resolution import ResolvedRun, recorded_run, resolve, resolved_config
from harness.run_record import RunRecord, RunSetup

REFERENCE_RUNS = Path(__file__).resolve().parents[1] / "reports" / "reference-cpu" / "runs.tar.xz"


def test_an_unresolved_config_and_its_resolved_config_name_one_run():
    config = RunConfig(supernet="", searcher="pcf-es", seed=2)  # default supernet, presets and MAC limit still open
    run = resolve(config)
    assert run.config.hash() != config.hash()  # why an id is never taken from the config as given
    assert resolve(run.config) == run  # resolving the resolved config names the same run
    assert run.run_id == f"{run.config.supernet}_pcf-es_s2_{run.config.hash()[:8]}"
    assert resolve(dataclasses.replace(config, run_id="mine")).run_id == "mine"


def test_the_committed_reference_runs_keep_their_names():
    """Every run folder of reports/reference-cpu is the id its recorded config resolves to, and the id the plan gives it."""
    with tarfile.open(REFERENCE_RUNS) as archive:
        recorded = {
            Path(member.name).parent.name: json.load(archive.extractfile(member))
            for member in archive.getmembers() if Path(member.name).name == "run.json"
        }
    assert len(recorded) == 105
    for folder, data in recorded.items():
        setup = RunRecord.from_json(data).setup  # version 2, through migrate_v2
        assert resolve(resolved_config(recorded_run(setup).config)).run_id == folder == recorded_run(setup).run_id
    assert {r.run_id for r in sweep.expand(reproduce.load_plan("cpu"))} == set(recorded)


def test_a_recorded_run_keeps_its_id_when_its_config_as_scored_hashes_otherwise():
    started = resolve(RunConfig(supernet="spos-tiny", searcher="evolution", protocol=dataclasses.replace(RunConfig().protocol, val_size=0)))
    scored = dataclasses.replace(started.config, protocol=started.config.protocol.for_split(2000))
    setup = RunSetup(
        run_id=started.run_id, config=scored, config_hash=scored.hash(), searcher=scored.searcher,
        searcher_params=scored.searcher_params, seed=scored.seed, supernet=scored.supernet, supernet_config={},
        checkpoint_hash="0" * 64, checkpoint_path="/abs/net.pt", dataset="fashion16",
        protocol=dataclasses.asdict(scored.protocol), protocol_hash=scored.protocol.hash(),
    )
    run = recorded_run(setup)
    assert run.run_id == started.run_id != resolve(scored).run_id
    assert run.config.checkpoint == "" and recorded_run(setup, at_recorded_checkpoint=True).config.checkpoint == "/abs/net.pt"


def test_a_run_cannot_be_made_of_an_unresolved_config():
    with pytest.raises(ValueError, match=r"open defaults; make its run with harness.resolution.resolve\(config\)"):
        ResolvedRun(RunConfig(), "some-id")
    run = resolve(RunConfig(searcher="evolution"))
    with pytest.raises(ValueError, match="differs from the config's run_id"):
        ResolvedRun(dataclasses.replace(run.config, run_id="a"), "b")
    with pytest.raises(TypeError, match="resolve takes a RunConfig; this run is resolved already"):
        resolve(run)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("where", "call"),
    [
        ("validate", lambda config: workflow.validate(config)),
        ("open_workspace", lambda config: workflow.open_workspace(config, progress=False)),
        ("run_search", lambda config: workflow.run_search(config, None)),  # type: ignore[arg-type]
        ("run_matrix", lambda config: workflow.run_matrix([config], Path("unused"), progress=False)),
    ],
)
def test_a_plain_run_config_is_refused_where_a_run_is_required(where, call, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match=f"{where} takes a ResolvedRun, got RunConfig; resolve the config first"):
        call(RunConfig(searcher="evolution"))
    assert list(tmp_path.iterdir()) == []  # refused before any data, checkpoint or folder
