"""Time, energy and CO2 meters that wrap the runner's phases (DESIGN.md, "Runner and meters").

A ``Meter`` is started and stopped around one window and returns ``Measurement`` s, each
with a value, a unit and the ``source`` it came from. A meter that cannot measure returns
``value=None`` with ``source="unavailable: <reason>"``: never a silent zero. Sums keep that
rule: a total that includes an unavailable window is unavailable.

``MeterSet.window(phase)`` runs all meters around one phase and accumulates per-phase sums.
Every window reports every quantity in ``QUANTITY_UNITS``; one that no meter of the set
measures is reported unavailable. Nesting: meters with the lowest ``nesting`` are started
last and stopped first. ``CudaEventMeter`` is innermost because it synchronises the device
at the window edges: the wall and CPU clocks just outside it then include all queued GPU
work of the phase and none of the previous one.

Best-available energy (``energy_j``) of a window:

1. measured: the sum of the hardware energy counters in the set (``gpu_energy_j`` from
   NVML, ``cpu_energy_j`` from RAPL) when every one of them is available; its source joins
   theirs, e.g. ``nvml_counter+rapl``. It covers the GPU board and the CPU packages, not
   RAM or the rest of the machine;
2. else CodeCarbon's energy (``energy_kwh * 3.6e6``, CPU + GPU + RAM) with CodeCarbon's
   label (``codecarbon_rapl`` when it read RAPL, ``codecarbon_estimate`` when it estimated
   CPU power from TDP and load);
3. else unavailable, with the reasons of the parts.

CO2 (``co2_g``) is always CodeCarbon's: its energy times the grid intensity of the
configured country (``grid_intensity_g_per_kwh``, from CodeCarbon's offline energy-mix
data), so ``co2_g = energy_kwh * grid_intensity_g_per_kwh`` can be recomputed.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import logging
import math
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import torch

QUANTITY_UNITS: dict[str, str] = {
    "wall_s": "s",
    "cpu_s": "s",
    "gpu_s": "s",
    "gpu_energy_j": "J",
    "cpu_energy_j": "J",
    "energy_j": "J",
    "energy_kwh": "kWh",
    "co2_g": "g",
    "grid_intensity_g_per_kwh": "g/kWh",
}
# Not summed over windows: a property of the grid, constant for a run.
_INTENSIVE = frozenset({"grid_intensity_g_per_kwh"})
# Hardware energy counters that together make the measured best-available energy.
_ENERGY_PARTS = ("gpu_energy_j", "cpu_energy_j")
_J_PER_KWH = 3.6e6
_UNAVAILABLE = "unavailable: "
_STATE_VERSION = 1


@dataclass(frozen=True)
class Measurement:
    """One measured quantity of one window (or a sum of windows)."""

    quantity: str
    value: float | None  # None iff unavailable
    unit: str
    source: str  # e.g. "nvml_counter", or "unavailable: <reason>"

    def __post_init__(self) -> None:
        if (self.value is None) != self.source.startswith(_UNAVAILABLE):
            raise ValueError(
                f"Measurement {self.quantity}: value {self.value!r} with source {self.source!r}; "
                f"value must be None exactly when the source starts with {_UNAVAILABLE!r}"
            )

    @property
    def available(self) -> bool:
        """True when the value was measured."""
        return self.value is not None


def unavailable(quantity: str, reason: str) -> Measurement:
    """A measurement that could not be made, with the reason."""
    return Measurement(quantity, None, QUANTITY_UNITS[quantity], _UNAVAILABLE + reason)


def _measured(quantity: str, value: float, source: str) -> Measurement:
    return Measurement(quantity, float(value), QUANTITY_UNITS[quantity], source)


def _source_parts(source: str) -> list[str]:
    return source[len("mixed(") : -1].split("|") if source.startswith("mixed(") else [source]


def combine(a: Measurement, b: Measurement) -> Measurement:
    """Sum of two measurements of one quantity; unavailable stays unavailable.

    Differing sources become ``mixed(a|b)``. Grid intensity is not summed: equal values
    are kept, differing ones are reported unavailable.
    """
    if (a.quantity, a.unit) != (b.quantity, b.unit):
        raise ValueError(f"cannot combine {a.quantity} [{a.unit}] with {b.quantity} [{b.unit}]")
    if a.value is None:
        return a
    if b.value is None:
        return b
    parts = sorted(set(_source_parts(a.source)) | set(_source_parts(b.source)))
    source = parts[0] if len(parts) == 1 else f"mixed({'|'.join(parts)})"
    if a.quantity in _INTENSIVE:
        if a.value != b.value:
            return Measurement(
                a.quantity, None, a.unit, f"{_UNAVAILABLE}differs between windows ({a.value} vs {b.value} {a.unit})"
            )
        return Measurement(a.quantity, a.value, a.unit, source)
    return Measurement(a.quantity, a.value + b.value, a.unit, source)


def best_energy(window: Mapping[str, Measurement]) -> Measurement:
    """Best-available total energy of a window (rule in the module docstring)."""
    parts = [window[q] for q in _ENERGY_PARTS if q in window]
    if parts and all(p.available for p in parts):
        return _measured("energy_j", sum(p.value for p in parts), "+".join(p.source for p in parts))
    kwh = window.get("energy_kwh")
    if kwh is not None and kwh.available:
        return _measured("energy_j", kwh.value * _J_PER_KWH, kwh.source)
    missing = [m for m in (*parts, kwh) if m is not None and not m.available]
    reasons = [f"{m.quantity}: {m.source[len(_UNAVAILABLE) :]}" for m in missing]
    return unavailable("energy_j", "; ".join(reasons) if reasons else "no energy meter in the set")


class Meter(ABC):
    """Measures some quantities over start/stop windows; never raises for a missing sensor."""

    # MeterSet starts meters from the highest nesting down and stops them from 0 up: 0 is innermost.
    nesting: ClassVar[int]

    @abstractmethod
    def sources(self) -> dict[str, str]:
        """Quantity -> source label this meter measures with (``unavailable: ...`` if it cannot)."""

    @abstractmethod
    def start(self) -> None:
        """Open a window."""

    @abstractmethod
    def stop(self) -> list[Measurement]:
        """Close the window and return one measurement per quantity of ``sources()``."""

    def close(self) -> None:  # not abstract: most meters hold nothing to release
        """Release devices, threads and libraries."""


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
        return [_measured(self.quantity, (t1 - t0) / 1e9, self.source)]


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
            self._source = f"{_UNAVAILABLE}run device is {self._device}, not CUDA"
        elif not torch.cuda.is_available():
            self._source = f"{_UNAVAILABLE}CUDA not available"
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
        return [_measured("gpu_s", begin.elapsed_time(end) / 1e3, self._source)]


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
                return f"{_UNAVAILABLE}pynvml not importable (install nvidia-ml-py): {exc}"
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            return f"{_UNAVAILABLE}NVML init failed: {exc}"
        which = f"uuid {uuid}" if uuid is not None else f"index {device_index}"
        try:
            if uuid is not None:
                handle = nvml.nvmlDeviceGetHandleByUUID(uuid)
            else:
                handle = nvml.nvmlDeviceGetHandleByIndex(device_index)
        except nvml.NVMLError as exc:
            nvml.nvmlShutdown()
            return f"{_UNAVAILABLE}no NVML device with {which}: {exc}"
        source = "nvml_counter"
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except nvml.NVMLError_NotSupported:
            source = "nvml_power_integral"
            try:
                nvml.nvmlDeviceGetPowerUsage(handle)
            except nvml.NVMLError as exc:
                nvml.nvmlShutdown()
                return f"{_UNAVAILABLE}NVML device {which} has neither an energy counter nor power readings: {exc}"
        except nvml.NVMLError as exc:
            nvml.nvmlShutdown()
            return f"{_UNAVAILABLE}NVML energy counter of device {which} unreadable: {exc}"
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
                    return [_measured("gpu_energy_j", ((end_mj - self._start_mj) % _U64) / 1e3, self._source)]
                self._samples.append((time.perf_counter(), self._power_w()))
            except self._nvml.NVMLError as exc:
                self._error = f"NVML reading at window stop failed: {exc}"
        if self._error is not None:
            return [unavailable("gpu_energy_j", self._error)]
        samples, self._samples = self._samples, []
        joules = sum((p0 + p1) / 2 * (t1 - t0) for (t0, p0), (t1, p1) in zip(samples, samples[1:]))
        return [_measured("gpu_energy_j", joules, self._source)]

    def close(self) -> None:
        if self._sampler is not None:
            self._stop_sampling.set()
            self._sampler.join()
            self._sampler = None
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml = None
            self._source = f"{_UNAVAILABLE}meter closed"


_RAPL_PACKAGE = re.compile(r"intel-rapl:\d+")


class RaplMeter(Meter):
    """CPU package energy from Linux powercap RAPL: sum of ``energy_uj`` of the package domains.

    Only top-level ``intel-rapl:N`` domains named ``package-*`` count: their subdomains
    (core, uncore, dram) are parts of them, and a ``psys`` domain covers the whole platform.
    Each counter wraps at ``max_energy_range_uj``; one wrap per window is undone (a package
    at 200 W wraps about every 20 minutes). Since Linux 5.10 ``energy_uj`` is readable by
    root only; an unreadable tree makes the meter unavailable with the reason.
    """

    nesting = 3

    def __init__(self, root: Path = Path("/sys/class/powercap")) -> None:
        self._root = Path(root)
        self._domains: list[tuple[Path, int]] = []  # (energy_uj file, max_energy_range_uj)
        self._start_uj: list[int] | None = None
        self._error: str | None = None
        self._open = False
        self._source = self._discover()

    def _discover(self) -> str:
        if not self._root.is_dir():
            return f"{_UNAVAILABLE}no RAPL powercap tree at {self._root}"
        try:
            for domain in sorted(self._root.iterdir()):
                if not _RAPL_PACKAGE.fullmatch(domain.name):
                    continue
                if not (domain / "name").read_text().strip().startswith("package"):
                    continue
                energy = domain / "energy_uj"
                max_range = int((domain / "max_energy_range_uj").read_text())
                int(energy.read_text())  # probe: permission is checked here, not in a window
                self._domains.append((energy, max_range))
        except (OSError, ValueError) as exc:
            self._domains = []
            return f"{_UNAVAILABLE}cannot read RAPL under {self._root}: {exc}"
        if not self._domains:
            return f"{_UNAVAILABLE}no intel-rapl package domain under {self._root}"
        return "rapl"

    def sources(self) -> dict[str, str]:
        return {"cpu_energy_j": self._source}

    def _read(self) -> list[int]:
        return [int(path.read_text()) for path, _ in self._domains]

    def start(self) -> None:
        self._open = True
        self._error = None
        if not self._domains:
            return
        try:
            self._start_uj = self._read()
        except (OSError, ValueError) as exc:
            self._error = f"RAPL read at window start failed: {exc}"

    def stop(self) -> list[Measurement]:
        if not self._open:
            raise RuntimeError("RaplMeter.stop() called without start()")
        self._open = False
        if not self._domains:
            return [Measurement("cpu_energy_j", None, "J", self._source)]
        if self._error is None:
            try:
                end_uj = self._read()
            except (OSError, ValueError) as exc:
                self._error = f"RAPL read at window stop failed: {exc}"
        if self._error is not None:
            return [unavailable("cpu_energy_j", self._error)]
        total_uj = 0
        for (_, max_range), begin, end in zip(self._domains, self._start_uj, end_uj):
            total_uj += end - begin if end >= begin else end + max_range - begin
        return [_measured("cpu_energy_j", total_uj / 1e6, self._source)]


def validate_country_iso_code(code: str) -> str:
    """Upper-cased ISO 3166-1 alpha-3 code, if CodeCarbon's offline energy-mix data knows it; else ValueError."""
    from codecarbon import __version__ as cc_version
    from codecarbon.input import DataSource

    mixes = DataSource().get_global_energy_mix_data()
    normalised = str(code).strip().upper()
    if normalised in mixes:
        return normalised
    valid = sorted(mixes)
    close = difflib.get_close_matches(normalised, valid, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ValueError(
        f"unknown country ISO code {code!r}: CodeCarbon {cc_version}'s offline energy-mix data "
        f"(global_energy_mix.json, {len(valid)} countries) has no entry for it, and we refuse its "
        f"silent world-average fallback. {hint}Use a 3-letter ISO 3166-1 alpha-3 code such as "
        f"USA, FRA, DEU, GBR, CHN (first valid ones: {', '.join(valid[:5])})."
    )


class CodeCarbonMeter(Meter):
    """Energy and CO2 from CodeCarbon's ``OfflineEmissionsTracker``, one task per window.

    One tracker per meter is created (it probes the hardware: slow) and warmed up with a
    throw-away task at construction, outside any window. Each window is one
    ``start_task``/``stop_task``; the tracker itself is never ``start()``-ed, so no
    background measuring runs between windows. Every setting that could reach the network
    or write a file is passed explicitly (``output_methods=[]``, no Electricity Maps token,
    no emissions endpoint, no region, no forced intensity), overriding any
    ``.codecarbon.config`` or ``CODECARBON_*`` variable. ``tracking_mode="machine"`` counts
    the whole machine's CPU and RAM, like RAPL and NVML do.
    """

    nesting = 5

    def __init__(self, country_iso_code: str, *, tracking_mode: str = "machine") -> None:
        self.country_iso_code = validate_country_iso_code(country_iso_code)
        if tracking_mode not in ("machine", "process"):
            raise ValueError(f"tracking_mode must be 'machine' or 'process', got {tracking_mode!r}")
        from codecarbon import OfflineEmissionsTracker
        from codecarbon.core.emissions import Emissions
        from codecarbon.core.units import Energy
        from codecarbon.external.geography import GeoMetadata
        from codecarbon.external.hardware import CPU
        from codecarbon.input import DataSource

        # Its constructor logs at INFO/WARNING before applying log_level: silence it first.
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        data = DataSource()
        year = data.get_global_energy_mix_data()[self.country_iso_code]["year"]
        # Same call the tracker makes for private infrastructure without a region.
        kg_per_kwh = Emissions(data).get_country_emissions(
            Energy.from_energy(kWh=1.0), GeoMetadata(country_iso_code=self.country_iso_code)
        )
        self.intensity_g_per_kwh = kg_per_kwh * 1e3
        self.intensity_source = f"codecarbon_energy_mix:{self.country_iso_code}:{year}"
        self._tracker = OfflineEmissionsTracker(
            country_iso_code=self.country_iso_code,
            region=None,
            cloud_provider=None,
            cloud_region=None,
            country_2letter_iso_code=None,
            electricitymaps_api_token=None,
            emissions_endpoint=None,
            force_carbon_intensity_g_co2e_kwh=None,
            output_methods=[],
            allow_multiple_runs=True,  # no lock file; several runs may share a process
            tracking_mode=tracking_mode,
            pue=1.0,
            log_level="error",
        )
        self._tasks = 0
        self._open = False
        self._error: str | None = None
        self.cpu_power_mode = "unknown"  # CodeCarbon's CPU mode: "intel_rapl" measured, "cpu_load" estimated
        # Warm-up: hardware probe and emission-data loading happen here, not in the first window.
        self._tracker.start_task("warm-up")
        warm = self._tracker.stop_task()
        if warm is None:
            self._source = f"{_UNAVAILABLE}CodeCarbon tracker did not start (stop_task returned None)"
            return
        cpus = [hw for hw in self._tracker._hardware if isinstance(hw, CPU)]  # no public accessor
        self.cpu_power_mode = cpus[0]._mode if cpus else "none"
        self._source = {
            "intel_rapl": "codecarbon_rapl",
            "cpu_load": "codecarbon_estimate",
            "constant": "codecarbon_estimate",
            "none": "codecarbon_estimate",
        }.get(self.cpu_power_mode, f"codecarbon_{self.cpu_power_mode}")

    def sources(self) -> dict[str, str]:
        return {
            "energy_kwh": self._source,
            "co2_g": self._source,
            "grid_intensity_g_per_kwh": self.intensity_source,
        }

    def start(self) -> None:
        self._open = True
        self._error = None
        if self._source.startswith(_UNAVAILABLE):
            return
        self._tasks += 1
        try:
            self._tracker.start_task(f"window-{self._tasks}")
        except Exception as exc:  # a CO2 estimate must never abort the measured search
            self._error = f"CodeCarbon start_task failed: {exc!r}"

    def stop(self) -> list[Measurement]:
        if not self._open:
            raise RuntimeError("CodeCarbonMeter.stop() called without start()")
        self._open = False
        intensity = _measured("grid_intensity_g_per_kwh", self.intensity_g_per_kwh, self.intensity_source)
        if self._source.startswith(_UNAVAILABLE):
            return [
                Measurement("energy_kwh", None, "kWh", self._source),
                Measurement("co2_g", None, "g", self._source),
                intensity,
            ]
        data = None
        if self._error is None:
            try:
                data = self._tracker.stop_task()
            except Exception as exc:  # a CO2 estimate must never abort the measured search
                self._error = f"CodeCarbon stop_task failed: {exc!r}"
        if self._error is None and data is None:
            self._error = "CodeCarbon stop_task returned None"
        result = [intensity]
        for quantity, value, scale in (
            ("energy_kwh", getattr(data, "energy_consumed", None), 1.0),
            ("co2_g", getattr(data, "emissions", None), 1e3),
        ):
            if self._error is not None:
                result.append(unavailable(quantity, self._error))
            elif not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                result.append(unavailable(quantity, f"CodeCarbon returned {value!r}"))
            else:
                result.append(_measured(quantity, value * scale, self._source))
        return result

    def close(self) -> None:
        if self._open:
            self.stop()


class MeterSet:
    """Runs a set of meters around phase windows and keeps per-phase sums."""

    def __init__(self, meters: Sequence[Meter]) -> None:
        seen: dict[str, str] = {}
        for meter in meters:
            for quantity in meter.sources():
                if quantity not in QUANTITY_UNITS or quantity == "energy_j":
                    raise ValueError(f"{type(meter).__name__} reports {quantity!r}, not a meter quantity")
                if quantity in seen:
                    raise ValueError(f"{quantity!r} measured by both {seen[quantity]} and {type(meter).__name__}")
                seen[quantity] = type(meter).__name__
        # Outermost first; stable for equal nesting.
        self._meters = sorted(meters, key=lambda m: -m.nesting)
        self._totals: dict[str, dict[str, Measurement]] = {}
        self._last: dict[str, Measurement] = {}
        self._phase: str | None = None
        self.overhead_s = 0.0

    @property
    def meters(self) -> tuple[Meter, ...]:
        """The meters, outermost first."""
        return tuple(self._meters)

    @property
    def last(self) -> dict[str, Measurement]:
        """Measurements of the last closed window (empty before the first)."""
        return dict(self._last)

    def _complete(self, measured: dict[str, Measurement]) -> dict[str, Measurement]:
        measured["energy_j"] = best_energy(measured)
        return {
            q: measured[q] if q in measured else unavailable(q, "no meter in this set measures it")
            for q in QUANTITY_UNITS
        }

    @contextmanager
    def window(self, phase: str) -> Iterator[None]:
        """Measure the body as one window of ``phase``; its measurements are added to the phase's sums."""
        if self._phase is not None:
            raise RuntimeError(f"window({phase!r}) opened inside window({self._phase!r}): windows must not nest")
        self._phase = phase
        t0 = time.perf_counter()
        for meter in self._meters:
            meter.start()
        t1 = time.perf_counter()
        try:
            yield
        finally:
            t2 = time.perf_counter()
            measured: dict[str, Measurement] = {}
            for meter in reversed(self._meters):
                for m in meter.stop():
                    measured[m.quantity] = m
            window = self._complete(measured)
            phase_totals = self._totals.setdefault(phase, {})
            for quantity, m in window.items():
                phase_totals[quantity] = combine(phase_totals[quantity], m) if quantity in phase_totals else m
            self._last = window
            self._phase = None
            self.overhead_s += (t1 - t0) + (time.perf_counter() - t2)

    def totals(self) -> dict[str, dict[str, Measurement]]:
        """Per-phase sums: phase -> quantity -> Measurement."""
        return {phase: dict(values) for phase, values in self._totals.items()}

    def grand_totals(self) -> dict[str, Measurement]:
        """Sums over all phases: quantity -> Measurement (empty before the first window)."""
        grand: dict[str, Measurement] = {}
        for values in self._totals.values():
            for quantity, m in values.items():
                grand[quantity] = combine(grand[quantity], m) if quantity in grand else m
        return grand

    def sources(self) -> dict[str, str]:
        """Quantity -> source label the meters measure with now (totals carry what was used)."""
        declared = {q: s for meter in self._meters for q, s in meter.sources().items()}
        # Zero placeholders only select the energy rule's branch; no value is reported.
        placeholders = {
            q: Measurement(q, None if s.startswith(_UNAVAILABLE) else 0.0, QUANTITY_UNITS[q], s)
            for q, s in declared.items()
        }
        return {q: m.source for q, m in self._complete(placeholders).items()}

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable sums, so a resumed run adds to the cost spent before the interruption."""
        return {
            "version": _STATE_VERSION,
            "overhead_s": self.overhead_s,
            "totals": {p: {q: asdict(m) for q, m in values.items()} for p, values in self._totals.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the sums with those of ``state_dict()``."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(
                f"meter state version {state.get('version')!r} is not {_STATE_VERSION}; "
                "it was written by another pcfes-bench version and cannot be resumed"
            )
        self._totals = {
            phase: {q: Measurement(**m) for q, m in values.items()} for phase, values in state["totals"].items()
        }
        self.overhead_s = float(state["overhead_s"])

    def close(self) -> None:
        """Close every meter."""
        for meter in self._meters:
            meter.close()


def default_meters(device: str, country_iso_code: str, *, codecarbon: bool = True) -> MeterSet:
    """The standard meters for a run on ``device`` ("cpu" or "cuda[:i]")."""
    dev = torch.device(device)
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:i]', got {device!r}")
    meters: list[Meter] = [WallMeter(), CpuTimeMeter(), RaplMeter()]
    if dev.type == "cuda":
        meters.append(CudaEventMeter(dev))
        sync = cuda_synchronizer(dev)
        if sync is not None:
            # The UUID names the same board for NVML whatever CUDA_VISIBLE_DEVICES remaps.
            uuid = str(torch.cuda.get_device_properties(dev).uuid)
            if not uuid.startswith(("GPU-", "MIG-")):
                uuid = f"GPU-{uuid}"
            meters.append(NvmlEnergyMeter(uuid=uuid, synchronize=sync))
        else:
            meters.append(NvmlEnergyMeter(dev.index or 0))
    if codecarbon:
        meters.append(CodeCarbonMeter(country_iso_code))
    return MeterSet(meters)
