"""Plugins the `pcfes` command loads: --plugin modules and files, entry points, sweep workers, list, global options."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cli, plugins, schema
from conftest import REPO, SMALL_NET, SMALL_OVERRIDES, SMALL_PROTOCOL

PLUGIN_SOURCE = '''
from searchers import RandomSearcher, register_searcher


@register_searcher("plugin-random")
class PluginRandom(RandomSearcher):
    """Random search under a name that only this plugin registers."""
'''
BUDGET = {"budget": 20, "batch_size": 10}
PROTOCOL_KEYS = ("calib_batches", "calib_batch_size", "val_size", "eval_batch_size")


def pcfes(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run `pcfes` in a fresh process: for sweep workers, which are processes of their own."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "harness.cli", *argv], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=600)


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Plugins load in this process and are gone after the test: the registries, the plugin list,
    sys.path and the modules imported from ``tmp_path`` come back as they were; the working
    directory is ``tmp_path`` and no entry point has been loaded yet."""
    import searchers.registry
    import supernets.registry
    from harness.datasets import registry as dataset_registry

    for registry in (searchers.registry, supernets.registry, dataset_registry):
        monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(plugins, "_plugins", [])
    monkeypatch.setattr(plugins, "_entry_points_loaded", False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for name, module in list(sys.modules.items()):
        if tmp_path in Path(getattr(module, "__file__", None) or "/").parents:
            del sys.modules[name]


def toml_lines(section: str, values: dict) -> list[str]:
    return [f"[{section}]", *(f"{key} = {json.dumps(value)}" for key, value in values.items())]


def base_values(checkpoint: Path) -> list[str]:
    return [f"supernet = {json.dumps(SMALL_NET)}", f"checkpoint = {json.dumps(str(checkpoint))}"]


def base_sections(prefix: str = "") -> list[str]:
    protocol = {k: getattr(SMALL_PROTOCOL, k) for k in PROTOCOL_KEYS}
    return [*toml_lines(prefix + "supernet_overrides", SMALL_OVERRIDES), *toml_lines(prefix + "protocol", protocol),
            *toml_lines(prefix + "searcher_params", BUDGET)]


@pytest.fixture
def plugin_file(tmp_path) -> Path:
    path = tmp_path / "my_searchers.py"
    path.write_text(PLUGIN_SOURCE)
    return path


def read_run(run_dir: Path) -> dict:
    return json.loads((run_dir / schema.RUN_JSON).read_text())


def assert_recorded_plugin(run: dict, plugin_file: Path) -> None:
    assert run["status"] == "complete" and run["searcher"] == "plugin-random"
    assert run["versions"]["plugins"] == [{
        "module": "my_searchers",
        "distribution": None,
        "version": None,
        "source_sha256": hashlib.sha256(b"my_searchers.py\0" + plugin_file.read_bytes() + b"\0").hexdigest(),
        "provides": ["searcher:plugin-random"],
    }]


def sweep_toml(tmp_path: Path, checkpoint: Path) -> Path:
    path = tmp_path / "sweep.toml"
    lines = [*toml_lines("matrix", {"searchers": ["plugin-random"], "seeds": [0, 1]}),
             "[base]", *base_values(checkpoint), *base_sections("base.")]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- --plugin in a search, and what run.json records ------------------------------------


def test_a_plugin_file_registers_a_searcher_that_pcfes_search_runs_and_run_json_records(
    small_checkpoint, plugin_file, sandbox, capsys
):
    config = sandbox / "run.toml"
    config.write_text("\n".join([*base_values(small_checkpoint), *base_sections()]) + "\n")
    assert cli.main(["search", "--plugin", plugin_file.name, "--searcher", "plugin-random", "--config", str(config),
                     "--run-id", "r", "--results-dir", str(sandbox / "results"), "--quiet"]) == 0, capsys.readouterr().err
    run = read_run(sandbox / "results" / "r")
    assert_recorded_plugin(run, plugin_file)
    assert run["searcher_params"] == BUDGET


def test_a_dotted_plugin_module_is_imported_from_the_working_directory(plugin_file, sandbox, capsys):
    sys.path[:] = [p for p in sys.path if p not in ("", str(sandbox))]  # as under the `pcfes` script
    assert cli.main(["list", "searchers", "--plugin", "my_searchers"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if "plugin-random" in line)
    assert line.split()[:2] == ["plugin-random", str(plugin_file)]


# --- entry points ----------------------------------------------------------------------


def fake_distribution(site: Path, entry_points: str, module_source: str = PLUGIN_SOURCE) -> None:
    """An installed package as importlib.metadata sees it: a .dist-info folder and its module on the path."""
    info = site / "myplugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    (site / "myplugin_searchers.py").write_text(module_source)


def test_an_entry_point_of_an_installed_package_is_listed_with_its_distribution(sandbox, capsys):
    fake_distribution(sandbox / "site", '[pcfes.searchers]\nmy = myplugin_searchers\n')
    sys.path.insert(0, str(sandbox / "site"))
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "searchers:" and "supernets:" in lines and "datasets:" in lines
    assert [line.split()[:2] for line in lines if "plugin-random" in line] == [["plugin-random", "myplugin==0.1"]]
    assert next(line for line in lines if line.split()[:1] == ["evolution"]).split()[1:3] == ["built", "in"]
    assert [line.split()[-2:] for line in lines if "plugin-random" in line] == [["budget=1000", "batch_size=50"]]


@pytest.mark.parametrize("value", ["myplugin_searchers:PluginRandom", '"myplugin_searchers"'])
def test_an_entry_point_that_names_no_module_exits_2_saying_it_must_name_one(value, sandbox, capsys):
    fake_distribution(sandbox / "site", f"[pcfes.searchers]\nmy = {value}\n")
    sys.path.insert(0, str(sandbox / "site"))
    assert cli.main(["list"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == (
        f"pcfes list: error: plugin entry point pcfes.searchers:my = {value!r} of myplugin==0.1 does not name a "
        "module; pcfes entry points name a module whose import registers, e.g. 'my_pkg.searchers'\n"
    )


# --- broken plugins: one line, exit 2 ------------------------------------------------------


@pytest.fixture
def no_plugins_yet(monkeypatch):
    """This process's plugin state, fresh, with the environment's entry points counted as loaded."""
    monkeypatch.setattr(plugins, "_plugins", [])
    monkeypatch.setattr(plugins, "_entry_points_loaded", True)


@pytest.mark.parametrize("source, error", [
    ("raise RuntimeError('boom\\nsecond line')", "RuntimeError: boom second line"),
    ("def broken(:\n", "SyntaxError: invalid syntax"),
    ("import no_such_module_for_pcfes", "ModuleNotFoundError: No module named 'no_such_module_for_pcfes'"),
])
def test_a_plugin_that_fails_to_import_exits_2_with_one_line_naming_it(source, error, tmp_path, no_plugins_yet, capsys):
    path = tmp_path / "broken_plugin.py"
    path.write_text(source)
    assert cli.main(["list", "--plugin", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"pcfes list: error: plugin --plugin {path} failed to load: {error}")
    assert captured.err.count("\n") == 1 and "broken_plugin" not in sys.modules
    assert plugins.loaded() == ()


@pytest.mark.parametrize("spec, error", [
    ("no_such_plugin_module", "ModuleNotFoundError: No module named 'no_such_plugin_module'"),
    ("missing_file.py", "FileNotFoundError: no such file"),
])
def test_a_plugin_that_is_not_there_exits_2_naming_it(spec, error, tmp_path, monkeypatch, no_plugins_yet, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["search", "--plugin", spec]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pcfes search: error: plugin --plugin {plugins._spec_key(spec)} failed to load: {error}")
    assert err.count("\n") == 1


# --- sweep workers load the driver's plugins ------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", [["--jobs", "2"], ["--backend", "ray"]], ids=["jobs-2-processes", "ray-tasks"])
def test_sweep_workers_load_the_drivers_plugin(backend, small_checkpoint, plugin_file, tmp_path):
    if "ray" in backend:
        pytest.importorskip("ray")
    proc = pcfes("sweep", str(sweep_toml(tmp_path, small_checkpoint)), *backend, "--plugin", str(plugin_file),
                 "--out", str(tmp_path / "out"), "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = sorted(p for p in (tmp_path / "out").iterdir() if p.is_dir())
    assert len(runs) == 2 and "(2 ok, 0 skipped, 0 failed)" in proc.stdout
    for run_dir in runs:
        assert_recorded_plugin(read_run(run_dir), plugin_file)


# --- global options and --version -----------------------------------------------------------


def test_version_names_the_package_version(capsys):
    import harness

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"pcfes {harness.__version__} (python ")


@pytest.mark.parametrize("argv", [
    ["--threads", "3", "list", "datasets"],
    ["list", "datasets", "--threads", "3"],
    ["--threads", "2", "list", "--threads", "3", "datasets"],  # the subcommand's, nearer the end, wins
])
def test_threads_is_accepted_before_or_after_the_subcommand(argv, monkeypatch, no_plugins_yet):
    seen: list[tuple[int, list[str]]] = []
    monkeypatch.setattr(cli, "cmd_list", lambda args: seen.append((args.threads, args.kinds)) or 0)
    assert cli.main(argv) == 0
    assert seen == [(3, ["datasets"])]


def test_a_command_that_computes_sets_torch_threads_after_its_cheap_checks(monkeypatch, no_plugins_yet, capsys):
    import torch

    set_to: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", set_to.append)
    monkeypatch.setattr(cli, "cmd_check", lambda args: cli._start_torch(args) or 0)
    assert cli.main(["check", "searcher", "random", "--threads", "3"]) == 0
    assert set_to == [3]
    set_to.clear()
    monkeypatch.undo()
    monkeypatch.setattr(torch, "set_num_threads", set_to.append)
    assert cli.main(["--threads", "3", "search", "--searcher", "nope"]) == 2  # a bad name fails before torch is set up
    assert set_to == []
    assert "unknown searcher 'nope'" in capsys.readouterr().err


def test_plugin_options_before_and_after_the_subcommand_add_up_and_verbose_works_either_side(monkeypatch):
    asked: list[list[str]] = []
    monkeypatch.setattr(plugins, "load", asked.append)
    monkeypatch.setattr(cli, "cmd_list", lambda args: 0 if args.verbose else 1)
    assert cli.main(["--plugin", "a", "list", "--plugin", "b.py", "-v"]) == 0
    assert asked == [["a", "b.py"]]
    assert cli.main(["list"]) == 1


def test_list_of_an_unknown_kind_exits_2_naming_the_kinds(no_plugins_yet, capsys):
    assert cli.main(["list", "plugins"]) == 2
    assert capsys.readouterr().err == "pcfes list: error: cannot list plugins; choose from searchers, supernets, datasets\n"


def test_list_shows_each_entrys_registry_metadata_and_marks_the_defaults(no_plugins_yet, capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "built in  [baseline, compare] population=50" in rows["evolution"]
    assert "built in  [freezing] population=50" in rows["cf-es"]
    assert "built in  [default, freezing, compare] population=50" in rows["pcf-es"]  # what `pcfes search` runs
    assert "built in  [spos, cpu, <= 412,352 MACs] in_channels=1" in rows["spos-cpu"]
    assert "built in  [default, tiny] in_channels=1" in rows["conv-tiny"]
    assert rows["fashion16"].split() == ["fashion16", "built", "in", "[default]"]
    assert [name for name, row in rows.items() if "[default" in row] == ["pcf-es", "conv-tiny", "fashion16"]
    assert out.splitlines()[-1].startswith("[default]: used when no --searcher, --supernet or --dataset is given")
