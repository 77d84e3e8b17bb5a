"""The plugin contract checker: built-ins keep it; a searcher or supernet that breaks a rule is caught by name."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from torch import nn

import searchers
import supernets
from harness.checks import check_searcher, check_supernet, format_checks
from searchers import GenerationalSearcher, register_searcher
from supernets.convnet import conv_supernet, tiny_config

BUILTIN_SEARCHERS = ["random", "evolution", "cf-es", "pcf-es", "pcf-es-is"]


def _failed(checks):
    return {c.name: c.detail for c in checks if not c.passed}


@pytest.mark.parametrize("name", BUILTIN_SEARCHERS)
def test_builtin_searchers_keep_the_contract(name):
    checks = check_searcher(name)
    assert _failed(checks) == {} and len(checks) == 7


@pytest.mark.parametrize("name", ["conv-tiny", "spos-cpu", "fairnas-tiny"])
def test_builtin_supernets_keep_the_contract(name):
    checks = check_supernet(name, archs=2)
    assert _failed(checks) == {} and len(checks) == 7


@dataclass(frozen=True)
class _Params:
    generations: int = 3


@register_searcher("check-test-repeats")
class _Repeats(searchers.Searcher):
    """Asks the all-zeros arch in every generation: breaks "never repeat"."""

    Params = _Params

    def __init__(self, space, seed, params=None):
        super().__init__(space, seed, params)
        self.told = 0

    def ask(self):
        return [(0,) * self.space.num_blocks]

    def tell(self, scored):
        self.told += 1
        self.last = scored[0]

    def done(self):
        return self.told >= self.params.generations

    def best(self):
        return self.last

    @property
    def generation(self):
        return self.told

    def state_dict(self):
        return {"told": self.told}

    def load_state_dict(self, state):
        self.told = state["told"]


@register_searcher("check-test-ignores-frozen")
class _IgnoresFrozen(GenerationalSearcher):
    """Hints a frozen prefix of 1s but samples the whole space."""

    Params = _Params

    def hints(self):
        return searchers.Hints(frozen=(1, 1))

    def propose(self):
        if self.generation >= self.params.generations:
            return []
        batch: dict = {}
        self.draw_new(lambda: self.space.sample(self.rng), 8, batch)
        return list(batch)


def test_a_searcher_that_repeats_an_arch_is_caught():
    failed = _failed(check_searcher("check-test-repeats"))
    assert any("asked (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) again" in d for d in failed.values()), failed


def test_a_searcher_that_ignores_its_frozen_prefix_is_caught():
    failed = _failed(check_searcher("check-test-ignores-frozen"))
    assert "every asked arch lies in the space and starts with the frozen prefix of its hints" in failed
    assert "does not start with the frozen prefix (1, 1)" in failed[
        "every asked arch lies in the space and starts with the frozen prefix of its hints"
    ]


class _InPlaceDouble(nn.Module):
    def forward(self, x):
        return x.mul_(2)


def _broken_factory(**config):
    net = conv_supernet(**config)
    net.blocks[2].ops[1] = _InPlaceDouble()  # modifies its input, and is not the MACs op_macs says
    return net


supernets.register_supernet("check-test-inplace", _broken_factory, tiny_config(ops=["conv3", "conv5", "sep5", "skip"]))


def test_a_supernet_whose_block_modifies_its_input_is_caught():
    failed = _failed(check_supernet("check-test-inplace", archs=2))
    assert failed["blocks do not modify their input in place"] == (
        "block 2 op 1 changed its input in place (prefix reuse shares that tensor)"
    )


def _miscounted_factory(**config):
    net = conv_supernet(**config)
    net.blocks[0].op_macs = tuple(m + 1 for m in net.blocks[0].op_macs)  # one MAC per image too many
    return net


supernets.register_supernet("check-test-miscounted", _miscounted_factory, tiny_config(ops=["conv3", "conv5", "sep5", "skip"]))


def test_a_supernet_whose_mac_count_is_off_by_one_is_caught():
    failed = _failed(check_supernet("check-test-miscounted", archs=1))
    assert list(failed) == ["macs() equals torch's FLOP counter / 2 per image, for whole paths and parts"]
    assert "macs() says" in failed["macs() equals torch's FLOP counter / 2 per image, for whole paths and parts"]


def test_the_report_has_one_line_per_check_and_a_verdict():
    text = format_checks("supernet", "check-test-inplace", check_supernet("check-test-inplace", archs=1))
    lines = text.splitlines()
    assert lines[-1].startswith("supernet 'check-test-inplace' breaks ")
    assert any(line.startswith("FAIL blocks do not modify their input in place: block 2 op 1") for line in lines)
    assert sum(line.startswith(("PASS ", "FAIL ")) for line in lines) == len(lines) - 1
