"""The built-in search spaces: one registry entry per space, its defaults and its search limit.

Every factory is named by its module path, imported when a supernet is first built: listing the
spaces, validating a name or reading a default needs no torch (``pcfes list`` and a mistyped
``--supernet`` answer at once). The networks are built in ``supernets.convnet``,
``supernets.mobilenet`` and ``supernets.shufflenet``.
"""

from __future__ import annotations

import copy
from typing import Any

from supernets.registry import PAPER_MAC_LIMIT, MacLimit, register_supernet

SHUFFLENET_OPS = ["shuffle3", "shuffle5", "shuffle7", "xception"]
FAIRNAS_OPS = ["k3e3", "k3e6", "k5e3", "k5e6", "k7e3", "k7e6"]
GREEDYNAS_OPS = [*FAIRNAS_OPS, "skip"]


def tiny_config(**changes: Any) -> dict[str, Any]:
    """A fresh copy of the CPU-scale defaults shared by the ``*-tiny`` supernets, with ``changes``."""
    return copy.deepcopy({
        "in_channels": 1,
        "input_size": 16,
        "num_classes": 10,
        "stem_width": 16,
        "stem_stride": 2,  # 8x8 maps in the first stage: a stride-1 stem costs ~4x the time
        "widths": [16, 32, 64],
        "depths": [4, 4, 4],
        "strides": [1, 2, 2],
        # No 1x1 head conv: its BN, estimated on 2x2 maps, added recalibration noise that blurred
        # the differences between candidates (spread/noise: conv-tiny 4.5-6x -> 6-7x, mbv2-tiny 4.9x -> 6.1x).
        "last_width": None,
        **changes,
    })


# --- plain convolutions (supernets.convnet) ---

register_supernet(
    "conv-tiny",
    "supernets.convnet:conv_supernet",
    tiny_config(ops=["conv3", "conv5", "sep5", "skip"]),
    "CPU-scale plain-conv space: 12 blocks x 4 (conv3, conv5, sep5, skip), 16x16 grey input",
    scale="tiny",
)


# --- ShuffleNetV2 units, SPOS (supernets.shufflenet) ---

# Search limits: SPOS searches under PAPER_MAC_LIMIT; each CPU-scale limit excludes the same share
# of uniformly random archs as that does in `spos` (scripts/mac_limits.py: 1,000,000 archs per space
# from numpy.random.default_rng(0); the share is that sample's share above the limit).
# train_epochs where TrainConfig's default (30, sized for conv-tiny) does not fit the CPU budget
# (scripts/cpu_space_budget.py train).
register_supernet(
    "spos",
    "supernets.shufflenet:shufflenet_supernet",
    {
        "in_channels": 3,
        "input_size": 224,
        "num_classes": 1000,
        "stem_width": 16,
        "stem_stride": 2,
        "widths": [64, 160, 320, 640],
        "depths": [4, 4, 8, 4],
        "strides": [2, 2, 2, 2],
        "last_width": 1024,
        "ops": list(SHUFFLENET_OPS),
    },
    "SPOS ShuffleNetV2 1.0x space: 20 blocks x 4 (shuffle3/5/7, xception), 224x224, 1000 classes",
    family="spos",
    scale="real",
    mac_limit=MacLimit(PAPER_MAC_LIMIT, 0.4108),
)
register_supernet(
    "spos-tiny",
    "supernets.shufflenet:shufflenet_supernet",
    tiny_config(stem_width=8, ops=list(SHUFFLENET_OPS)),
    "CPU-scale SPOS space: 12 blocks x 4 (shuffle3/5/7, xception), 16x16 grey input, 10 classes",
    family="spos",
    scale="tiny",
    mac_limit=MacLimit(270_336, 0.4122, matches="spos"),
)
# SPOS's stage layout (repeats 4, 4, 8, 4, every stage wider than the last) on 16x16 images, with
# SPOS's strides while the map is larger than 2x2 (stride-2 stem and first two stages; maps 4, 2,
# 2, 2 where SPOS has 56, 28, 14, 7), at 1/4 to 1/5 of its width. Gated residuals (``GatedResidual``):
# under single-path uniform training the plain 20-unit supernet stayed at chance (10% training
# accuracy after 2,000 steps), whatever the learning rate, warm-up or init.
register_supernet(
    "spos-cpu",
    "supernets.shufflenet:shufflenet_supernet",
    tiny_config(
        stem_width=8, widths=[16, 32, 64, 128], depths=[4, 4, 8, 4], strides=[2, 2, 1, 1], gated_residual=True,
        ops=list(SHUFFLENET_OPS),
    ),
    "CPU-scale full-depth SPOS space: 20 blocks x 4 (shuffle3/5/7, xception), stages 4-4-8-4, 16x16 grey input",
    family="spos",
    scale="cpu",
    mac_limit=MacLimit(412_352, 0.4121, matches="spos"),
    train_epochs=10,
)


# --- MobileNetV2 blocks, FairNAS and GreedyNAS (supernets.mobilenet) ---

# Search limits: the paper searched FairNAS and GreedyNAS under SPOS's PAPER_MAC_LIMIT too (every arch
# in its Table 1 has 316-329 M); each CPU-scale limit excludes the same share of uniformly random
# archs as that does in its real-size space (scripts/mac_limits.py: 1,000,000 archs per space from
# numpy.random.default_rng(0); the share is that sample's share above the limit).
# train_epochs where TrainConfig's default (30, sized for conv-tiny) does not fit the CPU budget
# (scripts/cpu_space_budget.py train).
_REAL = {"in_channels": 3, "input_size": 224, "num_classes": 1000, "stem_width": 32, "stem_stride": 2}

register_supernet(
    "fairnas",
    "supernets.mobilenet:mobilenet_supernet",
    {
        **_REAL,
        "stem_sep_width": 16,
        "widths": [32, 40, 80, 96, 192, 320],
        "depths": [2, 4, 4, 4, 4, 1],
        "strides": [2, 2, 2, 1, 2, 1],
        "last_width": 1280,
        "ops": list(FAIRNAS_OPS),
    },
    "FairNAS space: 19 blocks x 6 (k3/5/7 x e3/6 inverted residuals), 224x224, 1000 classes",
    family="fairnas",
    scale="real",
    mac_limit=MacLimit(PAPER_MAC_LIMIT, 0.9733),
)
register_supernet(
    "greedynas",
    "supernets.mobilenet:mobilenet_supernet",
    {
        **_REAL,
        "stem_sep_width": 16,
        "widths": [24, 40, 80, 96, 192, 320],
        "depths": [4, 4, 4, 4, 4, 1],
        "strides": [2, 2, 2, 1, 2, 1],
        "last_width": 1280,
        "ops": list(GREEDYNAS_OPS),
    },
    "GreedyNAS space: 21 blocks x 7 (FairNAS ops + skip), 224x224, 1000 classes",
    family="greedynas",
    scale="real",
    mac_limit=MacLimit(PAPER_MAC_LIMIT, 0.7743),
)
# Half the width of the other tiny nets: expanded depthwise blocks cost ~2x more per MAC on CPU.
_TINY = {"stem_sep_width": None, "stem_width": 8, "widths": [8, 16, 32]}

register_supernet(
    "fairnas-tiny",
    "supernets.mobilenet:mobilenet_supernet",
    tiny_config(**_TINY, ops=list(FAIRNAS_OPS)),
    "CPU-scale FairNAS-like space: 12 blocks x 6, 16x16 grey input, 10 classes",
    family="fairnas",
    scale="tiny",
    mac_limit=MacLimit(630_656, 0.9733, matches="fairnas"),
)
register_supernet(
    "greedynas-tiny",
    "supernets.mobilenet:mobilenet_supernet",
    tiny_config(**_TINY, ops=list(GREEDYNAS_OPS)),
    "CPU-scale GreedyNAS-like space: 12 blocks x 7 (with skip), 16x16 grey input, 10 classes",
    family="greedynas",
    scale="tiny",
    mac_limit=MacLimit(618_816, 0.7744, matches="greedynas"),
)
register_supernet(
    "mbv2-tiny",
    "supernets.mobilenet:mobilenet_supernet",
    tiny_config(**_TINY, ops=["k3e3", "k5e3", "k7e3", "skip"]),
    "CPU-scale MobileNetV2 space: 12 blocks x 4 (k3e3, k5e3, k7e3, skip), 16x16 grey input",
    scale="tiny",
)

# The real stage depths and choices on 16x16 images, with the real strides while the map is larger
# than 2x2 (stride-2 stem and first two stages; maps 4, 2, 2, 2, 2, 2 where the real spaces have
# 56, 28, 14, 14, 7, 7), the fixed separable stem conv kept, at 1/3 to 1/7 of the real widths.
# Gated residuals as in spos-cpu: the plain 19- and 21-block supernets stayed near chance under
# single-path uniform training.
_CPU = {
    "stem_width": 8,
    "stem_sep_width": 8,
    "widths": [8, 12, 16, 24, 32, 48],
    "strides": [2, 2, 1, 1, 1, 1],
    "gated_residual": True,
}

register_supernet(
    "fairnas-cpu",
    "supernets.mobilenet:mobilenet_supernet",
    tiny_config(**_CPU, depths=[2, 4, 4, 4, 4, 1], ops=list(FAIRNAS_OPS)),
    "CPU-scale full-depth FairNAS space: 19 blocks x 6, stage depths 2-4-4-4-4-1, 16x16 grey input",
    family="fairnas",
    scale="cpu",
    mac_limit=MacLimit(465_632, 0.9733, matches="fairnas"),
    train_epochs=10,
)
register_supernet(
    "greedynas-cpu",
    "supernets.mobilenet:mobilenet_supernet",
    tiny_config(**_CPU, depths=[4, 4, 4, 4, 4, 1], ops=list(GREEDYNAS_OPS)),
    "CPU-scale full-depth GreedyNAS space: 21 blocks x 7 (with skip), stage depths 4-4-4-4-4-1, 16x16 grey input",
    family="greedynas",
    scale="cpu",
    mac_limit=MacLimit(479_840, 0.7744, matches="greedynas"),
    train_epochs=10,
)
