"""A set of meters run around phase windows, with per-phase sums; the standard set for a device."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.meters.carbon import CodeCarbonMeter, UnavailableCarbonMeter, codecarbon_missing
from harness.meters.clock import CpuTimeMeter, WallMeter
from harness.meters.cuda import CudaEventMeter, cuda_synchronizer
from harness.meters.measurement import QUANTITY_UNITS, UNAVAILABLE, Measurement, Meter, best_energy, combine, unavailable
from harness.meters.nvml import NvmlEnergyMeter
from harness.meters.rapl import RaplMeter

_STATE_VERSION = 1

@dataclass
class Window:
    """One measured window: its phase and, once closed, one measurement per quantity (Zeus's ``end_window``)."""

    phase: str
    measurements: dict[str, Measurement] = field(default_factory=dict)


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
        self._windows = 0  # closed windows, so a resumed run's meters can forget the ones redone
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
    def window(self, phase: str) -> Iterator[Window]:
        """Measure the body as one window of ``phase``: the yielded ``Window`` holds its measurements once
        the block exits, and they are added to the phase's sums."""
        if self._phase is not None:
            raise RuntimeError(f"window({phase!r}) opened inside window({self._phase!r}): windows must not nest")
        self._phase = phase
        t0 = time.perf_counter()
        for meter in self._meters:
            meter.name_window(phase)
            meter.start()
        t1 = time.perf_counter()
        opened = Window(phase)
        try:
            yield opened
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
            opened.measurements = window
            self._last = window
            self._windows += 1
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
            q: Measurement(q, None if s.startswith(UNAVAILABLE) else 0.0, QUANTITY_UNITS[q], s)
            for q, s in declared.items()
        }
        return {q: m.source for q, m in self._complete(placeholders).items()}

    def settings(self) -> dict[str, str]:
        """Every meter's ``settings()``, merged (e.g. CodeCarbon's tracking mode and what it attributes)."""
        return {key: value for meter in self._meters for key, value in meter.settings().items()}

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable sums, so a resumed run adds to the cost spent before the interruption."""
        return {
            "version": _STATE_VERSION,
            "overhead_s": self.overhead_s,
            "windows": self._windows,
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
        if "windows" in state:  # checkpoints from before the count keep what their meters logged
            self._windows = int(state["windows"])
            for meter in self._meters:
                meter.rewind(self._windows)

    def close(self) -> None:
        """Close every meter."""
        for meter in self._meters:
            meter.close()


CARBON_OFF = "CodeCarbon switched off (--no-carbon or carbon.enabled = false)"


def default_meters(
    device: str, country_iso_code: str, *, codecarbon: bool = True, tracking_mode: str = "process",
    emissions_csv: Path | None = None,
) -> MeterSet:
    """The standard meters for a run on ``device`` ("cpu" or "cuda[:i]"); CodeCarbon (``tracking_mode``,
    writing ``emissions_csv``) unless ``codecarbon`` is False or it is not installed, then unavailable with the reason."""
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
    if not codecarbon:
        meters.append(UnavailableCarbonMeter(CARBON_OFF))
    elif missing := codecarbon_missing():
        meters.append(UnavailableCarbonMeter(missing))
    else:
        meters.append(CodeCarbonMeter(country_iso_code, tracking_mode=tracking_mode, emissions_csv=emissions_csv))
    return MeterSet(meters)
