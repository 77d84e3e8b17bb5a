"""Seeded calibration batches of training images (for batch-norm recalibration), the same on every device.

The protocol draws them (``EvalProtocol.calibration_batches``): how many, how large, which seed
and whether augmented are its fields, and part of its hash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def draw_calibration_batches(train_x: torch.Tensor, count: int, size: int, seed: int, *, augment: bool) -> list[torch.Tensor]:
    """Draw ``count`` batches of ``size`` training images in a fixed order from ``torch.Generator(seed)``.

    Images are drawn without replacement; when ``count * size`` exceeds the split, further passes
    over fresh permutations follow (a batch straddling two passes may repeat an image). ``augment``
    applies a seeded random horizontal flip and a shift of up to 1/8 of the image side
    (edge-replicated), a cheap stand-in for SPOS's training crops.
    """
    if train_x.dim() != 4 or train_x.shape[0] == 0:
        raise ValueError(f"train_x must be a non-empty NCHW tensor, got shape {tuple(train_x.shape)}")
    n = train_x.shape[0]
    if size > n:
        raise ValueError(f"calibration batch size {size} exceeds the {n} training images")
    import torch

    gen = torch.Generator().manual_seed(seed)
    passes = -(-count * size // n)
    order = torch.cat([torch.randperm(n, generator=gen) for _ in range(passes)])[: count * size]
    batches = []
    for idx in order.view(count, size):
        batch = train_x.index_select(0, idx.to(train_x.device))
        batches.append(_augment(batch, gen) if augment else batch)
    return batches


def _augment(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    import torch

    b, c, h, w = batch.shape
    pad = max(1, min(h, w) // 8)
    # Draw on the CPU generator so the batches do not depend on the device.
    flip = (torch.rand(b, generator=gen) < 0.5).to(batch.device)
    shift = torch.randint(-pad, pad + 1, (b, 2), generator=gen).to(batch.device)
    # Clamped source indices are an edge-replicating shift; one gather applies flip and shift together
    # (F.pad(mode="replicate") is ~100x slower on single-channel CPU batches).
    rows = (shift[:, :1] + torch.arange(h, device=batch.device)).clamp_(0, h - 1)
    cols = (shift[:, 1:] + torch.arange(w, device=batch.device)).clamp_(0, w - 1)
    cols = torch.where(flip[:, None], w - 1 - cols, cols)
    flat = (rows[:, :, None] * w + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return batch.flatten(2).gather(2, flat).view(b, c, h, w)
