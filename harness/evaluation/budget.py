"""The reuse budget: how many bytes the prefix store may hold, and how many a prefix node needs.

``budget_bytes = "auto"`` resolves, once, when the evaluator is built, to a share of the free
memory where the store lives: ``AUTO_DEVICE_SHARE`` (half) of the free device memory
(``torch.cuda.mem_get_info``) for a device store on CUDA, which leaves the other half to the
model, the protocol's data and the tree walk's per-batch activations; ``AUTO_HOST_SHARE`` (a
quarter) of the available host memory (``MemAvailable`` of /proc/meminfo, else
``os.sysconf``) on the CPU or with ``location = "host"``, since the host also runs the data,
the operating system and other processes. The budget is a cap, not the store's size: the
store keeps only what it expects to be read again (hinted prefixes, nodes read by the last
requests: harness.evaluation.prefix_store), so on spos-tiny under the default protocol
evolution's store peaks at 4.0 GB (5 generations of 50) under any larger cap; capped at
3 / 2 / 1 GB it executes 1.5 / 4.6 / 10% more MACs (``pcfes bench --cost`` measures what a
cap costs in time). The resolved number is recorded in run.json and kept on resume.

Node sizes come from output shapes: one probe image through every choice of every block,
never counted as search work.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.config import AUTO_BUDGET, EvalProtocol, ReuseConfig
from harness.evaluation.importance import check_rate
from supernets.base import Supernet

AUTO_DEVICE_SHARE = 0.5
AUTO_HOST_SHARE = 0.25
MEMINFO = Path("/proc/meminfo")


def available_host_bytes() -> int:
    """Host memory available to a new allocation: MemAvailable, else free physical pages."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def resolve_budget(reuse: ReuseConfig, device: torch.device) -> int:
    """The store's byte budget: the configured integer, or a share of the free memory where it lives."""
    if reuse.budget_bytes != AUTO_BUDGET:
        return int(reuse.budget_bytes)
    if device.type == "cuda" and reuse.location == "device":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * AUTO_DEVICE_SHARE)
    return int(available_host_bytes() * AUTO_HOST_SHARE)


def node_shapes(net: Supernet) -> tuple[tuple[int, ...], ...]:
    """Per-image output shape of each prefix depth: 0 = the stem, d = after block d-1 (all choices agree)."""
    param = next(net.parameters())
    training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            x = net(torch.zeros((1, *net.input_shape), device=param.device, dtype=param.dtype), (), 0, 0)
            shapes = [tuple(x.shape[1:])]
            for i, block in enumerate(net.blocks):
                outs = [block(x, c) for c in range(len(block.ops))]
                found = {tuple(o.shape[1:]) for o in outs}
                if len(found) != 1:
                    raise ValueError(
                        f"the choices of block {i} of {net.display_name} give different output shapes "
                        f"{sorted(found)}; every choice of a block must give the same shape"
                    )
                x = outs[0]
                shapes.append(found.pop())
    finally:
        net.train(training)
    return tuple(shapes)


def element_size(dtype: str) -> int:
    """Bytes per element of a protocol dtype name."""
    return torch.empty((), dtype=getattr(torch, dtype)).element_size()


def numel(shape: tuple[int, ...]) -> int:
    """Elements of a per-image shape."""
    return math.prod(shape)


@dataclass(frozen=True)
class NodeNeed:
    """What one stored prefix node of a given depth needs, and whether it fits the budget."""

    depth: int  # 0 = the stem's output, d = the output of blocks 0..d-1
    bytes_per_image: int
    images: int  # calibration images + scored validation images
    nbytes: int
    fits: bool


def reuse_plan(
    net: Supernet,
    protocol: EvalProtocol,
    budget_bytes: int,
    *,
    val_images: int | None = None,
    importance_rate: float | None = None,
) -> tuple[NodeNeed, ...]:
    """Bytes a pinned prefix node needs at every depth, and whether each fits ``budget_bytes``.

    ``val_images`` is the validation split's size, needed when ``protocol.val_size`` is 0 (the
    whole split); ``importance_rate`` scores floor(rate x N) of them.
    """
    scored = protocol.val_size or val_images
    if not scored:
        raise ValueError("protocol.val_size is 0 (the whole split): pass val_images, the split's size")
    if importance_rate is not None:
        scored = check_rate(importance_rate, scored)
    images = protocol.calib_batches * protocol.calib_batch_size + scored
    item = element_size(protocol.dtype)
    needs = []
    for depth, shape in enumerate(node_shapes(net)):
        per_image = numel(shape) * item
        nbytes = per_image * images
        needs.append(NodeNeed(depth, per_image, images, nbytes, nbytes <= budget_bytes))
    return tuple(needs)


def format_reuse_plan(needs: tuple[NodeNeed, ...], budget_bytes: int) -> str:
    """One line per depth: bytes per image, node bytes, fits or not, under the budget."""
    lines = [f"prefix-node bytes per freeze depth (budget {budget_bytes / 2**30:.2f} GiB):"]
    for need in needs:
        verdict = "fits" if need.fits else "does not fit: streamed"
        lines.append(
            f"  depth {need.depth:2d}: {need.bytes_per_image:>9,d} B/image x {need.images:,d} images = "
            f"{need.nbytes / 2**30:8.2f} GiB  {verdict}"
        )
    return "\n".join(lines)
