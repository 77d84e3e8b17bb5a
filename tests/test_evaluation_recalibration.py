"""BN recalibration: only BN layers train, from the reset state if asked, back in eval mode even on error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.config import EvalProtocol
from harness.evaluation.recalibration import (
    batchnorms,
    load_statistics,
    recalibrating,
    reset_statistics,
    statistics_kept,
    use_protocol_momentum,
)


def _module() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout(0.5), nn.BatchNorm2d(2)).eval()


def test_recalibrating_trains_only_batchnorms_and_estimates_from_the_reset_state():
    module = _module()
    bns = batchnorms(module)
    assert len(bns) == 2
    use_protocol_momentum(bns, EvalProtocol(bn_mode="exact"))
    x = torch.randn(8, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        with recalibrating(bns, reset=True):
            assert all(bn.training for bn in bns) and not module[2].training  # dropout draws nothing
            module(x)
        once = bns[0].running_mean.clone()
        with recalibrating(bns, reset=True):
            module(x)
        assert torch.equal(bns[0].running_mean, once)  # the earlier estimate was reset, not averaged in
        assert int(bns[0].num_batches_tracked) == 1
        with recalibrating(bns, reset=False):
            module(x)
        assert int(bns[0].num_batches_tracked) == 2
    assert not any(bn.training for bn in bns)
    expected = torch.conv2d(x, module[0].weight, module[0].bias).mean(dim=(0, 2, 3))
    torch.testing.assert_close(once, expected)


def test_recalibrating_returns_to_eval_mode_when_a_pass_raises():
    bns = batchnorms(_module())
    with pytest.raises(RuntimeError, match="boom"), recalibrating(bns, reset=True):
        raise RuntimeError("boom")
    assert not any(bn.training for bn in bns)


def test_protocol_momentum_follows_bn_mode():
    bns = batchnorms(_module())
    use_protocol_momentum(bns, EvalProtocol(bn_mode="ema", bn_momentum=0.25))
    assert [bn.momentum for bn in bns] == [0.25, 0.25]
    use_protocol_momentum(bns, EvalProtocol(bn_mode="exact"))
    assert [bn.momentum for bn in bns] == [None, None]  # a cumulative average


def test_statistics_kept_puts_back_the_tensors_a_block_rebinds():
    bn = batchnorms(_module())[0]
    mean = bn.running_mean
    with pytest.raises(RuntimeError), statistics_kept([bn]):
        load_statistics(bn, reset_statistics(bn))
        assert bn.running_mean is not mean
        raise RuntimeError
    assert bn.running_mean is mean
    fresh = reset_statistics(bn)
    assert torch.equal(fresh[0], torch.zeros(2)) and torch.equal(fresh[1], torch.ones(2)) and int(fresh[2]) == 0
