"""docs/architecture.md's claims: the layers import one way, and a new meter is one module plus one line."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from harness import runner, schema, workflow
from harness.config import CarbonConfig
from harness.meters import Measurement, Meter, meter_set
from harness.resolution import resolve

ROOT = Path(__file__).resolve().parents[1]


def _imported_packages(package: str) -> dict[str, set[str]]:
    """Module file -> the top-level packages it imports (absolute imports only)."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[path.relative_to(ROOT).as_posix()] = names
    return found


@pytest.mark.parametrize(("package", "forbidden"), [("searchers", {"harness", "supernets", "torch"}), ("supernets", {"harness", "searchers"})])
def test_the_layers_import_one_way(package, forbidden):
    imports = _imported_packages(package)
    assert len(imports) >= 5
    assert {module: names & forbidden for module, names in imports.items() if names & forbidden} == {}


class FakeCpuEnergyMeter(Meter):
    """A meter as a plugin author writes one: a fixed 2 J per window from a pretend counter."""

    nesting = 3
    JOULES = 2.0

    def sources(self) -> dict[str, str]:
        return {"cpu_energy_j": "fake_counter"}

    def start(self) -> None:
        self.started = True

    def stop(self) -> list[Measurement]:
        return [Measurement("cpu_energy_j", self.JOULES, "J", "fake_counter")]


def test_a_new_meter_is_one_module_and_one_line_of_default_meters(small_config, monkeypatch, tmp_path):
    # The one line: default_meters builds RaplMeter() for cpu_energy_j; the new meter takes its place.
    monkeypatch.setattr(meter_set, "RaplMeter", FakeCpuEnergyMeter)
    run = resolve(dataclasses.replace(small_config, carbon=CarbonConfig(enabled=False)))
    record = workflow.run_search(run, workflow.open_workspace(run, progress=False),
                                 run_dir=tmp_path / "run", progress=False)
    assert record.run.environment.meter_sources["cpu_energy_j"] == "fake_counter"
    generations = pd.read_csv(record.path / schema.GENERATIONS_CSV)
    phases = [p for p in schema.PHASES if f"{p}_cpu_energy_j" in generations]
    assert phases == list(schema.PHASES)
    for phase in phases:  # one window per phase and generation, each 2 J, and it is the best-available energy
        windows = generations[f"{phase}_cpu_energy_j"] / FakeCpuEnergyMeter.JOULES
        assert (windows == windows.round()).all() and (windows >= 0).all()
        assert generations[f"{phase}_energy_j"].tolist() == generations[f"{phase}_cpu_energy_j"].tolist()
    assert (generations["search_cpu_energy_j"] > 0).all()  # the searcher's windows of every generation
    assert record.run.totals.energy_j == pytest.approx(
        sum(generations[f"{p}_cpu_energy_j"].sum() for p in runner.SEARCH_PHASES if f"{p}_cpu_energy_j" in generations)
    )
