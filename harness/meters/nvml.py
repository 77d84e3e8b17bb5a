"""GPU board energy from NVML: the total-energy counter, or a labelled power-sampling integral."""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from harness.meters.measurement import UNAVAILABLE, Measurement, Meter, measured, unavailable

_U64 = 1 << 64


class NvmlEnergyMeter(Meter):
    """GPU board energy from NVML: total-energy counter (mJ), or a power-sampling integral.

    ``nvmlDeviceGetTotalEnergyConsumption`` is read around each window, after
    ``synchronize()`` so that queued kernels are finished (pass the run device's, see
    ``cuda_synchronizer``). GPUs without that counter (``NVMLError_NotSupported``) are
    sampled with ``nvmlDeviceGetPowerUsage`` (mW) every ``power_interval_s`` in a thread
    and integrated with the trapezoid rule (``nvml_power_integral``). ``uuid`` (e.g. the
    ``GPU-...`` of the torch device) selects the board independently of
    ``CUDA_VISIBLE_DEVICES``; otherwise ``device_index`` is the NVML index. ``nvml`` replaces
    the ``pynvml`` module (from ``nvidia-ml-py``), for tests.
    """

    nesting = 4

    def __init__(
        self,
        device_index: int = 0,
        nvml: ModuleType | Any | None = None,
        *,
        uuid: str | None = None,
        synchronize: Callable[[], None] | None = None,
        power_interval_s: float = 0.05,
    ) -> None:
        if power_interval_s <= 0:
            raise ValueError(f"power_interval_s must be > 0, got {power_interval_s}")
        self._sync = synchronize
        self._interval = power_interval_s
        self._nvml: Any = None
        self._handle: Any = None
        self._start_mj: int | None = None
        self._samples: list[tuple[float, float]] = []  # (perf_counter s, power W)
        self._sampler: threading.Thread | None = None
        self._stop_sampling = threading.Event()
        self._error: str | None = None  # a failed read inside the current window
        self._open = False
        self._source = self._connect(nvml, device_index, uuid)

    def _connect(self, nvml: Any, device_index: int, uuid: str | None) -> str:
        if nvml is None:
            try:
                nvml = importlib.import_module("pynvml")
            except ImportError as exc:
                return f"{UNAVAILABLE}pynvml not importable (install nvidia-ml-py): {exc}"
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            return f"{UNAVAILABLE}NVML init failed: {exc}"
        which = f"uuid {uuid}" if uuid is not None else f"index {device_index}"
        try:
            if uuid is not None:
                handle = nvml.nvmlDeviceGetHandleByUUID(uuid)
            else:
                handle = nvml.nvmlDeviceGetHandleByIndex(device_index)
        except nvml.NVMLError as exc:
            nvml.nvmlShutdown()
            return f"{UNAVAILABLE}no NVML device with {which}: {exc}"
        source = "nvml_counter"
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except nvml.NVMLError_NotSupported:
            source = "nvml_power_integral"
            try:
                nvml.nvmlDeviceGetPowerUsage(handle)
            except nvml.NVMLError as exc:
                nvml.nvmlShutdown()
                return f"{UNAVAILABLE}NVML device {which} has neither an energy counter nor power readings: {exc}"
        except nvml.NVMLError as exc:
            nvml.nvmlShutdown()
            return f"{UNAVAILABLE}NVML energy counter of device {which} unreadable: {exc}"
        self._nvml, self._handle = nvml, handle
        return source

    def sources(self) -> dict[str, str]:
        return {"gpu_energy_j": self._source}

    def _power_w(self) -> float:
        return self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1e3

    def _sample_power(self) -> None:
        while not self._stop_sampling.wait(self._interval):
            try:
                self._samples.append((time.perf_counter(), self._power_w()))
            except self._nvml.NVMLError as exc:
                self._error = f"NVML power reading failed: {exc}"
                return

    def start(self) -> None:
        self._open = True
        self._error = None
        if self._nvml is None:
            return
        if self._sync is not None:
            self._sync()
        try:
            if self._source == "nvml_counter":
                self._start_mj = self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
                return
            self._samples = [(time.perf_counter(), self._power_w())]
        except self._nvml.NVMLError as exc:
            self._error = f"NVML reading at window start failed: {exc}"
            return
        self._stop_sampling.clear()
        self._sampler = threading.Thread(target=self._sample_power, name="nvml-power-sampler", daemon=True)
        self._sampler.start()

    def stop(self) -> list[Measurement]:
        if not self._open:
            raise RuntimeError("NvmlEnergyMeter.stop() called without start()")
        self._open = False
        if self._nvml is None:
            return [Measurement("gpu_energy_j", None, "J", self._source)]
        if self._sync is not None:
            self._sync()
        if self._sampler is not None:
            self._stop_sampling.set()
            self._sampler.join()
            self._sampler = None
        if self._error is None:
            try:
                if self._source == "nvml_counter":
                    end_mj = self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
                    # Unsigned 64-bit counter: modular difference survives a wrap.
                    return [measured("gpu_energy_j", ((end_mj - self._start_mj) % _U64) / 1e3, self._source)]
                self._samples.append((time.perf_counter(), self._power_w()))
            except self._nvml.NVMLError as exc:
                self._error = f"NVML reading at window stop failed: {exc}"
        if self._error is not None:
            return [unavailable("gpu_energy_j", self._error)]
        samples, self._samples = self._samples, []
        joules = sum((p0 + p1) / 2 * (t1 - t0) for (t0, p0), (t1, p1) in zip(samples, samples[1:]))
        return [measured("gpu_energy_j", joules, self._source)]

    def close(self) -> None:
        if self._sampler is not None:
            self._stop_sampling.set()
            self._sampler.join()
            self._sampler = None
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml = None
            self._source = f"{UNAVAILABLE}meter closed"
