"""GPU time of a window from CUDA events, synchronised at its edges."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from harness.meters.measurement import UNAVAILABLE, Measurement, Meter, measured

def cuda_synchronizer(device: str | torch.device) -> Callable[[], None] | None:
    """``torch.cuda.synchronize`` bound to ``device``, or None when it is not a usable CUDA device."""
    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        return None
    return functools.partial(torch.cuda.synchronize, dev)


class CudaEventMeter(Meter):
    """GPU time of the window: CUDA events on the device's current stream, synchronised at both edges."""

    nesting = 0

    def __init__(self, device: str | torch.device = "cuda") -> None:
        self._device = torch.device(device)
        self._events: tuple[torch.cuda.Event, torch.cuda.Event] | None = None
        self._open = False
        if self._device.type != "cuda":
            self._source = f"{UNAVAILABLE}run device is {self._device}, not CUDA"
        elif not torch.cuda.is_available():
            self._source = f"{UNAVAILABLE}CUDA not available"
        else:
            self._source = "cuda_events"
            # One reusable pair: the elapsed time is read at stop, after the synchronise.
            self._events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))

    def sources(self) -> dict[str, str]:
        return {"gpu_s": self._source}

    def start(self) -> None:
        self._open = True
        if self._events is not None:
            torch.cuda.synchronize(self._device)
            self._events[0].record(torch.cuda.current_stream(self._device))

    def stop(self) -> list[Measurement]:
        if not self._open:
            raise RuntimeError("CudaEventMeter.stop() called without start()")
        self._open = False
        if self._events is None:
            return [Measurement("gpu_s", None, "s", self._source)]
        begin, end = self._events
        end.record(torch.cuda.current_stream(self._device))
        torch.cuda.synchronize(self._device)
        return [measured("gpu_s", begin.elapsed_time(end) / 1e3, self._source)]
