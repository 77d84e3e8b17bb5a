"""The `pcfes` command starts at once: --help, --version, list and usage errors load no heavy module.

Checked by what a fresh process has imported, not by a clock, so the test means the same on any
machine: torch alone takes seconds to import on a small CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

HEAVY = ("torch", "pandas", "matplotlib", "codecarbon", "ray")

# Each argv runs through cli.main in one fresh process; it prints the exit code and the heavy
# modules imported so far after each.
_PROBE = """
import json, sys
from harness import cli
heavy = {heavy!r}
def loaded():
    return sorted({{m.split('.')[0] for m in sys.modules}} & set(heavy))
report = [["import harness.cli", None, loaded()]]
for argv in {argvs!r}:
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    report.append([" ".join(argv), code, loaded()])
print(json.dumps(report), file=sys.__stdout__)
"""


def probe(*argvs: list[str]) -> list[list]:
    code = _PROBE.format(heavy=HEAVY, argvs=[list(a) for a in argvs])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_help_version_list_and_usage_errors_import_no_heavy_module():
    report = probe(
        ["--help"],
        ["train", "--help"],
        ["bench", "--help"],
        ["--version"],
        ["list"],
        ["search", "--searcher", "nope"],  # a mistyped name
        ["search", "--supernet", "nope"],
        ["compare", "--searchers", "random,nope"],
        ["train", "--dataset", "nope"],
        ["search", "--set", "bogus"],  # a bad --set
        ["search", "--set", "protocol.val_size=-1"],
        ["check", "searcher", "nope"],
        ["search", "--nope"],  # argparse's usage error
    )
    assert [(argv, code) for argv, code, _ in report] == [
        ("import harness.cli", None),
        ("--help", 0), ("train --help", 0), ("bench --help", 0), ("--version", 0), ("list", 0),
        *((argv, 2) for argv in ("search --searcher nope", "search --supernet nope", "compare --searchers random,nope",
                                 "train --dataset nope", "search --set bogus", "search --set protocol.val_size=-1",
                                 "check searcher nope", "search --nope")),
    ]
    assert {argv: heavy for argv, _, heavy in report} == {argv: [] for argv, _, _ in report}


def test_building_a_supernet_is_what_imports_torch():
    code = (
        "import sys, supernets\n"
        "assert 'torch' not in sys.modules and len(supernets.available()) > 1\n"
        "supernets.get_supernet('conv-tiny')\n"
        "print('torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True"]


def test_the_installed_console_script_runs_cli_main():
    from importlib import metadata

    import pytest

    (point,) = [p for p in metadata.entry_points(group="console_scripts") if p.name == "pcfes"]
    assert point.value == "harness.cli:main"
    script = Path(sys.executable).parent / "pcfes"
    if not script.exists():
        pytest.skip(f"no pcfes script beside {sys.executable} (not installed into this environment)")
    proc = subprocess.run([str(script), "list", "datasets"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:2] == ["datasets:", "  fashion16      built in  [default]"]
