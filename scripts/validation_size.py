"""How many validation images does a CPU-scale supernet need before its scores rank candidates?

For each supernet, a fixed seeded sample of archs within its MAC limit (``harness.rank_check``'s
sample) is scored under the CPU plan's protocol on two **disjoint** validation sets of ``n``
images each, for every ``n`` asked. The two sets share nothing but the calibration batches, so

- Kendall τ between the two sets is the rank reliability of a protocol of ``n`` images;
- the covariance of the two score lists estimates the variance of what the archs really differ by
  (the signal: the sets' noises are independent), and half the variance of the centred differences
  the arch-specific noise of one ``n``-image score (what ranking sees; the binomial standard error
  also counts what the images do to every arch alike);
- their ratio, noise / signal, is the number the report's *Can this supernet rank?* section judges.

A last row scores side B at the largest ``n`` again with another calibration seed
(``protocol.seed``): the calibration noise a larger validation set cannot remove.

The pool: ``fashion16``'s 2,000 validation images first, then the Fashion-MNIST training images
that ``fashion16`` does not use (38,000; from Debian's ``dataset-fashion-mnist``), area-averaged to
16 x 16 exactly as ``scripts/build_fashion16.py`` does, in a seeded order. Side A is the pool's
first ``n`` images, side B the ``n`` from its middle. CPU time per arch is ``time.process_time``
of scoring with prefix reuse (exact); compare it only within one run.

    python scripts/validation_size.py spos-cpu fairnas-cpu greedynas-cpu --sizes 1000 2000 4000 8000 \
        --out results/validation-size.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from harness import checkpoints, reproduce, resolution
from harness.config import EvalProtocol, ReuseConfig
from harness.datasets import DatasetSplits, load_dataset
from harness.datasets.loaders import FASHION16_FILE, FASHION_MNIST_DIR, FASHION_MNIST_FILES, read_idx
from harness.evaluation import Evaluator
from harness.rank_check import SAMPLE_ARCHS, kendall, sample_archs
from supernets import Supernet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_fashion16 import downsample  # noqa: E402  (the one definition of fashion16's 16 x 16 images)

POOL_SEED = 7


def validation_pool(splits: DatasetSplits, source: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """fashion16's validation images, then the unused Fashion-MNIST training images, normalised alike."""
    with np.load(FASHION16_FILE) as npz:
        used = np.concatenate([npz["train_idx"], npz["val_idx"]]).astype(np.int64)
        mean, std = float(npz["mean"][0]), float(npz["std"][0])
    images = read_idx(source / f"{FASHION_MNIST_FILES['train_x']}.gz")
    labels = read_idx(source / f"{FASHION_MNIST_FILES['train_y']}.gz")
    unused = np.setdiff1d(np.arange(len(labels)), used)
    unused = unused[np.random.default_rng(POOL_SEED).permutation(len(unused))]
    extra = torch.from_numpy(downsample(images[unused]).astype(np.float32)[:, None]).div_(255).sub_(mean).div_(std)
    pool_x = torch.cat([splits.val_x, extra])
    pool_y = torch.cat([splits.val_y, torch.from_numpy(labels[unused].astype(np.int64))])
    return pool_x, pool_y


def score_on(
    net: Supernet, splits: DatasetSplits, protocol: EvalProtocol, archs: list[tuple[int, ...]], x: torch.Tensor, y: torch.Tensor
) -> tuple[np.ndarray, float]:
    """Scores of ``archs`` with ``x``/``y`` as the validation set, and the CPU seconds per arch it took."""
    subset = dataclasses.replace(splits, val_x=x, val_y=y)
    start = time.process_time()
    scores = Evaluator(net, subset, dataclasses.replace(protocol, val_size=len(x)), ReuseConfig(level="prefix")).score(archs)
    return np.asarray(scores), (time.process_time() - start) / len(archs)


def agreement_row(n: int, a: np.ndarray, b: np.ndarray, cpu_s: float, what: str) -> dict:
    signal_var = float(np.cov(a, b)[0, 1])
    noise = float(np.std((a - a.mean()) - (b - b.mean()), ddof=1) / math.sqrt(2))
    signal = math.sqrt(signal_var) if signal_var > 0 else 0.0
    tau = kendall(a.tolist(), b.tolist())
    p = float(np.concatenate([a, b]).mean())
    return {
        "what": what, "val_images": n, "tau": round(tau.tau, 3), "tau_low": round(tau.low, 3), "tau_high": round(tau.high, 3),
        "noise_pts": round(100 * noise, 3), "signal_pts": round(100 * signal, 3),
        "noise_over_signal": round(noise / signal, 2) if signal > 0 else math.inf,
        "binomial_se_pts": round(100 * math.sqrt(p * (1 - p) / n), 3), "mean_score": round(p, 4),
        "cpu_s_per_arch": round(cpu_s, 3),
    }


def measure(supernet: str, sizes: list[int], count: int, source: Path) -> list[dict]:
    plan = reproduce.load_plan("cpu")
    config = dataclasses.replace(plan.base, supernet=supernet)
    splits = load_dataset(config.protocol.dataset)
    net, _ = checkpoints.ensure_checkpoint(config, splits, progress=False)
    protocol = config.protocol.for_split(len(splits.val_x))
    archs = sample_archs(net, resolution.mac_limit(config), count)
    pool_x, pool_y = validation_pool(splits, source)
    middle = len(pool_x) // 2
    if max(sizes) > middle:
        raise SystemExit(f"--sizes: the pool holds {len(pool_x)} images, two disjoint sets of at most {middle}")
    rows = []
    for n in sizes:
        a, cpu_a = score_on(net, splits, protocol, archs, pool_x[:n], pool_y[:n])
        b, cpu_b = score_on(net, splits, protocol, archs, pool_x[middle : middle + n], pool_y[middle : middle + n])
        rows.append({"supernet": supernet, **agreement_row(n, a, b, (cpu_a + cpu_b) / 2, "disjoint validation sets")})
        print(json.dumps(rows[-1]), flush=True)
    largest = sizes[-1]  # b holds its scores
    other_seed = dataclasses.replace(protocol, seed=protocol.seed + 1)
    b_seed, cpu = score_on(net, splits, other_seed, archs, pool_x[middle : middle + largest], pool_y[middle : middle + largest])
    rows.append({"supernet": supernet, **agreement_row(largest, b, b_seed, cpu, "same images, other calibration seed")})
    print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("supernets", nargs="+")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    parser.add_argument("--archs", type=int, default=SAMPLE_ARCHS)
    parser.add_argument("--source", type=Path, default=FASHION_MNIST_DIR, help="folder with Fashion-MNIST's *-ubyte.gz files")
    parser.add_argument("--out", type=Path, required=True, help="JSON file of the rows (refused if it exists)")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists; name another file")
    torch.set_num_threads(1)
    rows = [row for name in args.supernets for row in measure(name, sorted(args.sizes), args.archs, args.source)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"load_average": os.getloadavg(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
