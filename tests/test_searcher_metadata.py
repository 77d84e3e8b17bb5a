"""What the harness knows of a searcher comes from its registry entry, never its name: a plugin gets the same treatment."""

from __future__ import annotations

import ast
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

import searchers
from fixtures_runs import FixtureRun, write_run
from harness import schema
from searchers import EvolutionParams, EvolutionSearcher, registry

HARNESS = Path(__file__).resolve().parents[1] / "harness"
# Modules that may spell a built-in searcher's name: data about those very searchers, not decisions.
NAMED_ON_PURPOSE = {
    "config.py": "the default searcher of a run config",
    "report/paper.py": "the paper's published results, keyed by the searcher they were published for",
    "bench/gate.py": "the gate's fixed benchmark pairing, part of its recorded identity",
    "bench/cost.py": "the cost benchmark's fixed case: the searchers whose CPU/MAC targets the issue set",
}


@dataclass(frozen=True)
class PluginParams(EvolutionParams):
    rounds: int = 7
    h: float = 0.6
    keep: float = 0.3


class PluginSearcher(EvolutionSearcher):
    """A plugin's freezing, importance-sampling searcher whose fields have its own names."""

    Params = PluginParams
    params: PluginParams


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> searchers.SearcherEntry:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    # One searcher is the paper's method: the plugin takes the role over from pcf-es.
    registry._REGISTRY["pcf-es"] = dataclasses.replace(registry._REGISTRY["pcf-es"], paper_method=False)
    registry.register_searcher(
        "my-pcf", PluginSearcher, freezing=True, generations_param="rounds", threshold_param="h",
        importance_rate_param="keep", sweepable={"h": "threshold H", "keep": "kept share"},
        presets={"spos": {"h": 0.55}, "fairnas": {"h": 0.45}}, paper_method=True,
    )
    return searchers.searcher_entry("my-pcf")


def test_a_plugin_declares_its_generation_count_sampling_rate_threshold_and_sweeps(plugin) -> None:
    assert plugin.generation_count(PluginParams(rounds=11)) == 11
    assert plugin.uses_importance_sampling and plugin.importance_rate(PluginParams(keep=0.2)) == 0.2
    assert plugin.threshold("fairnas") == 0.45 and plugin.threshold("greedynas") == 0.55  # other families: spos's
    assert dict(searchers.sweep_parameters()) == {
        "threshold": "threshold H", "monitor": "monitor size f", "rate": "sample rate", "h": "threshold H", "keep": "kept share",
    }
    assert searchers.paper_method_name() == "my-pcf"


def test_the_builtin_searchers_declare_what_the_harness_used_to_know_by_name() -> None:
    entries = searchers.registered_searchers()
    assert [n for n, e in entries.items() if e.uses_importance_sampling] == ["pcf-es-is"]
    assert searchers.paper_method_name() == "pcf-es"
    assert entries["pcf-es"].threshold("spos") == 0.7 and entries["pcf-es"].threshold("fairnas") == 0.4
    assert entries["evolution"].generation_count(EvolutionParams(generations=9)) == 9
    assert entries["random"].generation_count(entries["random"].cls.Params()) is None  # a budget, no generation count
    assert dict(searchers.sweep_parameters()) == {"threshold": "threshold H", "monitor": "monitor size f", "rate": "sample rate"}


def test_the_premises_use_the_paper_methods_declared_threshold(plugin) -> None:
    from harness.report.premises import premise_threshold

    assert premise_threshold("fairnas-cpu") == 0.45 and premise_threshold("spos-tiny") == 0.55


def test_a_plugin_paper_method_is_drawn_beside_the_baseline_and_its_sweep_columns_are_read(plugin, tmp_path: Path) -> None:
    from harness.report import write_report
    from harness.store import load_records, run_summary_row

    runs = tmp_path / "runs"
    for seed in (3, 11):
        write_run(runs, FixtureRun("evolution", seed))
        folder = write_run(runs, FixtureRun("pcf-es", seed, run_id=f"my-pcf-s{seed}"))
        run = json.loads((folder / schema.RUN_JSON).read_text())
        run["searcher"] = run["config"]["searcher"] = "my-pcf"
        run["searcher_params"] = {"population": 6, "h": 0.7, "keep": 0.4}
        (folder / schema.RUN_JSON).write_text(json.dumps(run))
    report = write_report([runs], tmp_path / "report").read_text()
    assert "per generation, evolution vs my-pcf (cf. paper Fig. 2)" in report
    rows = [run_summary_row(r) for r in load_records([runs]) if r.run.setup.searcher == "my-pcf"]
    assert [(row["h"], row["keep"]) for row in rows] == [(0.7, 0.4)] * 2 and "population" not in rows[0]


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({"generations_param": "gens"}, "generations_param names 'gens', which PluginParams lacks"),
        ({"sweepable": {"rounds": "number of rounds", "h": "share H"}},
         "sweepable 'h' is labelled 'share H', but another searcher labels it 'threshold H'"),
        ({"paper_method": True}, "cannot be the paper's method: 'my-pcf' is"),
    ],
)
def test_metadata_that_does_not_fit_is_refused_when_registered(plugin, metadata, error) -> None:
    with pytest.raises(ValueError, match=error):
        registry.register_searcher("other", type("Other", (PluginSearcher,), {}), **metadata)


def _builtin_names_in(path: Path) -> list[tuple[int, str]]:
    """Where a module spells a built-in searcher's name (the baseline's is read from the registry) or its classes."""
    builtins = [e for e in searchers.registered_searchers().values() if e.builtin]
    names = {e.name for e in builtins} - {searchers.baseline_name()}
    classes = {c.__name__ for e in builtins for c in (e.cls, e.cls.Params)}
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and node.value in names:
            found.append((node.lineno, node.value))
        elif (name := getattr(node, "id", None) or getattr(node, "attr", None)) in classes:
            found.append((node.lineno, name))
    return found


def test_no_harness_module_spells_a_builtin_searcher_name() -> None:
    assert len(searchers.available()) >= 5
    found = {
        f"{path.relative_to(HARNESS).as_posix()}:{line}": name
        for path in sorted(HARNESS.rglob("*.py"))
        if path.relative_to(HARNESS).as_posix() not in NAMED_ON_PURPOSE
        for line, name in _builtin_names_in(path)
    }
    assert found == {}, "decide by the registry entry's metadata (searchers/registry.py), not by a searcher's name"
    assert all(_builtin_names_in(HARNESS / module) for module in NAMED_ON_PURPOSE)  # the allowance is still needed
