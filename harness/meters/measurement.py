"""Measurements, their units and sources, sums that keep "unavailable", best-available energy, the Meter ABC."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

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
UNAVAILABLE = "unavailable: "


@dataclass(frozen=True)
class Measurement:
    """One measured quantity of one window (or a sum of windows)."""

    quantity: str
    value: float | None  # None iff unavailable
    unit: str
    source: str  # e.g. "nvml_counter", or "unavailable: <reason>"

    def __post_init__(self) -> None:
        if (self.value is None) != self.source.startswith(UNAVAILABLE):
            raise ValueError(
                f"Measurement {self.quantity}: value {self.value!r} with source {self.source!r}; "
                f"value must be None exactly when the source starts with {UNAVAILABLE!r}"
            )

    @property
    def available(self) -> bool:
        """True when the value was measured."""
        return self.value is not None


def unavailable(quantity: str, reason: str) -> Measurement:
    """A measurement that could not be made, with the reason."""
    return Measurement(quantity, None, QUANTITY_UNITS[quantity], UNAVAILABLE + reason)


def measured(quantity: str, value: float, source: str) -> Measurement:
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
                a.quantity, None, a.unit, f"{UNAVAILABLE}differs between windows ({a.value} vs {b.value} {a.unit})"
            )
        return Measurement(a.quantity, a.value, a.unit, source)
    return Measurement(a.quantity, a.value + b.value, a.unit, source)


def best_energy(window: Mapping[str, Measurement]) -> Measurement:
    """Best-available total energy of a window (rule in the module docstring)."""
    parts = [window[q] for q in _ENERGY_PARTS if q in window]
    if parts and all(p.available for p in parts):
        return measured("energy_j", sum(p.value for p in parts), "+".join(p.source for p in parts))
    kwh = window.get("energy_kwh")
    if kwh is not None and kwh.available:
        return measured("energy_j", kwh.value * _J_PER_KWH, kwh.source)
    missing = [m for m in (*parts, kwh) if m is not None and not m.available]
    reasons = [f"{m.quantity}: {m.source[len(UNAVAILABLE) :]}" for m in missing]
    return unavailable("energy_j", "; ".join(reasons) if reasons else "no energy meter in the set")


class Meter(ABC):
    """Measures some quantities over start/stop windows; never raises for a missing sensor."""

    # MeterSet starts meters from the highest nesting down and stops them from 0 up: 0 is innermost.
    nesting: ClassVar[int]

    @abstractmethod
    def sources(self) -> dict[str, str]:
        """Quantity -> source label this meter measures with (``unavailable: ...`` if it cannot)."""

    def name_window(self, phase: str) -> None:
        """Told the phase of the window about to open (a meter that logs each window names it so)."""

    def rewind(self, windows: int) -> None:
        """A resumed run continues after its first ``windows`` closed windows: forget what was logged after them."""

    def settings(self) -> dict[str, str]:
        """How the meter was set up, where that changes what its numbers cover (recorded with the run)."""
        return {}

    @abstractmethod
    def start(self) -> None:
        """Open a window."""

    @abstractmethod
    def stop(self) -> list[Measurement]:
        """Close the window and return one measurement per quantity of ``sources()``."""

    def close(self) -> None:  # not abstract: most meters hold nothing to release
        """Release devices, threads and libraries."""
