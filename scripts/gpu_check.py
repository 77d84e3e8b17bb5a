"""GPU smoke check (run via scripts/gpu_check.sh): NVML readings, equal scores at every reuse level, a tiny compare,
and the cost-of-reuse table of `pcfes bench --cost`, for spos-tiny and for spos at 224 px.

Offline and self-contained: it trains a tiny supernet on the embedded fashion16 data in a
temporary folder (the cost table uses seeded initial weights: cost per MAC does not depend on them). Exit 0 when every check passes, 1 when one fails, 2 without CUDA
(``--cpu`` runs the same checks on the CPU, NVML aside).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import supernets
from harness import cli, store
from harness.bench import cost
from harness.config import EvalProtocol, ReuseConfig
from harness.datasets import load_dataset
from harness.evaluation import Evaluator
from harness.meters import default_meters
from searchers import Hints, SearchSpace
from supernets.checkpoint import load_checkpoint
from supernets.train import TrainConfig, train_supernet

NET = "conv-tiny"
OVERRIDES = {"widths": [8, 16, 32], "last_width": 64, "stem_width": 8}
TRAIN_IMAGES = 4000
PROTOCOL = dict(calib_batches=4, calib_batch_size=128, val_size=1000, eval_batch_size=500)
CANDIDATES = 8
COST_GENERATIONS = {"cuda": 3, "cpu": 1}  # keeps the whole check within minutes
REAL_SPACE = "spos"  # the real-size cost table (pcfes bench --cost spos: 224 px, a reduced protocol)
CPU_REAL_PROTOCOL = dict(calib_batches=1, calib_batch_size=8, val_size=8, eval_batch_size=8)
CPU_REAL_SEARCH = dict(searchers=("evolution",), generations=1,
                       searcher_params={"population": 4, "top_k": 2, "mutation_num": 2, "crossover_num": 2})


def section(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def environment(device: str) -> list[str]:
    """Print what the checks run on."""
    print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA build {torch.version.cuda})")
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        print(f"device: {props.name}, {props.total_memory / 2**30:.0f} GiB, capability {props.major}.{props.minor}, "
              f"bf16 {torch.cuda.is_bf16_supported()}")
    else:
        print("device: cpu (--cpu)")
    return []


def _gpu_load(seconds: float) -> int:
    """Matrix products for about ``seconds``; returns how many ran."""
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(20):
            a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()
        done += 20
    return done


def nvml(device: str) -> list[str]:
    """Raw NVML counter and power readings around a GPU load, beside the harness meters' window."""
    if device != "cuda":
        print("skipped: NVML needs a CUDA device")
        return []
    import pynvml

    pynvml.nvmlInit()
    try:
        uuid = str(torch.cuda.get_device_properties(0).uuid)
        handle = pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}")
        meters = default_meters("cuda", "USA", codecarbon=False)
        print("meter sources: " + ", ".join(f"{q}={s}" for q, s in meters.sources().items()))
        idle_w = pynvml.nvmlDeviceGetPowerUsage(handle) / 1e3
        with meters.window("load"):
            t0, before_mj = time.perf_counter(), pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            products = _gpu_load(3.0)
            busy_w = pynvml.nvmlDeviceGetPowerUsage(handle) / 1e3
            after_mj, seconds = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle), time.perf_counter() - t0
        delta_mj = after_mj - before_mj
        print(f"NVML total-energy counter: before {before_mj} mJ, after {after_mj} mJ, delta {delta_mj} mJ "
              f"over {seconds:.2f} s = {delta_mj / 1e3 / seconds:.0f} W mean")
        print(f"NVML power: {idle_w:.0f} W before the load, {busy_w:.0f} W under it ({products} bf16 4096^3 products)")
        for m in meters.last.values():
            print(f"  meter {m.quantity}: {m.value} {m.unit} [{m.source}]")
        meters.close()
        gpu_j, gpu_s = meters.last["gpu_energy_j"], meters.last["gpu_s"]
        problems = []
        if delta_mj <= 0:
            problems.append(f"NVML energy counter did not advance under load ({delta_mj} mJ)")
        if not gpu_j.available or not gpu_j.value:
            problems.append(f"harness NVML meter measured nothing: {gpu_j.source}")
        elif not 0.9 * delta_mj / 1e3 <= gpu_j.value:
            problems.append(f"harness NVML meter {gpu_j.value:.1f} J < the raw counter delta {delta_mj / 1e3:.1f} J it encloses")
        if gpu_s.source != "cuda_events" or not gpu_s.value:
            problems.append(f"CUDA-event GPU time missing: {gpu_s.source}")
        return problems
    finally:
        pynvml.nvmlShutdown()


def train(device: str, workdir: Path) -> Path:
    """A tiny supernet, 2 epochs on the embedded fashion16 data."""
    splits = load_dataset("fashion16")
    net = supernets.get_supernet(NET, **OVERRIDES)
    path = workdir / "tiny.pt"
    t0 = time.perf_counter()
    train_supernet(net, splits.train_x[:TRAIN_IMAGES], splits.train_y[:TRAIN_IMAGES],
                   TrainConfig(epochs=2, batch_size=128, device=device), checkpoint_path=path,
                   metadata={"dataset": "fashion16", "input_shape": list(splits.input_shape)}, progress=False)
    print(f"trained {NET} {OVERRIDES} on {TRAIN_IMAGES} images, 2 epochs, {device}: {time.perf_counter() - t0:.1f} s")
    return path


def _dtypes(device: str) -> list[str]:
    bf16 = device == "cpu" or torch.cuda.is_bf16_supported()
    return ["float32", "float16"] + (["bfloat16"] if bf16 else [])


def exactness(device: str, checkpoint: Path) -> list[str]:
    """Scores at reuse levels frozen and prefix equal level none's, bit for bit, per dtype; the frozen node grows."""
    splits = load_dataset("fashion16")
    problems = []
    for dtype in _dtypes(device):
        protocol = EvalProtocol(**PROTOCOL, dtype=dtype, device=device)
        evaluators = {
            level: Evaluator(load_checkpoint(checkpoint)[0], splits, protocol, ReuseConfig(level=level))
            for level in ("prefix", "frozen", "none")
        }
        frozen_ev = evaluators["frozen"]
        space = SearchSpace(frozen_ev.net.choices)
        rng = np.random.default_rng(0)
        k = frozen_ev.net.num_blocks // 2
        prefix = space.sample(rng)[:k]
        for depth in (k, k + 1):  # the second prepare extends the frozen node from its stored tensors
            frozen = prefix[:k] if depth == k else prefix + (0,)
            archs = [space.sample(rng, frozen) for _ in range(CANDIDATES)]
            scores, seconds = {}, {}
            for level, ev in evaluators.items():
                ev.prepare(Hints(frozen=frozen))
                _sync(device)
                t0 = time.perf_counter()
                scores[level] = ev.score(archs)
                _sync(device)
                seconds[level] = time.perf_counter() - t0
            same = scores["prefix"] == scores["frozen"] == scores["none"]
            print(f"{dtype:9s} frozen depth {depth}: {CANDIDATES} candidates, prefix == frozen == none: {same} "
                  f"(frozen node {frozen_ev.cache_bytes / 2**20:.1f} MiB on {frozen_ev.val_x.device}, depth "
                  f"{frozen_ev.cache_depth}; {', '.join(f'{lv} {t * 1e3:.0f} ms' for lv, t in seconds.items())}; "
                  f"scores {[round(s, 4) for s in scores['none']]})")
            if not same:
                problems.append(f"{dtype} depth {depth}: scores differ across reuse levels {scores}")
            if frozen_ev.cache_depth != depth or frozen_ev.cache_bytes == 0:
                problems.append(
                    f"{dtype} depth {depth}: frozen node not built (depth {frozen_ev.cache_depth}, {frozen_ev.cache_bytes} bytes)"
                )
            if frozen_ev.val_x.device.type != device:
                problems.append(f"{dtype}: validation tensors on {frozen_ev.val_x.device}, not {device}")
    return problems


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def compare(device: str, checkpoint: Path, workdir: Path) -> list[str]:
    """`pcfes compare` of evolution vs pcf-es on the tiny supernet, with the real meters."""
    out = workdir / "compare"
    sets = [f"supernet_overrides.{k}={v}" for k, v in OVERRIDES.items()]
    sets += [f"protocol.{k}={v}" for k, v in PROTOCOL.items()]
    sets += [f"searcher_params.{k}={v}" for k, v in
             dict(population=20, top_k=5, mutation_num=10, crossover_num=10, generations=6, threshold=0.5).items()]
    argv = ["compare", "--supernet", NET, "--checkpoint", str(checkpoint), "--device", device,
            "--searchers", "evolution,pcf-es", "--out", str(out), "--quiet"]
    for item in sets:
        argv += ["--set", item]
    code = cli.main(argv)
    if code != 0:
        return [f"pcfes compare exited {code}"]
    runs = store.load_runs([out])
    first = store.load_run(runs.path.iloc[0]).run
    print(f"recorded protocol: dtype {first['protocol']['dtype']}, channels_last {first['protocol']['channels_last']}, "
          f"device {first['device']}")
    problems = []
    if device == "cuda":
        for column, expected in (("source.gpu_s", "cuda_events"), ("source.gpu_energy_j", "nvml")):
            bad = runs[~runs[column].astype(str).str.startswith(expected)]
            if len(bad):
                problems.append(f"{column} is {bad[column].iloc[0]!r}, expected {expected}*")
    return problems


def reuse_cost(device: str, workdir: Path) -> list[str]:
    """The `pcfes bench --cost` table on ``device``: do time savings follow the MACs reuse saves?"""
    config = cost.CostConfig(protocol=EvalProtocol(device=device), generations=COST_GENERATIONS[device], repeats=1)
    rows = cost.run_cost(config, workdir / "cost")
    print(cost.format_cost(rows, config))
    return [f"{r.searcher}[{r.level}] executed {r.mac_ratio:.3f}x the MACs of level none" for r in rows if r.mac_ratio > 1]


def real_size_cost(device: str, workdir: Path) -> list[str]:
    """The same table for a real-size space at the bench's reduced protocol: how the ratios grow with tensor size."""
    protocol = dataclasses.replace(cost.REAL_SIZE_PROTOCOL, device=device)
    if device == "cuda":
        config = cost.space_config(REAL_SPACE, protocol=protocol, generations=COST_GENERATIONS[device], repeats=1)
    else:  # a smoke run: 224 px convolutions on a CPU are too slow for more
        config = cost.space_config(
            REAL_SPACE, protocol=dataclasses.replace(protocol, **CPU_REAL_PROTOCOL), repeats=1, **CPU_REAL_SEARCH
        )
    rows = cost.run_cost(config, workdir / "cost-real")
    print(cost.format_cost(rows, config))
    return [f"{r.searcher}[{r.level}] executed {r.mac_ratio:.3f}x the MACs of level none" for r in rows if r.mac_ratio > 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="run the checks on the CPU (no NVML)")
    parser.add_argument("--workdir", type=Path, help="keep the checkpoint and runs here (default: a temp folder)")
    args = parser.parse_args(argv)
    if not args.cpu and not torch.cuda.is_available():
        print(f"gpu_check: torch {torch.__version__} sees no CUDA device (CUDA build {torch.version.cuda}); "
              "run on a GPU machine, or pass --cpu to run the same checks on the CPU", file=sys.stderr)
        return 2
    device = "cpu" if args.cpu else "cuda"
    if args.cpu:
        torch.set_num_threads(1)  # as the CLI's default
    start = time.perf_counter()
    failures: list[str] = []

    def check(title: str, body: Callable[[], list[str]]) -> None:
        section(title)
        try:
            problems = body()
        except Exception as exc:  # noqa: BLE001 - report every check, then fail
            problems = [f"{type(exc).__name__}: {exc}"]
        failures.extend(f"{title}: {p}" for p in problems)

    with tempfile.TemporaryDirectory(prefix="pcfes-gpu-check-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        check("environment", lambda: environment(device))
        check("NVML energy counter", lambda: nvml(device))
        section("train a tiny supernet")
        checkpoint = train(device, workdir)  # nothing below can run without it: a failure ends the script
        check("scores at every reuse level", lambda: exactness(device, checkpoint))
        check("pcfes compare with the real meters", lambda: compare(device, checkpoint, workdir))
        check("cost of reuse (pcfes bench --cost)", lambda: reuse_cost(device, workdir))
        check(f"cost of reuse on {REAL_SPACE} at 224 px (pcfes bench --cost {REAL_SPACE})", lambda: real_size_cost(device, workdir))
    section("result")
    print(f"checks on {device} took {time.perf_counter() - start:.0f} s")
    for failure in failures:
        print(f"FAILED {failure}")
    print("all checks passed" if not failures else f"{len(failures)} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
