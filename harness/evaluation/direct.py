"""Direct calls: a module's forward as the torch functions it ends in, without the module hops.

At the evaluator's batch sizes a module call's fixed cost rivals its kernels: ``Module.__call__``,
``forward`` and every ``self.weight`` (a failed attribute lookup, then ``Module.__getattr__``)
cost a BatchNorm about as much as its kernel on spos-tiny. ``compile_module`` turns a module
tree into nested closures that make the same ATen calls with the same arguments in the same
order, reading parameters, buffers, ``training`` and ``momentum`` from the module at every
call (so the module stays the one owner of its state: ``recalibrating``, ``load_statistics``,
``load_state_dict`` and ``.to`` act on the compiled calls too). The bits are those of
``module(x)``: tests/test_evaluation_direct.py compares both on every registered space.

Known leaf types, ``nn.Sequential`` and the supernets' own composites are compiled here; any
other module, or one with hooks, is called as a module (exact, only slower). The composites'
forwards are restated here rather than factored out of ``supernets``: any change to the
supernet code changes the checkpoints' code fingerprint and would retire every trained
checkpoint; that test catches a forward that drifts from its restatement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from supernets.builders import GatedResidual, Residual
from supernets.shufflenet import ShuffleUnit

Step = Callable[[torch.Tensor], torch.Tensor]


def compile_module(module: nn.Module) -> Step:
    """A callable giving the bits of ``module(x)`` (see the module docstring)."""
    if _hooked(module):
        return module
    build = _COMPILERS.get(type(module))
    if build is None:
        return module
    return build(module)


def _hooked(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


def _chain(steps: Sequence[Step]) -> Step:
    def run(x: torch.Tensor) -> torch.Tensor:
        for step in steps:
            x = step(x)
        return x

    return run


def _sequential(module: nn.Sequential) -> Step:
    return _chain([compile_module(m) for m in module])


def _conv2d(conv: nn.Conv2d) -> Step:
    if conv.padding_mode != "zeros":  # padded in forward first: leave it to the module
        return conv
    params, stride, padding, dilation, groups = conv._parameters, conv.stride, conv.padding, conv.dilation, conv.groups

    def run(x: torch.Tensor) -> torch.Tensor:  # Conv2d._conv_forward without padding_mode
        return torch.conv2d(x, params["weight"], params["bias"], stride, padding, dilation, groups)

    return run


def _batch_norm(bn: nn.BatchNorm2d) -> Step:
    if not bn.track_running_stats:
        return bn
    params, buffers, eps = bn._parameters, bn._buffers, bn.eps

    def run(x: torch.Tensor) -> torch.Tensor:  # _BatchNorm.forward and F.batch_norm, tracked statistics
        momentum = bn.momentum
        factor = 0.0 if momentum is None else momentum
        training = bn.training
        if training:
            count = buffers["num_batches_tracked"]
            count.add_(1)
            if momentum is None:  # cumulative moving average
                factor = 1.0 / float(count)
        return torch.batch_norm(
            x, params["weight"], params["bias"], buffers["running_mean"], buffers["running_var"],
            training, factor, eps, torch.backends.cudnn.enabled,
        )

    return run


def _relu(relu: nn.ReLU) -> Step:
    inplace = relu.inplace
    return lambda x: F.relu(x, inplace)


def _hardtanh(act: nn.Hardtanh) -> Step:  # nn.ReLU6 too
    low, high, inplace = act.min_val, act.max_val, act.inplace
    return lambda x: F.hardtanh(x, low, high, inplace)


def _identity(module: nn.Identity) -> Step:
    return lambda x: x


def _adaptive_avg_pool2d(pool: nn.AdaptiveAvgPool2d) -> Step:
    size = pool.output_size
    return lambda x: F.adaptive_avg_pool2d(x, size)


def _flatten(flatten: nn.Flatten) -> Step:
    start, end = flatten.start_dim, flatten.end_dim
    return lambda x: x.flatten(start, end)


def _linear(linear: nn.Linear) -> Step:
    params = linear._parameters
    return lambda x: F.linear(x, params["weight"], params["bias"])


def _residual(module: Residual) -> Step:  # Residual.forward
    body = compile_module(module.body)
    if module.shortcut is None:
        return body
    shortcut = compile_module(module.shortcut)
    return lambda x: body(x) + shortcut(x)


def _gated_residual(module: GatedResidual) -> Step:  # GatedResidual.forward
    body, shortcut, params = compile_module(module.body), compile_module(module.shortcut), module._parameters
    return lambda x: torch.addcmul(shortcut(x), body(x), params["gate"])


def _shuffle_unit(module: ShuffleUnit) -> Step:  # ShuffleUnit.forward
    main = compile_module(module.main)
    if module.proj is None:
        return lambda x: torch.cat((x[:, 0::2], main(x[:, 1::2])), dim=1)
    proj = compile_module(module.proj)
    return lambda x: torch.cat((proj(x), main(x)), dim=1)


# Exact types: a subclass may override forward.
_COMPILERS: dict[type, Callable[..., Step]] = {
    Residual: _residual,
    GatedResidual: _gated_residual,
    ShuffleUnit: _shuffle_unit,
    nn.Sequential: _sequential,
    nn.Conv2d: _conv2d,
    nn.BatchNorm2d: _batch_norm,
    nn.ReLU: _relu,
    nn.ReLU6: _hardtanh,
    nn.Hardtanh: _hardtanh,
    nn.Identity: _identity,
    nn.AdaptiveAvgPool2d: _adaptive_avg_pool2d,
    nn.Flatten: _flatten,
    nn.Linear: _linear,
}
