"""The README's Python API example, run as a doctest (a user copying it gets what it shows)."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _api_example() -> str:
    section = README.read_text().split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Python API section holds one example"
    return blocks[0]


def test_the_readme_python_api_example_runs_as_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # its relative paths (checkpoints/, results/, reports/) land here
    test = doctest.DocTestParser().get_doctest(_api_example(), {}, "README.md: Python API", str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0 and runner.tries >= 10, f"{runner.failures} of {runner.tries} examples failed (see above)"
    assert (tmp_path / "reports" / "api-demo" / "report.md").exists()
