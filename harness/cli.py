"""`pcfes` command line: train, search, compare, report, reproduce, sweep, bench, list, check.

It parses (``harness.arguments``), dispatches to the module of each command's concept and
prints. Start-up is instant: at module level this imports only the registries and the config (no
torch, pandas, matplotlib, codecarbon or ray), so --help, --version, `pcfes list` and every usage
error answer at once. A command imports the heavy modules it uses inside its function, after its
cheap checks (``_check_names``), and calls ``_start_torch`` before it computes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import searchers
import supernets
from harness import config as cfg
from harness import listing, plugins
from harness.arguments import build_config, config_data, make_parser, merge_global_options
from harness.datasets import dataset_entry


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
    from harness import workflow

    overrides = {k: v for k, v in {"epochs": args.epochs, "seed": args.seed, "device": args.device}.items() if v is not None}
    outcome = workflow.train(config, overwrite=args.overwrite, progress=not args.quiet, **overrides)
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
        from harness import workflow
        from harness.resolution import resolve

        record = workflow.search(resolve(config), overwrite=args.overwrite, progress=not args.quiet)
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

    out, paths = workflow.compare(
        config, names, seeds, Path(args.out) if args.out else None, overwrite=args.overwrite, progress=not args.quiet,
        announce=print,
    )
    from harness.report.console import console_summary

    print(console_summary(store.load_records(paths)).format())
    print(f"\nruns: {out}")
    sources = store.load_records(paths[:1])[0].run.environment.meter_sources
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

        jobs = rank_check.retrain_jobs(store.load_records(args.runs, skip_bad=True), [Path(p) for p in args.runs], recipe, args.rank_archs)
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
    from harness.bench import cost

    config = cost.space_config(args.cost, generations=args.generations, repeats=args.repeats)
    rows = cost.run_cost(config, args.cache_dir, progress=None if args.quiet else print)
    print(cost.format_cost(rows, config))
    if args.record:
        cost.write_record(args.record, config, rows)
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


def cmd_list(args: argparse.Namespace) -> int:
    print(listing.registered(args.kinds))
    return 0


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


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    """The function of the command ``name``, looked up when it runs (a replaced ``cmd_*`` is what runs)."""
    commands = {
        "train": cmd_train, "search": cmd_search, "compare": cmd_compare, "reproduce": cmd_reproduce, "retrain": cmd_retrain,
        "sweep": cmd_sweep, "report": cmd_report, "check": cmd_check, "list": cmd_list, "bench": cmd_bench,
    }
    return commands[name]


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = merge_global_options(parser.parse_args(argv))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    try:
        plugins.load(args.plugin)  # before the command resolves any searcher, supernet or dataset name
        return _command(args.command)(args)
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
