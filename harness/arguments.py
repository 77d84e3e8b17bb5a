"""The `pcfes` command line's arguments: every command's parser and options, the global options
(before or after a command's name), and the run config that the options build.

Light on purpose, like ``harness.cli``: the registries and the config only, so parsing and usage
errors answer before any heavy module loads.
"""

from __future__ import annotations

import argparse
import math
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import harness
import searchers
import supernets
from harness import config as cfg
from harness.bench import settings as bench_settings
from harness.listing import LIST_KINDS


def _add_run_options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    """Add the options that define a run (returned, so --resume can refuse them) and --quiet."""
    run_flags = _add_supernet_options(p)
    reuse = p.add_mutually_exclusive_group()
    run_flags += [
        p.add_argument("--country", dest="country_iso_code",
                       help="ISO-3 country code for CodeCarbon's grid intensity (default USA)"),
        p.add_argument("--no-carbon", action="store_true",
                       help="run without CodeCarbon: CO2 recorded as unavailable with the reason (config: carbon.enabled = false)"),
        reuse.add_argument("--reuse", choices=cfg.REUSE_LEVELS,
                           help="exact work reuse: none (every candidate from the input), frozen (the searcher's frozen "
                           "prefix only, the paper's mechanism), prefix (prefix tree + store; the default); scores are identical"),
        reuse.add_argument("--no-cache", dest="reuse", action="store_const", const="none", help="alias of --reuse none"),
        p.add_argument("--mac-limit", type=_mac_limit,
                       help="largest MACs per image of a searched arch: a number (e.g. 330e6), auto (the "
                       "supernet's registered limit, the default) or none"),
        p.add_argument("--results-dir", help="where run folders go (default results/)"),
        p.add_argument("--overwrite", action="store_true",
                       help="redo existing runs (only ever replaces a run folder of pcfes's own)"),
    ]
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return run_flags


def _add_supernet_options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    """Add the options that pick the config, the supernet, its data and its checkpoint (train's and every run's)."""
    return [
        p.add_argument("--config", help="TOML run config (sections [protocol], [reuse], [searcher_params], ...)"),
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set protocol.val_size=1000 (repeatable)"),
        p.add_argument("--supernet", help=f"registered supernet (default {supernets.DEFAULT_SUPERNET}; see pcfes list)"),
        p.add_argument("--dataset", help=f"dataset name (default {cfg.EvalProtocol().dataset}; see pcfes list)"),
        p.add_argument("--data-root", help="folder of a dataset that is not embedded (cifar10, imagefolder, ...)"),
        p.add_argument("--checkpoint",
                       help="supernet checkpoint (default: checkpoints/<supernet>-<dataset>.pt, trained on first use)"),
        p.add_argument("--device", help="cpu or cuda[:i]"),
    ]


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return value


def _mac_limit(text: str) -> int | str:
    """``--mac-limit``: auto, none, or a positive whole number of MACs (330e6 and 330_000_000 read alike)."""
    word = text.strip().lower()
    if word in ("auto", "none"):
        return word
    try:
        value = float(word.replace("_", ""))
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 1 and value == int(value)):
        raise argparse.ArgumentTypeError(f"{text!r} is not auto, none or a positive whole number of MACs")
    return int(value)


def build_config(args: argparse.Namespace, **extra: Any) -> cfg.RunConfig:
    """Defaults < TOML file < command-line flags < --set overrides."""
    return cfg.run_config_from_dict(config_data(args, **extra))


def config_data(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """What the user set (TOML file < flags < --set), as nested plain data without the defaults."""
    data: dict[str, Any] = cfg.load_toml(args.config) if getattr(args, "config", None) else {}
    flags: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    for key in ("supernet", "checkpoint", "data_root", "country_iso_code", "results_dir", "mac_limit"):
        value = getattr(args, key, None)
        if value is not None:
            flags[key] = value
    protocol: dict[str, Any] = {}
    if getattr(args, "dataset", None):
        protocol["dataset"] = args.dataset
    if getattr(args, "device", None):
        protocol["device"] = args.device
    if protocol:
        flags["protocol"] = protocol
    if getattr(args, "reuse", None):
        flags["reuse"] = {"level": args.reuse}
    if getattr(args, "no_carbon", False):
        flags["carbon"] = {"enabled": False}
    return cfg.merge(cfg.merge(data, flags), cfg.parse_overrides(getattr(args, "overrides", [])))


_GLOBAL_DESTS = ("verbose", "threads", "plugin")
_SUB_PREFIX = "subcommand_"  # a subcommand's copy of a global option, merged by merge_global_options


def _version() -> str:
    try:
        torch_version = metadata.version("torch")  # the installed version, without importing torch
    except metadata.PackageNotFoundError:
        torch_version = "not installed"
    return f"pcfes {harness.__version__} (python {platform.python_version()}, torch {torch_version})"


def _add_global_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """-v, --threads and --plugin; a subcommand's copies (``prefix``) default to None, so only a given one counts."""
    top = not prefix
    p.add_argument("-v", "--verbose", dest=prefix + "verbose", action="store_true", default=False if top else None,
                   help="debug logging")
    p.add_argument("--threads", dest=prefix + "threads", type=int, default=1 if top else None, metavar="N",
                   help="torch intra-op threads (default 1: on a shared 2-core machine a second OpenMP thread "
                   "made small kernels up to 100x slower; raise it on a quiet many-core machine); recorded in run.json")
    p.add_argument("--plugin", dest=prefix + "plugin", action="append", default=[] if top else None, metavar="MODULE",
                   help="import MODULE first (a dotted module importable from here, or a .py file) so that it registers "
                   "searchers, supernets or datasets (repeatable; installed pcfes.* entry points load by themselves)")


class _Subcommands:
    """``add_subparsers`` whose every subcommand also takes the global options (before or after its name)."""

    def __init__(self, action: Any) -> None:
        self.action = action

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        p = self.action.add_parser(name, **kwargs)
        _add_global_options(p, prefix=_SUB_PREFIX)
        return p


def merge_global_options(args: argparse.Namespace) -> argparse.Namespace:
    """One value per global option: a subcommand's --threads wins, --plugin lists add up, -v either place."""
    values = {dest: getattr(args, dest) for dest in _GLOBAL_DESTS}
    given = {dest: vars(args).pop(_SUB_PREFIX + dest, None) for dest in _GLOBAL_DESTS}
    args.verbose = values["verbose"] or bool(given["verbose"])
    args.threads = given["threads"] if given["threads"] is not None else values["threads"]
    args.plugin = [*values["plugin"], *(given["plugin"] or [])]
    return args


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pcfes",
        description="Benchmark one-shot NAS searchers (random, SPOS evolution, CF-ES, PCF-ES, PCF-ES-IS) "
        "with time, energy and CO2 meters.",
    )
    parser.add_argument("--version", action="version", version=_version())
    _add_global_options(parser)
    sub = _Subcommands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))

    p = sub.add_parser("train", help="train a supernet once (single-path uniform sampling)")
    _add_supernet_options(p)
    p.add_argument("--epochs", type=int, help="training epochs (default: the supernet's registered budget, else 30)")
    p.add_argument("--seed", type=int, help="seed of the weight init and the path and batch sampling (default 0)")
    p.add_argument("--overwrite", action="store_true", help="retrain even if the checkpoint exists")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("search", help="one instrumented search run")
    run_flags = _add_run_options(p)
    run_flags += [
        p.add_argument("--searcher", help=f"registered searcher (default {cfg.RunConfig().searcher}; see pcfes list)"),
        p.add_argument("--seed", type=int, help="seed of the searcher (default 0)"),
        p.add_argument("--run-id", help="results folder name (default derived from the config)"),
    ]
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue an interrupted run with the settings and checkpoint it started with (no other run options)")
    p.set_defaults(run_flags=tuple(run_flags))

    p = sub.add_parser("compare", help="several searchers x seeds on one supernet and protocol (the main job)")
    _add_run_options(p)
    p.add_argument("--searchers",
                   help=f"comma-separated searchers (default: {','.join(searchers.default_compare())} and any plugin "
                   "registered for the default comparison; add cf-es on request)")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (default 1)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--out", help="folder for the runs (default results/compare-<time>)")
    p.add_argument("--report", metavar="DIR", help="also write a report to DIR")

    p = sub.add_parser("reproduce", help="the paper's experiment matrix (or a sensitivity sweep) and its report")
    _add_run_options(p)
    p.set_defaults(supernet=None)
    p.add_argument("--scale", choices=("cpu", "gpu"), default="cpu",
                   help="cpu: full-depth CPU-scale spaces on fashion16; gpu: real-size spaces on --dataset/--data-root")
    p.add_argument("--seeds", type=int, help="number of seeds (default: the plan's, harness/plans/reproduce-*.toml)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--sweep", choices=("threshold", "monitor", "rate"), help="run a sensitivity sweep instead")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel local processes (default 1)")
    p.add_argument("--out", help="folder for the runs (default results/reproduce-<scale>[-sweep-<p>])")
    p.add_argument("--report", metavar="DIR", help="report folder (default reports/<same name>)")
    p.add_argument("--formats", default="png", metavar="LIST", help="figure formats: png (always), pdf, svg")
    p.add_argument("--retrain", action="store_true",
                   help="also train every run's answer and the first archs of each split-half sample (RETRAIN_ARCHS) stand-alone "
                   "(identical archs once, cached, resumable; --jobs processes)")
    p.add_argument("--recipe", help="with --retrain: TOML stand-alone training recipe (default: harness.retrain.RetrainRecipe)")
    p.add_argument("--standalone", help="stand-alone result cache (default <results_dir>/standalone)")

    p = sub.add_parser("retrain", help="train archs from scratch as stand-alone networks and record held-out test accuracy")
    p.add_argument("--arch", action="append", default=[], help="an arch of the space, e.g. 0-3-1-2 (repeatable)")
    p.add_argument("--runs", nargs="+", metavar="FOLDER", help="retrain the answer of every complete run under these folders")
    p.add_argument("--supernet", help="with --arch: registered supernet (default: the embedded CPU default)")
    p.add_argument("--dataset", help="with --arch: dataset name (default fashion16)")
    p.add_argument("--data-root", help="with --arch: folder of a dataset that is not embedded")
    p.add_argument("--mac-limit", type=_mac_limit, help="with --arch: refuse archs over it (default auto: the supernet's limit)")
    p.add_argument("--recipe", help="TOML training recipe (epochs, batch_size, lr, momentum, nesterov, weight_decay, label_smoothing, seed)")
    p.add_argument("--set", dest="recipe_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, e.g. --set epochs=5 (repeatable)")
    p.add_argument("--rank-archs", type=_non_negative, metavar="N",
                   help="with --runs: also the first N archs of each rank_check-*.json sample there, for the one-shot vs "
                   "stand-alone rank agreement (default: harness.rank_check.RETRAIN_ARCHS, 24; 0: answers only)")
    p.add_argument("--cache", default="results/standalone", help="result cache, one folder per arch + recipe (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=1, help="archs trained in parallel processes (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("sweep", help="a run matrix from a sweep TOML, run locally or as Ray tasks (complete runs are skipped)")
    p.add_argument("config", help="sweep TOML: [matrix] (+ [matrix.grid]), [base] run config, [resources]; see examples/sweep.toml")
    p.add_argument("--backend", choices=("local", "ray"), default="local", help="default: %(default)s")
    p.add_argument("--jobs", type=int, default=1, help="local backend: runs in parallel processes (default 1: one after another)")
    p.add_argument("--address", help="ray backend: cluster address (default: start a local Ray instance)")
    p.add_argument("--out", help="folder for the runs (default <results_dir>/sweep-<name or hash>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("report", help="tables and figures from recorded runs")
    p.add_argument("runs", nargs="+", help="run folders or folders of runs")
    p.add_argument("-o", "--output", required=True, help="report folder, e.g. reports/NAME")
    p.add_argument("--sweep", metavar="PARAMETER",
                   help=f"make a sensitivity-sweep report over a searcher parameter declared sweepable "
                        f"({', '.join(searchers.sweep_parameters())}, or a plugin's)")
    p.add_argument("--standalone", metavar="DIR",
                   help="stand-alone results of pcfes retrain (default: results/standalone where it exists)")
    p.add_argument("--rank-check", action="store_true",
                   help="first score a fixed sample of archs on both halves of the validation split with each group's "
                   "checkpoint (split-half reliability; written to the report folder, reused after)")
    p.add_argument("--formats", default="png", metavar="LIST",
                   help="figure formats, comma-separated: png (always, shown in report.md), pdf, svg (default: png)")
    p.add_argument("--quiet", action="store_true", help="no progress")

    p = sub.add_parser("check", help="run a searcher or supernet through its contract; one pass/FAIL line per check (exit 1 on a FAIL)")
    p.add_argument("kind", choices=("searcher", "supernet"), help="what to check")
    p.add_argument("name", help="its registered name (a plugin's too: add --plugin or install it)")
    p.add_argument("--seed", type=int, default=0, help="seed of the searcher and its landscape, or of the supernet's weights and inputs (default 0)")

    p = sub.add_parser("list", help="the registered searchers, supernets and datasets, with where each came from")
    p.add_argument("kinds", nargs="*", metavar="KIND",
                   help=f"only these: {', '.join(LIST_KINDS)} (default: all)")

    bench = bench_settings  # the gate's paths and defaults, without loading the gate (torch, pandas)
    p = sub.add_parser("bench", help="the CI performance regression gate (exact decisions and work counts + timing ratios)")
    p.add_argument("--baseline-dir", type=Path, metavar="DIR",
                   help=f"folder with baseline.json and replay.json (default: the repository's {bench.BASELINE_DIR})")
    p.add_argument("--baseline", type=Path, help="the baseline file (default: DIR/baseline.json)")
    p.add_argument("--replay", type=Path,
                   help="the recorded hints and archs the work layer replays (default: DIR/replay.json)")
    p.add_argument("--update-baseline", action="store_true",
                   help="rewrite the baseline from this run (commit it with the reason in the message)")
    p.add_argument("--update-replay", action="store_true",
                   help="re-record the replay from the landscape searches, then rewrite the baseline")
    p.add_argument("--margin", type=float, default=bench.DEFAULT_MARGIN,
                   help="allowed absolute rise of each timing ratio over the baseline's (default %(default)s)")
    p.add_argument("--repeats", type=int, default=bench.DEFAULT_REPEATS, help="alternating timing runs of each (default %(default)s)")
    p.add_argument("--no-timing", action="store_true", help="exact layers only")
    p.add_argument("--no-cache", action="store_true", help="replay every level without reuse: a slower evaluator the gate must catch")
    p.add_argument("--save-machine-baseline", action="store_true",
                   help="save a pytest-benchmark run for this machine (later runs compare with "
                   f"--benchmark-compare-fail={bench.MACHINE_FAIL.replace('%', '%%')})")
    p.add_argument("--cache-dir", type=Path, default=bench.CACHE_DIR, help="bench supernet + runs (default %(default)s)")
    p.add_argument("--output", type=Path,
                   help="also write the cost series (exact work counts, MAC and same-machine CPU-time ratios; each can "
                   "regress) as github-action-benchmark's customSmallerIsBetter JSON (name, unit, value)")
    p.add_argument("--output-decisions", type=Path, metavar="PATH",
                   help="also write the searchers' decisions (candidates, generations, final frozen depth) in that format")
    p.add_argument("--output-times", type=Path, metavar="PATH",
                   help="also write each replay's absolute CPU seconds on this runner in that format (noisy across runners)")
    p.add_argument("--record", type=Path, help="also write this run in the baseline's own format")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--cost", nargs="?", const="spos-tiny", metavar="SUPERNET",
                   help="instead of the gate: per searcher and reuse level, MAC ratio against CPU-time ratio, kernel "
                   "time, page faults, GMAC per CPU-second next to a conv roofline, one thread (default supernet: "
                   "%(const)s; a real-size space, e.g. spos, runs a reduced protocol on 224 px synthetic images; "
                   "--repeats alternating runs; --record writes the rows as JSON)")
    p.add_argument("--generations", type=int, default=10, help="--cost: generations per search (default %(default)s)")
    return parser
