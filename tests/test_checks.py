"""`pcfes check`: built-in searchers and supernets pass every check, and each broken one fails its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from torch import nn

import searchers
import supernets
from harness import checks, cli
from supernets.spaces import tiny_config
from supernets.convnet import conv_supernet
from searchers import Arch, Hints, Searcher, SearchSpace

BUILTIN = ("cf-es", "evolution", "pcf-es", "pcf-es-is", "random")


@dataclass(frozen=True)
class ToyParams:
    generations: int = 4
    batch: int = 5
    defect: str = ""  # which rule of the contract this toy breaks ("" = none)


class ToySearcher(Searcher):
    """Uniform draws that freeze block 0 from generation 2 on, written against the public interface only."""

    Params = ToyParams
    params: ToyParams
    name = "toy"

    def __init__(self, space: SearchSpace, seed: int, params: ToyParams | None = None) -> None:
        super().__init__(space, seed, params)
        self.told: dict[Arch, float] = {}
        self.told_generations = 0

    def hints(self) -> Hints:
        frozen = (1,) if self.told_generations >= 2 else ()
        if self.params.defect == "bad-hint":
            frozen = (9,)
        if self.params.defect == "bad-reuse-hint":
            return Hints(frozen=frozen, reuse_from=((0, 1),))
        return Hints(frozen=frozen)

    def ask(self) -> list[Arch]:
        defect = self.params.defect
        if defect == "empty-ask":
            return []
        frozen = () if defect == "ignores-frozen" else self.hints().frozen
        rng = np.random.default_rng() if defect == "unseeded" else self.rng
        batch: list[Arch] = []
        while len(batch) < self.params.batch:
            arch = self.space.sample(rng, frozen)
            if arch not in self.told and arch not in batch:
                batch.append(arch)
        if defect == "repeats" and self.told:
            batch[0] = next(iter(self.told))
        if defect == "outside":
            batch[0] = (3,) * self.space.num_blocks
        return batch

    def tell(self, scored) -> None:
        self.told.update((tuple(a), float(s)) for a, s in scored)
        self.told_generations += 1

    def done(self) -> bool:
        return self.told_generations >= self.params.generations

    def best(self) -> tuple[Arch, float]:
        arch, score = max(self.told.items(), key=lambda item: item[1])
        if self.params.defect == "best-not-told":
            return tuple(0 for _ in arch), score
        return arch, score

    @property
    def generation(self) -> int:
        return self.told_generations

    def state_dict(self) -> dict[str, Any]:
        state = {"told": [[list(a), s] for a, s in self.told.items()], "generations": self.told_generations,
                 "rng": self.rng.bit_generator.state}
        if self.params.defect == "numpy-state":
            state["generations"] = np.int64(self.told_generations)
        if self.params.defect == "forgets-rng":
            del state["rng"]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.told = {tuple(a): s for a, s in state["told"]}
        self.told_generations = state["generations"]
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]


def toy(defect: str = ""):
    return lambda space, seed: ToySearcher(space, seed, ToyParams(defect=defect))


def failed(results: list[checks.CheckResult]) -> list[str]:
    return [r.name for r in results if not r.passed]


@pytest.mark.parametrize("name", BUILTIN)
def test_every_built_in_searcher_passes_every_check(name):
    results = checks.check_searcher(lambda space, seed: searchers.get_searcher(name, space, seed))
    assert [r.name for r in results] == list(checks.SEARCHER_CHECKS)
    assert failed(results) == []


def test_a_correct_toy_searcher_passes_every_check():
    assert failed(checks.check_searcher(toy())) == []


@pytest.mark.parametrize("defect, check, problem", [
    ("empty-ask", checks.RUNS_TO_DONE, "generation 0: ask() returned nothing while done() is False"),
    ("outside", checks.IN_SPACE, "generation 0 asked (3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3), which is not in the space"),
    ("repeats", checks.DISTINCT, "generation 1 asked "),
    ("ignores-frozen", checks.FROZEN, "generation 2 asked "),
    ("bad-hint", checks.HINTS, "generation 0: frozen prefix (9,) is not a prefix of an arch in the space"),
    ("bad-reuse-hint", checks.HINTS, "generation 0: reuse_from arch (0, 1) is not an arch of the space"),
    ("numpy-state", checks.STATE_JSON, "after generation 0: TypeError: Object of type int64 is not JSON serializable"),
    ("forgets-rng", checks.RESUMES, "generation 2: the loaded copy's hints or asks differ from the original's"),
    ("unseeded", checks.SEEDED, "generation 0 differs between two runs with seed 0"),
    ("best-not-told", checks.BEST, "best() returned (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), which was never told"),
])
def test_each_broken_searcher_fails_the_check_for_what_it_breaks(defect, check, problem):
    results = {r.name: r for r in checks.check_searcher(toy(defect))}
    assert not results[check].passed
    assert results[check].problem.startswith(problem)
    assert results[check].format().startswith(f"FAIL  {check}: {problem}")


def test_pcfes_check_prints_one_line_per_check_and_exits_0_when_all_pass(capsys):
    assert cli.main(["check", "searcher", "random"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"pass  {name}" for name in checks.SEARCHER_CHECKS] + ["searcher random: all 9 checks pass"]


def test_pcfes_check_exits_1_naming_the_failed_checks(monkeypatch, capsys):
    monkeypatch.setattr(searchers, "get_searcher", lambda name, space, seed: ToySearcher(space, seed, ToyParams(defect="unseeded")))
    assert cli.main(["check", "searcher", "random"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[0] for line in lines if line.startswith("FAIL")] == [  # draws of an unseeded rng cannot resume either
        f"FAIL  {checks.RESUMES}", f"FAIL  {checks.SEEDED}"]
    assert lines[-1] == "searcher random: 2 of 9 checks failed"


def test_pcfes_check_of_an_unknown_searcher_exits_2_listing_the_registered_ones(capsys):
    assert cli.main(["check", "searcher", "nope"]) == 2
    assert capsys.readouterr().err.startswith("pcfes check: error: unknown searcher 'nope'; available: cf-es, evolution")


# --------------------------------------------------------------------------- supernets


@pytest.mark.parametrize("name", ["conv-tiny", "spos-cpu", "fairnas-tiny"])
def test_built_in_supernets_pass_every_check(name):
    results = checks.check_registered_supernet(name, archs=2)
    assert [r.name for r in results] == list(checks.SUPERNET_CHECKS)
    assert [r.format() for r in results if not r.passed] == []


class _InPlaceDouble(nn.Module):
    def forward(self, x):
        return x.mul_(2)


def _in_place_factory(**config):
    net = conv_supernet(**config)
    net.blocks[2].ops[1] = _InPlaceDouble()  # modifies its input (and runs none of the MACs op_macs states)
    return net


def _miscounted_factory(**config):
    net = conv_supernet(**config)
    net.blocks[0].op_macs = tuple(m + 1 for m in net.blocks[0].op_macs)  # one MAC per image too many
    return net


_CONV_DEFAULTS = tiny_config(ops=["conv3", "conv5", "sep5", "skip"])


def test_a_supernet_whose_block_modifies_its_input_is_caught():
    results = {r.name: r for r in checks.check_supernet(_in_place_factory, _CONV_DEFAULTS, archs=2)}
    assert results[checks.PURE_BLOCKS].problem == "block 2 op 1 changed its input in place (prefix reuse shares that tensor)"


def test_a_supernet_whose_mac_count_is_off_by_one_is_caught():
    failed = [r for r in checks.check_supernet(_miscounted_factory, _CONV_DEFAULTS, archs=1) if not r.passed]
    assert [r.name for r in failed] == [checks.MACS_EXACT]
    assert "macs() says" in failed[0].problem and "the FLOP counter" in failed[0].problem


def _scaled_logits_factory(**config):
    net = conv_supernet(**config)
    plain = net.forward
    net.forward = lambda x, arch, start=0, stop=None: plain(x, arch, start, stop) * (2.0 if stop is None else 1.0)
    return net


def test_a_forward_that_does_more_than_its_units_is_caught():
    failed = [r for r in checks.check_supernet(_scaled_logits_factory, _CONV_DEFAULTS, archs=1) if not r.passed]
    assert [r.name for r in failed] == [checks.UNITS_EXACT]
    assert "differ from forward" in failed[0].problem


def test_defaults_that_are_not_json_are_caught():
    results = {r.name: r for r in checks.check_supernet(conv_supernet, {**_CONV_DEFAULTS, "widths": (16, 32, 64)}, archs=1)}
    assert results[checks.JSON_DEFAULTS].problem.startswith("the defaults change in a JSON round trip")


def test_pcfes_check_supernet_prints_one_line_per_check(capsys):
    assert cli.main(["check", "supernet", "conv-tiny"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "supernet conv-tiny: all 8 checks pass"
    assert [line.split("  ", 1)[1] for line in out[:-1]] == list(checks.SUPERNET_CHECKS)
    assert cli.main(["check", "supernet", "nope"]) == 2
    assert "unknown supernet 'nope'; available: " in capsys.readouterr().err
