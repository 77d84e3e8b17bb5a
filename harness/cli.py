"""`pcfes` command line: train, search, compare, report, reproduce, sweep, bench, list, check.

Start-up is instant: at module level this imports only the registries and the config (no torch,
pandas, matplotlib, codecarbon or ray), so --help, --version, `pcfes list` and every usage error
answer at once. A command imports the heavy modules it uses inside its function, after its cheap
checks (``_check_names``), and calls ``_start_torch`` before it computes.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import harness
import searchers
import supernets
from harness import config as cfg
from harness import plugins
from harness.bench import settings as bench_settings
from harness.datasets import available_datasets, dataset_entry, dataset_options

log = logging.getLogger("pcfes")


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


def _check_names(config: cfg.RunConfig, searcher_names: Sequence[str] = ()) -> None:
    """The registry names a run uses, checked before torch loads (``workflow.validate`` checks the rest)."""
    if config.supernet:
        supernets.supernet_entry(config.supernet)
    for name in searcher_names or (config.searcher,):
        searchers.searcher_entry(name)
    dataset_entry(config.protocol.dataset)


def _start_torch(args: argparse.Namespace) -> None:
    """Import torch for a command that computes, with --threads applied (after the command's cheap checks)."""
    import torch

    torch.set_num_threads(args.threads)


def cmd_train(args: argparse.Namespace) -> int:
    config = build_config(args)
    _check_names(config)
    _start_torch(args)
    from harness import checkpoints, workflow

    overrides = {k: v for k, v in {"epochs": args.epochs, "seed": args.seed, "device": args.device}.items() if v is not None}
    train_config = checkpoints.default_train_config(config, **overrides)
    workflow.validate(config)
    outcome = checkpoints.train_checkpoint(config, train_config, overwrite=args.overwrite, progress=not args.quiet)
    info = outcome.trained
    if info is None:
        print(f"{outcome.path} already exists (pass --overwrite to retrain)")
        return 0
    last = info.epochs[-1]
    print(
        f"trained {info.spec.name} on {outcome.dataset} in {info.train_time_s:.1f} s: {outcome.path} "
        f"(hash {info.content_hash[:16]})\n"
        f"  epoch {last.epoch}: loss {last.loss:.4f}, train accuracy {last.accuracy:.4f}"
    )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    if args.resume:
        given = [a.option_strings[0] for a in args.run_flags if getattr(args, a.dest) != a.default]
        if given:
            raise ValueError(
                f"--resume continues {args.resume} with the settings it started with; drop {', '.join(given)} "
                "(or start a new run without --resume)"
            )
        _start_torch(args)
        from harness import workflow

        record = workflow.resume_search(Path(args.resume), progress=not args.quiet)
    else:
        if args.run_id is not None:
            cfg.check_run_id(args.run_id)
        config = build_config(args, searcher=args.searcher, seed=args.seed, run_id=args.run_id)
        _check_names(config)
        _start_torch(args)
        from harness import store, workflow

        workflow.validate(config)
        run_dir = Path(config.results_dir) / workflow.run_id(workflow.resolve(config))
        with store.folder_lock(run_dir):
            store.prepare_run_dir(run_dir, overwrite=args.overwrite)  # before any data loading or training
            workspace = workflow.open_workspace(workflow.resolve(config), progress=not args.quiet)
            record = workflow.run_search(config, workspace, run_dir=run_dir, overwrite=args.overwrite, progress=not args.quiet)
    from harness.report.console import console_summary

    print(console_summary([record]).format())
    print(f"results: {record.path}")
    return 0


def _seeds(args: argparse.Namespace) -> list[int]:
    if args.seeds < 1 or args.seed < 0:
        raise ValueError(f"--seeds must be >= 1 and --seed >= 0, got --seeds {args.seeds} --seed {args.seed}")
    return list(range(args.seed, args.seed + args.seeds))


def cmd_compare(args: argparse.Namespace) -> int:
    given = args.searchers if args.searchers is not None else ",".join(searchers.default_compare())
    names = tuple(n.strip() for n in given.split(","))
    if not all(names):
        raise ValueError(f"--searchers {args.searchers!r} has an empty name; give comma-separated names, e.g. random,evolution")
    config = build_config(args)
    seeds = tuple(_seeds(args))
    _check_names(config, names)
    _start_torch(args)
    from harness import store, workflow
    from harness.matrix import Matrix, build

    configs = build(config, Matrix(searchers=names, seeds=seeds))
    for run in configs:  # before the output folder is made: a bad config leaves nothing behind
        workflow.validate(run)
    base = configs[0]
    out = Path(args.out) if args.out else workflow.session_dir(base.results_dir, "compare")
    with store.folder_lock(out):
        print(f"{len(configs)} runs -> {out} (complete runs are kept, interrupted ones resumed)")
        paths = workflow.run_matrix(configs, out, overwrite=args.overwrite, progress=not args.quiet)
    from harness.report.console import console_summary

    print(console_summary(store.load_records(paths)).format())
    print(f"\nruns: {out}")
    sources = store.load_records(paths[:1])[0].run["meter_sources"]
    print("measurement sources: " + "; ".join(f"{q}: {source}" for q, source in sources.items()))
    if args.report:
        from harness.report import write_report

        report = write_report([out], Path(args.report), progress=not args.quiet)
        print(f"report: {report}")
    else:
        print(f"make the report with: pcfes report {out} -o reports/{out.name}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import sweep_report, write_report

    formats = _figure_formats(args.formats)
    if args.sweep:
        path = sweep_report(args.runs, Path(args.output), args.sweep, formats=formats)
    else:
        path = write_report(
            args.runs, Path(args.output), formats=formats, standalone=_standalone_folder(args.standalone),
            rank_checks=args.rank_check, progress=not args.quiet,
        )
    print(f"report: {path}")
    return 0


def _standalone_folder(given: str | None) -> Path | None:
    """--standalone: the folder named, else the default retrain cache where it exists (None: no stand-alone results)."""
    if given is not None:
        if not Path(given).is_dir():
            raise FileNotFoundError(f"--standalone {given}: no such folder of stand-alone results (pcfes retrain writes them)")
        return Path(given)
    default = Path("results") / "standalone"
    return default if default.is_dir() else None


def cmd_reproduce(args: argparse.Namespace) -> int:
    seeds = _seeds(args) if args.seeds is not None else None
    formats = _figure_formats(args.formats)
    _start_torch(args)
    from harness import reproduce, sweep

    supernets = args.supernet.split(",") if args.supernet else None
    plan = reproduce.load_plan(args.scale, args.sweep, config_data(args), seeds=seeds, supernets=supernets)
    out = Path(args.out) if args.out else Path(plan.base.results_dir) / plan.name
    if args.scale == "gpu":
        print(reproduce.reuse_plans(plan))
    print(f"{len(sweep.expand(plan))} runs -> {out} (complete runs are kept, interrupted ones resumed)")
    recipe = None
    if args.retrain:
        from harness import retrain

        recipe = retrain.load_recipe(args.recipe)  # before any run: a bad recipe fails now
    done = reproduce.run_reproduction(
        plan, out, Path(args.report) if args.report else Path("reports") / plan.name, sweep=args.sweep, recipe=recipe,
        standalone=Path(args.standalone) if args.standalone else Path(plan.base.results_dir) / "standalone",
        jobs=args.jobs, formats=formats, progress=not args.quiet,
    )
    for outcome in done.failed:
        print(f"failed: {outcome.run_id}: {outcome.error}", file=sys.stderr)
    if done.rank_checks:
        print(f"rank checks: {', '.join(map(str, done.rank_checks))}")
    print(f"report: {done.report}")
    return 1 if done.failed else 0


def cmd_retrain(args: argparse.Namespace) -> int:
    _start_torch(args)
    from harness import retrain, store

    recipe = retrain.load_recipe(args.recipe, cfg.parse_overrides(args.recipe_overrides))
    if bool(args.arch) == bool(args.runs):
        raise ValueError("give the archs to retrain: --arch A (repeatable) or --runs FOLDER... (their answers), not both")
    if args.runs:
        from harness import rank_check

        jobs = retrain.answer_jobs(store.load_records(args.runs, skip_bad=True), recipe)
        count = rank_check.RETRAIN_ARCHS if args.rank_archs is None else args.rank_archs
        jobs += rank_check.sample_jobs(rank_check.read_checks([Path(p) for p in args.runs]), recipe, count)
    else:
        config = build_config(args)
        jobs = [retrain.RetrainJob(config, retrain.parse_arch(a), recipe) for a in args.arch]
    results = retrain.retrain_all(jobs, Path(args.cache), workers=args.jobs, progress=not args.quiet)
    _print_table(retrain.result_rows(results))
    print(f"stand-alone results: {args.cache} (recipe {recipe.hash()}); reports read them with --standalone {args.cache}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    _start_torch(args)
    from harness import sweep

    config = sweep.load_sweep(args.config)
    out, outcomes = sweep.run_sweep(
        config,
        Path(args.out) if args.out else None,
        backend=args.backend,
        jobs=args.jobs,
        address=args.address,
        progress=not args.quiet,
    )
    table = sweep.outcomes_table(outcomes)
    _print_table(table)
    counts = table.status.value_counts().to_dict()
    print(f"\nruns: {out} (" + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "skipped", "failed")) + ")")
    return 1 if counts.get("failed") else 0


def _bench_cost(args: argparse.Namespace) -> int:
    from harness import store
    from harness.bench import cost

    config = cost.space_config(args.cost, generations=args.generations, repeats=args.repeats)
    rows = cost.run_cost(config, args.cache_dir, progress=None if args.quiet else print)
    print(cost.format_cost(rows, config))
    if args.record:
        store.write_json(args.record, {"config": config.to_dict(), "rows": [r.to_dict() for r in rows]})
        print(f"wrote {args.record}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    _start_torch(args)
    from harness import bench

    if not args.verbose:  # many short runs: their per-freeze info lines would drown the verdict
        logging.getLogger("searchers").setLevel(logging.WARNING)
    if args.cost:
        return _bench_cost(args)
    folder = args.baseline_dir or bench.BASELINE_DIR
    outputs = {"costs": args.output, "decisions": args.output_decisions, "times": args.output_times}
    options = bench.GateOptions(
        baseline=args.baseline or folder / bench.BASELINE_NAME,
        replay=args.replay or folder / bench.REPLAY_NAME,
        cache_dir=args.cache_dir,
        disable_reuse=args.no_cache,
        update_baseline=args.update_baseline,
        update_replay=args.update_replay,
        timing_repeats=0 if args.no_timing else args.repeats,
        margin=args.margin,
        outputs={series: path for series, path in outputs.items() if path},
        record=args.record,
        save_machine_baseline=args.save_machine_baseline,
        progress=not args.quiet,
    )
    return 0 if bench.run_gate(options, print) else 1


def _figure_formats(text: str) -> tuple[str, ...]:
    from harness.report.style import FIGURE_FORMATS  # matplotlib: only commands that draw figures get here

    formats = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    unknown = [f for f in formats if f not in FIGURE_FORMATS]
    if unknown:
        raise ValueError(f"--formats: unknown figure format(s) {', '.join(unknown)}; choose from {', '.join(FIGURE_FORMATS)}")
    return formats or ("png",)


def _print_table(table: Any) -> None:
    print(table.to_string(index=False))


_GLOBAL_DESTS = ("verbose", "threads", "plugin")
_SUB_PREFIX = "subcommand_"  # a subcommand's copy of a global option, merged by _merge_global_options
_LIST_KINDS = ("searchers", "supernets", "datasets")


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


def _merge_global_options(args: argparse.Namespace) -> argparse.Namespace:
    """One value per global option: a subcommand's --threads wins, --plugin lists add up, -v either place."""
    values = {dest: getattr(args, dest) for dest in _GLOBAL_DESTS}
    given = {dest: vars(args).pop(_SUB_PREFIX + dest, None) for dest in _GLOBAL_DESTS}
    args.verbose = values["verbose"] or bool(given["verbose"])
    args.threads = given["threads"] if given["threads"] is not None else values["threads"]
    args.plugin = [*values["plugin"], *(given["plugin"] or [])]
    return args


def cmd_list(args: argparse.Namespace) -> int:
    unknown = [k for k in args.kinds if k not in _LIST_KINDS]
    if unknown:
        raise ValueError(f"cannot list {', '.join(unknown)}; choose from {', '.join(_LIST_KINDS)}")
    rows = {
        "searchers": [("searcher", n, _searcher_facts(n) + _settings(searchers.searcher_defaults(n))) for n in searchers.available()],
        "supernets": [("supernet", n, _supernet_facts(n) + _settings(supernets.default_config(n))) for n in supernets.available()],
        "datasets": [("dataset", n, _dataset_facts(n) + _settings(dataset_options(n))) for n in available_datasets()],
    }
    for section in args.kinds or _LIST_KINDS:
        table = [(name, plugins.origin(kind, name), settings) for kind, name, settings in rows[section]]
        width = [max(len(row[i]) for row in table) for i in (0, 1)]
        print(f"{section}:")
        for name, origin, settings in table:
            print(f"  {name:<{width[0]}}  {origin:<{width[1]}}  {settings}".rstrip())
    print(_LIST_LEGEND)
    return 0


_LIST_LEGEND = (
    "[default]: used when no --searcher, --supernet or --dataset is given; [compare]: in pcfes compare's default set; "
    "[baseline]: what savings are measured against"
)


def cmd_check(args: argparse.Namespace) -> int:
    (supernets.supernet_entry if args.kind == "supernet" else searchers.searcher_entry)(args.name)
    _start_torch(args)
    from harness.checks import check_registered_supernet, check_searcher

    if args.kind == "supernet":
        results = check_registered_supernet(args.name, seed=args.seed)  # an unknown name lists the registered ones
    else:
        searchers.searcher_defaults(args.name)
        if not args.verbose:  # two full searches: their per-freeze info lines would drown the verdict
            logging.getLogger("searchers").setLevel(logging.WARNING)
        results = check_searcher(lambda space, seed: searchers.get_searcher(args.name, space, seed), seed=args.seed)
    for result in results:
        print(result.format())
    failed = sum(not r.passed for r in results)
    print(f"{args.kind} {args.name}: " + (f"{failed} of {len(results)} checks failed" if failed else f"all {len(results)} checks pass"))
    return 1 if failed else 0


def _searcher_facts(name: str) -> str:
    """A searcher's roles from its registry entry, e.g. ``[baseline, compare] ``."""
    entry = searchers.searcher_entry(name)
    roles = (
        ("default", name == cfg.RunConfig().searcher),
        ("baseline", entry.baseline),
        ("freezing", entry.freezing),
        ("compare", entry.in_default_compare),
    )
    return _bracketed([role for role, held in roles if held])


def _supernet_facts(name: str) -> str:
    """A supernet's paper family, scale and search limit from its registry entry, e.g. ``[spos, cpu, <= 412,352 MACs] ``."""
    entry = supernets.supernet_entry(name)
    limit = f"<= {entry.mac_limit.macs:,} MACs" if entry.mac_limit else None
    default = "default" if name == supernets.DEFAULT_SUPERNET else None
    return _bracketed([fact for fact in (default, entry.family, entry.scale, limit) if fact])


def _dataset_facts(name: str) -> str:
    """``[default] `` for the dataset a run uses when none is given."""
    return _bracketed(["default"] if name == cfg.EvalProtocol().dataset else [])


def _bracketed(facts: list[str]) -> str:
    return f"[{', '.join(facts)}] " if facts else ""


def _settings(defaults: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in defaults.items())


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
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("search", help="one instrumented search run")
    run_flags = _add_run_options(p)
    run_flags += [
        p.add_argument("--searcher", help=f"registered searcher (default {cfg.RunConfig().searcher}; see pcfes list)"),
        p.add_argument("--seed", type=int, help="seed of the searcher (default 0)"),
        p.add_argument("--run-id", help="results folder name (default derived from the config)"),
    ]
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue an interrupted run with the settings and checkpoint it started with (no other run options)")
    p.set_defaults(func=cmd_search, run_flags=tuple(run_flags))

    p = sub.add_parser("compare", help="several searchers x seeds on one supernet and protocol (the main job)")
    _add_run_options(p)
    p.add_argument("--searchers",
                   help=f"comma-separated searchers (default: {','.join(searchers.default_compare())} and any plugin "
                   "registered for the default comparison; add cf-es on request)")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (default 1)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--out", help="folder for the runs (default results/compare-<time>)")
    p.add_argument("--report", metavar="DIR", help="also write a report to DIR")
    p.set_defaults(func=cmd_compare)

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
    p.set_defaults(func=cmd_reproduce)

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
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("sweep", help="a run matrix from a sweep TOML, run locally or as Ray tasks (complete runs are skipped)")
    p.add_argument("config", help="sweep TOML: [matrix] (+ [matrix.grid]), [base] run config, [resources]; see examples/sweep.toml")
    p.add_argument("--backend", choices=("local", "ray"), default="local", help="default: %(default)s")
    p.add_argument("--jobs", type=int, default=1, help="local backend: runs in parallel processes (default 1: one after another)")
    p.add_argument("--address", help="ray backend: cluster address (default: start a local Ray instance)")
    p.add_argument("--out", help="folder for the runs (default <results_dir>/sweep-<name or hash>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_sweep)

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
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("check", help="run a searcher or supernet through its contract; one pass/FAIL line per check (exit 1 on a FAIL)")
    p.add_argument("kind", choices=("searcher", "supernet"), help="what to check")
    p.add_argument("name", help="its registered name (a plugin's too: add --plugin or install it)")
    p.add_argument("--seed", type=int, default=0, help="seed of the searcher and its landscape, or of the supernet's weights and inputs (default 0)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("list", help="the registered searchers, supernets and datasets, with where each came from")
    p.add_argument("kinds", nargs="*", metavar="KIND",
                   help=f"only these: {', '.join(_LIST_KINDS)} (default: all)")
    p.set_defaults(func=cmd_list)

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
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = _merge_global_options(parser.parse_args(argv))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    try:
        plugins.load(args.plugin)  # before the command resolves any searcher, supernet or dataset name
        return args.func(args)
    except KeyboardInterrupt:
        print(f"pcfes {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        return _fail(args.command, _os_error_message(exc))
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise
        return _fail(args.command, str(exc))


# Errors of the user's input or of a plugin's code, reported in one line. Two are defined by modules
# that import torch; a command can only raise them once it has imported those modules.
_USER_ERRORS = (ValueError, ImportError)
_LOADED_USER_ERRORS = (("harness.evaluation.evaluator", "EvaluationError"), ("harness.runner", "SearcherContractError"))


def _user_errors() -> tuple[type[Exception], ...]:
    loaded = tuple(getattr(sys.modules[module], name) for module, name in _LOADED_USER_ERRORS if module in sys.modules)
    return _USER_ERRORS + loaded


def _os_error_message(exc: OSError) -> str:
    """An OSError as one line naming its path(s); ours already carry a sentence."""
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    reason = exc.strerror or str(exc)
    return f"{reason}: {' -> '.join(paths)}" if paths else reason


def _fail(command: str, message: str) -> int:
    print(f"pcfes {command}: error: {' '.join(message.splitlines())}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
