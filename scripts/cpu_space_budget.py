"""Check a CPU-scale supernet against the CPU budget: candidate cost, training time, spread over noise.

On one torch thread, under the CPU plan's evaluation protocol (``harness/plans/reproduce-cpu.toml``:
2 x 256 calibration images, 2,000 validation images in batches of 1,000, ``bn_mode`` exact) on ``fashion16``:

- ``cost``: CPU time (``time.process_time``) to score one candidate from the input (no reuse),
  averaged over distinct random archs (their costs differ by op), with the min and median of the
  repeats, and the projected CPU time of an evolution search of 20 x 50 candidates at ``--reuse``
  times that cost (the share the default prefix reuse pays: 0.75 measured on spos-cpu).
- ``train``: train the supernet with ``TrainConfig(epochs=...)`` and save the checkpoint; CPU and
  wall time.
- ``spread``: from a checkpoint, the std of the score over uniformly random archs (spread) and
  the recalibration noise (std of one arch's score over calibration seeds, averaged over archs).

The load average before and after each step is printed: CPU times taken while other processes
run are inflated (shared caches and memory bandwidth), so compare them only with each other.

    python scripts/cpu_space_budget.py cost spos-cpu fairnas-cpu --repeats 5
    python scripts/cpu_space_budget.py train spos-cpu --out checkpoints/spos-cpu-fashion16.pt
    python scripts/cpu_space_budget.py spread checkpoints/spos-cpu-fashion16.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import numpy as np
import torch

from harness import reproduce
from harness.config import ReuseConfig
from harness.datasets import DatasetSplits, load_dataset
from harness.evaluation import Evaluator
from supernets import Supernet, get_supernet, supernet_entry
from supernets.checkpoint import load_checkpoint
from supernets.train import TrainConfig, train_supernet

PROTOCOL = reproduce.load_plan("cpu").base.protocol
DATASET = PROTOCOL.dataset
SEARCH_CANDIDATES = 20 * 50
EVAL_IMAGES = PROTOCOL.calib_batches * PROTOCOL.calib_batch_size + PROTOCOL.val_size  # per candidate


def load_average() -> str:
    """The 1-minute load average, for the record of what else ran."""
    return f"{os.getloadavg()[0]:.2f}"


def uniform_archs(net: Supernet, count: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """``count`` distinct uniformly random archs of ``net``."""
    archs: dict[tuple[int, ...], None] = {}
    while len(archs) < count:
        archs[tuple(int(c) for c in rng.integers(0, net.choices))] = None
    return list(archs)


def candidate_cost(net: Supernet, splits: DatasetSplits, repeats: int, per_repeat: int) -> list[float]:
    """CPU seconds per candidate scored from the input, one value per repeat of ``per_repeat`` archs."""
    evaluator = Evaluator(net, splits, PROTOCOL, ReuseConfig(level="none"))
    archs = uniform_archs(net, 1 + repeats * per_repeat, np.random.default_rng(0))
    evaluator.score(archs[:1])  # warm-up: first calls allocate and pick kernels
    costs = []
    for r in range(repeats):
        batch = archs[1 + r * per_repeat : 1 + (r + 1) * per_repeat]
        start = time.process_time()
        evaluator.score(batch)
        costs.append((time.process_time() - start) / per_repeat)
    return costs


def run_cost(args: argparse.Namespace, splits: DatasetSplits) -> None:
    for name in args.supernets:
        net = get_supernet(name)
        before = load_average()
        costs = candidate_cost(net, splits, args.repeats, args.per_repeat)
        mean_macs = float(net.sample_macs(np.random.default_rng(0), 100_000).mean())
        mean, low, mid = statistics.fmean(costs), min(costs), statistics.median(costs)
        print(
            f"{name}: {net.num_blocks} blocks, mean arch {mean_macs / 1e6:.3f} M MACs; per candidate "
            f"{mean * 1e3:.1f} ms on average over {args.repeats} x {args.per_repeat} archs (repeats: min "
            f"{low * 1e3:.1f}, median {mid * 1e3:.1f}), {mean * 1e9 / (mean_macs * EVAL_IMAGES):.2f} ns per MAC; "
            f"projected search {SEARCH_CANDIDATES * mean * args.reuse:.0f} s at reuse {args.reuse} "
            f"(repeats: {SEARCH_CANDIDATES * low * args.reuse:.0f}-{SEARCH_CANDIDATES * max(costs) * args.reuse:.0f} s); "
            f"load {before} -> {load_average()}",
            flush=True,
        )


def run_train(args: argparse.Namespace, splits: DatasetSplits) -> None:
    net = get_supernet(args.supernet)
    epochs = args.epochs or supernet_entry(args.supernet).train_epochs or TrainConfig().epochs
    config = TrainConfig(epochs=epochs, seed=args.seed, device="cpu")
    before = load_average()
    cpu, wall = time.process_time(), time.perf_counter()
    result = train_supernet(
        net, splits.train_x, splits.train_y, config, checkpoint_path=args.out,
        metadata={"dataset": DATASET, "input_shape": list(net.input_shape)}, progress=False,
    )
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    last = result.epochs[-1]
    print(
        f"{args.supernet}: {epochs} epochs in {cpu:.0f} s CPU, {wall:.0f} s wall; last epoch loss "
        f"{last.loss:.4f}, training accuracy {last.accuracy:.4f}; load {before} -> {load_average()}; "
        f"wrote {args.out}",
        flush=True,
    )


def run_spread(args: argparse.Namespace, splits: DatasetSplits) -> None:
    net, info = load_checkpoint(args.checkpoint)
    before = load_average()
    rng = np.random.default_rng(args.seed)
    archs = uniform_archs(net, args.archs, rng)
    scores = np.array(Evaluator(net, splits, PROTOCOL).score(archs))
    noisy = archs[: args.noise_archs]
    per_seed = np.array([
        Evaluator(net, splits, dataclasses.replace(PROTOCOL, seed=seed)).score(noisy)
        for seed in range(args.noise_seeds)
    ])
    spread = float(scores.std(ddof=1))
    noise = float(per_seed.std(axis=0, ddof=1).mean())
    print(
        f"{info.spec.name}: {len(archs)} random archs score mean {scores.mean():.4f}, min {scores.min():.4f}, "
        f"max {scores.max():.4f}, std (spread) {spread:.4f}; recalibration noise {noise:.4f} "
        f"({len(noisy)} archs x {args.noise_seeds} calibration seeds); spread/noise {spread / noise:.1f}x; "
        f"training accuracy {info.epochs[-1].accuracy:.4f}; load {before} -> {load_average()}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cost = commands.add_parser("cost", help="CPU time per candidate scored from the input")
    cost.add_argument("supernets", nargs="+")
    cost.add_argument("--repeats", type=int, default=5)
    cost.add_argument("--per-repeat", type=int, default=10, help="distinct random archs timed together")
    cost.add_argument("--reuse", type=float, default=0.75, help="share of the from-input cost the default reuse pays")
    train = commands.add_parser("train", help="train a supernet and save its checkpoint")
    train.add_argument("supernet")
    train.add_argument("--epochs", type=int, help="default: the supernet entry's train_epochs, else TrainConfig's")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", required=True, help="checkpoint path")
    spread = commands.add_parser("spread", help="score spread over random archs against recalibration noise")
    spread.add_argument("checkpoint")
    spread.add_argument("--archs", type=int, default=200)
    spread.add_argument("--noise-archs", type=int, default=10)
    spread.add_argument("--noise-seeds", type=int, default=10)
    spread.add_argument("--seed", type=int, default=0, help="seed of the random archs")
    args = parser.parse_args()

    torch.set_num_threads(1)
    splits = load_dataset(DATASET)
    {"cost": run_cost, "train": run_train, "spread": run_spread}[args.command](args, splits)


if __name__ == "__main__":
    main()
