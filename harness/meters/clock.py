"""Wall-clock and process CPU time of a window."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from harness.meters.measurement import Measurement, Meter, measured

class _ClockMeter(Meter):
    """Difference of a nanosecond clock over the window."""

    quantity: ClassVar[str]
    clock: ClassVar[Callable[[], int]]
    source: ClassVar[str]

    def __init__(self) -> None:
        self._t0: int | None = None

    def sources(self) -> dict[str, str]:
        return {self.quantity: self.source}

    def start(self) -> None:
        self._t0 = type(self).clock()

    def stop(self) -> list[Measurement]:
        t1 = type(self).clock()
        if self._t0 is None:
            raise RuntimeError(f"{type(self).__name__}.stop() called without start()")
        t0, self._t0 = self._t0, None
        return [measured(self.quantity, (t1 - t0) / 1e9, self.source)]


class WallMeter(_ClockMeter):
    """Wall-clock time of the window (``time.perf_counter_ns``)."""

    nesting = 1
    quantity = "wall_s"
    clock = time.perf_counter_ns
    source = "perf_counter_ns"


class CpuTimeMeter(_ClockMeter):
    """CPU time of this process, all threads, over the window (``time.process_time_ns``)."""

    nesting = 2
    quantity = "cpu_s"
    clock = time.process_time_ns
    source = "process_time_ns"
