"""Progress a person can follow: tqdm bars on a terminal, one log line per step anywhere else.

Written to a file or a CI log, a bar's every refresh would be a line of its own and the next
print would land on its last line; there, each step (a generation, a run) is one log line with
its count, elapsed time and ETA instead.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from tqdm.auto import tqdm

log = logging.getLogger("pcfes.progress")


class LineProgress:
    """tqdm's update / set_postfix / close for a non-terminal: one line per update."""

    def __init__(self, total: int | None, desc: str, unit: str, initial: int = 0):
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self._start, self._initial = time.perf_counter(), initial
        self._postfix = ""

    def set_postfix(self, **values: Any) -> None:
        """Shown with the next update."""
        self._postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        """Count ``n`` steps and log one line."""
        self.n += n
        elapsed = time.perf_counter() - self._start
        done = self.n - self._initial
        eta = ""
        if self.total and done > 0 and self.n < self.total:
            eta = f", ETA {elapsed / done * (self.total - self.n):.0f} s"
        of = f"/{self.total}" if self.total else ""
        extra = f" ({self._postfix})" if self._postfix else ""
        log.info("%s: %d%s %s%s, %.0f s%s", self.desc, self.n, of, self.unit, extra, elapsed, eta)

    def close(self) -> None:
        """Nothing to clear on a log."""

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(
    total: int | None, desc: str, unit: str, *, enabled: bool = True, initial: int = 0, position: int = 0, leave: bool = True
) -> Any:
    """A tqdm bar on a terminal, a LineProgress elsewhere, a silent bar when not ``enabled``."""
    if not enabled:
        return tqdm(total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, position=position, leave=leave, dynamic_ncols=True)
    return LineProgress(total, desc, unit, initial)
