"""`pcfes` on bad input and faults: exit status 2 and one line naming the problem, never a traceback."""

from __future__ import annotations

import argparse
import errno
import json
import tempfile
from pathlib import Path

import pytest
import torch

from conftest import SMALL_EVOLUTION, SMALL_NET, SMALL_OVERRIDES, SMALL_PROTOCOL, fill_disk
from fixtures_runs import write_fixture_runs
from harness import cli, schema, store, workflow


def small_toml(checkpoint: Path) -> str:
    """The small test supernet, protocol and evolution settings as a run config file."""
    lines = [f"supernet = {json.dumps(SMALL_NET)}", f"checkpoint = {json.dumps(str(checkpoint))}"]
    sections = {
        "supernet_overrides": SMALL_OVERRIDES,
        "protocol": {k: getattr(SMALL_PROTOCOL, k) for k in ("calib_batches", "calib_batch_size", "val_size", "eval_batch_size")},
        "searcher_params": SMALL_EVOLUTION,
    }
    for name, values in sections.items():
        lines += [f"[{name}]", *(f"{k} = {json.dumps(v)}" for k, v in values.items())]
    return "\n".join(lines) + "\n"


def nan_checkpoint(source: Path, target: Path) -> Path:
    from supernets.checkpoint import load_checkpoint, save_checkpoint

    net, info = load_checkpoint(source)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(float("nan"))
    save_checkpoint(target, net, config=info.train_config, metadata=info.metadata, epochs=info.epochs)
    return target


@pytest.fixture
def bad_inputs(tmp_path, small_checkpoint):
    """The audit's inputs (issue 16) that used to end in a traceback or a late error, as pcfes argv lists."""
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "taken").write_text("a file where a run folder would go")
    (tmp_path / "sweep.toml").write_text('[matrix]\nsearchers = ["evolution"]\n[resources]\nthreads = "two"\n')
    (tmp_path / "small.toml").write_text(small_toml(small_checkpoint))
    nan = nan_checkpoint(small_checkpoint, tmp_path / "nan.pt")
    small = ["--config", str(tmp_path / "small.toml"), "--results-dir", str(tmp_path / "results")]
    return {
        "val_size=abc": ["search", "--set", "protocol.val_size=abc"],
        "val_size=300.5": ["search", "--set", "protocol.val_size=300.5"],
        "protocol.seed=-1": ["search", "--set", "protocol.seed=-1"],
        "budget_bytes=lots": ["search", "--set", "reuse.budget_bytes=lots"],
        "device gpu": ["search", "--device", "gpu"],
        "config is a folder": ["search", "--config", str(tmp_path)],
        "run folder is a file": ["search", "--results-dir", str(tmp_path / "results"), "--run-id", "taken"],
        "run id .": ["search", "--run-id", "."],
        "run id ..": ["search", "--run-id", ".."],
        "run id with /": ["search", "--run-id", "a/b"],
        "run id empty": ["search", "--run-id", ""],
        "resume with flags": ["search", "--resume", str(tmp_path / "results"), "--seed", "5", "--searcher", "random"],
        "compare --out afile": ["compare", "--out", str(tmp_path / "afile")],
        "compare --seeds 0": ["compare", "--seeds", "0"],
        "searchers twice": ["compare", "--searchers", "evolution,evolution"],
        "searchers empty": ["compare", "--searchers", ","],
        "threads two": ["sweep", str(tmp_path / "sweep.toml")],
        "NaN checkpoint": ["search", *small, "--checkpoint", str(nan), "--searcher", "evolution"],
    }


EXPECTED = {
    "val_size=abc": "protocol.val_size must be an integer, got 'abc'",
    "val_size=300.5": "protocol.val_size must be an integer, got 300.5",
    "protocol.seed=-1": "protocol.seed must be >= 0, got -1",
    "budget_bytes=lots": "reuse.budget_bytes must be an integer or 'auto', got 'lots'",
    "device gpu": "protocol.device must be 'cpu' or 'cuda[:index]', got 'gpu'",
    "config is a folder": "is a folder; name a TOML file",
    "run folder is a file": "taken is a file",
    "run id .": "run id '.' is not a plain folder name",
    "run id ..": "run id '..' is not a plain folder name",
    "run id with /": "run id 'a/b' is not a plain folder name",
    "run id empty": "run id '' is not a plain folder name",
    "resume with flags": "drop --searcher, --seed (or start a new run without --resume)",
    "compare --out afile": "afile is a file",
    "compare --seeds 0": "--seeds must be >= 1",
    "searchers twice": "evolution listed twice",
    "searchers empty": "--searchers ',' has an empty name",
    "threads two": "resources.threads must be an integer, got 'two'",
    "NaN checkpoint": "produced non-finite logits",
}


def one_error_line(err: str, command: str) -> str:
    """The one line pcfes printed for the error: nothing else on stderr."""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pcfes {command}: error: "), err
    return lines[0]


def tree(folder: Path) -> dict[str, int]:
    """Every file and folder below ``folder`` with its size (0 for a folder)."""
    return {str(p.relative_to(folder)): p.stat().st_size if p.is_file() else 0 for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("case", list(EXPECTED))
def test_bad_input_exits_2_with_one_line_and_leaves_nothing_behind(case, bad_inputs, tmp_path, monkeypatch, capsys):
    argv = [*bad_inputs[case], "--quiet"]
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    assert cli.main(argv) == 2  # an exception other than the user's would fail the test with its traceback
    captured = capsys.readouterr()
    assert EXPECTED[case] in one_error_line(captured.err, argv[0])
    assert captured.out == ""
    assert tree(tmp_path) == before  # nothing trained, no run folder, no half-written file


def _read_only(monkeypatch, target: Path) -> None:
    """Simulate a read-only file system at ``target`` (chmod cannot: tests may run as root, which ignores it)."""
    real_mkdir, real_mkstemp = Path.mkdir, tempfile.mkstemp

    def mkdir(self, *args, **kwargs):
        if self == target or target in self.parents:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == target:
            raise OSError(errno.EROFS, "Read-only file system", str(Path(dir) / "tmp"))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_report_and_sweep_on_a_read_only_file_system_exit_2_naming_the_path(tmp_path, monkeypatch, capsys):
    write_fixture_runs(tmp_path / "runs")
    (tmp_path / "sweep.toml").write_text('[matrix]\nsearchers = ["evolution"]\n')
    target = tmp_path / "ro"
    _read_only(monkeypatch, target)
    assert cli.main(["report", str(tmp_path / "runs"), "-o", str(target / "rep")]) == 2
    assert capsys.readouterr().err == (
        f"pcfes report: error: cannot write the report to {target / 'rep'}: Read-only file system; pass -o a folder you can write\n"
    )
    assert not (target / "rep").exists()
    assert cli.main(["sweep", str(tmp_path / "sweep.toml"), "--out", str(target / "sw"), "--quiet"]) == 2
    assert capsys.readouterr().err == f"pcfes sweep: error: Read-only file system: {target / 'sw'}\n"


def test_train_on_a_read_only_checkpoint_path_fails_before_training(tmp_path, monkeypatch, capsys):
    import supernets.train

    target = tmp_path / "ro"
    target.mkdir()
    _read_only(monkeypatch, target)
    monkeypatch.setattr(supernets.train, "init_weights", lambda *a: pytest.fail("trained before checking the path"))
    assert cli.main(["train", "--epochs", "1", "--checkpoint", str(target / "ck.pt"), "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"pcfes train: error: cannot write checkpoint {target / 'ck.pt'}: Read-only file system\n"
    )


def test_a_full_disk_during_a_write_exits_2_naming_the_file_and_leaves_no_half_file(tmp_path, monkeypatch, capsys):
    write_fixture_runs(tmp_path / "runs")
    out = tmp_path / "rep"
    fill_disk(monkeypatch)
    assert cli.main(["report", str(tmp_path / "runs"), "-o", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"pcfes report: error: cannot write {out / 'summary.csv'}: No space left on device\n"
    )
    assert list(out.iterdir()) == []


def test_train_overwrite_refuses_to_delete_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    thesis = tmp_path / "thesis.txt"
    thesis.write_text("years of work")
    assert cli.main(["train", "--checkpoint", str(thesis), "--overwrite", "--quiet"]) == 2
    assert f"refusing to delete {thesis}" in capsys.readouterr().err
    assert thesis.read_text() == "years of work"


def test_a_second_writer_of_a_run_or_compare_folder_exits_2_naming_the_holder(
    small_checkpoint, tmp_path, lock_holder, capsys
):
    (tmp_path / "small.toml").write_text(small_toml(small_checkpoint))
    config = ["--config", str(tmp_path / "small.toml"), "--quiet"]
    holder = lock_holder(tmp_path / "results" / "same-id")
    assert cli.main(["search", *config, "--results-dir", str(tmp_path / "results"), "--run-id", "same-id"]) == 2
    assert f"same-id is being written by pid {holder.pid}" in capsys.readouterr().err
    holder = lock_holder(tmp_path / "out")
    assert cli.main(["compare", *config, "--searchers", "evolution", "--out", str(tmp_path / "out")]) == 2
    assert f"out is being written by pid {holder.pid}" in capsys.readouterr().err


def test_compare_continues_after_ctrl_c_keeping_complete_runs(small_checkpoint, tmp_path, monkeypatch, capsys):
    (tmp_path / "small.toml").write_text(small_toml(small_checkpoint))
    out = tmp_path / "out"
    argv = ["compare", "--config", str(tmp_path / "small.toml"), "--searchers", "evolution,pcf-es", "--out", str(out), "--quiet"]
    real = workflow.run_search

    def ctrl_c_in_pcf_es(run, *args, **kwargs):
        def press(generation):
            if generation == 2:
                raise KeyboardInterrupt

        return real(run, *args, **{**kwargs, "on_generation": press if run.config.searcher == "pcf-es" else None})

    with monkeypatch.context() as patch:
        patch.setattr(workflow, "run_search", ctrl_c_in_pcf_es)
        assert cli.main(argv) == 130
    runs = {store.read_json(p / schema.RUN_JSON)["searcher"]: p for p in out.iterdir() if p.is_dir()}
    assert workflow.complete_run(runs["evolution"]) is not None and (runs["pcf-es"] / schema.CHECKPOINT_JSON).exists()
    finished = (runs["evolution"] / schema.RUN_JSON).stat().st_mtime_ns
    capsys.readouterr()
    assert cli.main(argv) == 0
    assert "--resume" not in capsys.readouterr().err
    assert (runs["evolution"] / schema.RUN_JSON).stat().st_mtime_ns == finished  # kept, not redone
    assert store.load_run(runs["pcf-es"]).run.resumes == 1
    done = {p: (p / schema.RUN_JSON).stat().st_mtime_ns for p in runs.values()}
    assert cli.main(argv) == 0  # idempotent: nothing left to do
    assert {p: (p / schema.RUN_JSON).stat().st_mtime_ns for p in runs.values()} == done
    assert not (out / schema.LOCK_FILE).exists()


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in cli.make_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_option_of_every_subcommand_has_help():
    missing = {
        name: [a.option_strings or [a.dest] for a in parser._actions if not a.help]
        for name, parser in subcommand_parsers().items()
    }
    assert {name: options for name, options in missing.items() if options} == {}


def test_train_help_lists_only_what_training_uses(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--epochs", "--seed", "--supernet", "--dataset", "--checkpoint", "--overwrite", "--threads"):
        assert option in out
    for search_only in ("--searcher", "--reuse", "--no-cache", "--mac-limit", "--results-dir", "--country", "--resume"):
        assert search_only not in out
    assert "--epochs EPOCHS       training epochs (default: the supernet's registered" in out
