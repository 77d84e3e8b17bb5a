"""Energy and CO2 from CodeCarbon's offline tracker, with an explicit, validated country.

Works with CodeCarbon 2.7 and later (``pyproject.toml``'s floor): keyword arguments that only
later releases take are passed only where the installed tracker accepts them (see
``tracker_kwargs``), and only public API is read. Each window's ``EmissionsData`` fields (CPU,
RAM and GPU energy and power, duration, tracking mode, PUE, CPU model, ...) are appended to the
run folder's ``emissions.csv``, the file CodeCarbon users know.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import inspect
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from harness.meters.measurement import UNAVAILABLE, Measurement, Meter, measured, unavailable

TRACKING_MODES = ("process", "machine")
CARBON_QUANTITIES = {"energy_kwh": "kWh", "co2_g": "g", "grid_intensity_g_per_kwh": "g/kWh"}
# What each tracking mode's CPU and RAM energy counts, written into run.json's meter sources.
_ATTRIBUTION = {
    ("process", "codecarbon_estimate"): "this process: CPU power x its share of CPU time, RAM by its memory",
    ("process", "codecarbon_rapl"): "CPU: the whole package (RAPL counts every process); RAM: this process's memory",
    ("machine", "codecarbon_estimate"): "the whole machine, other processes included",
    ("machine", "codecarbon_rapl"): "the whole machine, other processes included",
}


def codecarbon_missing() -> str | None:
    """Why CodeCarbon cannot run here (not installed), or None."""
    if importlib.util.find_spec("codecarbon") is None:
        return "codecarbon is not installed (pip install codecarbon, or pass --no-carbon)"
    return None


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


def tracker_kwargs(tracker_class: type, country_iso_code: str, tracking_mode: str) -> dict[str, Any]:
    """Keyword arguments for ``tracker_class`` (an ``OfflineEmissionsTracker``): no network, no file of its own.

    Every setting that could reach the network or write a file is passed explicitly, overriding
    any ``.codecarbon.config`` or ``CODECARBON_*`` variable. Releases before 3.2.9 have no
    ``output_methods`` (``save_to_file=False`` does it there), before 3.2.7 no
    ``force_carbon_intensity_g_co2e_kwh``, before 2.7 no lock file (``allow_multiple_runs``); the
    Electricity Maps token was ``co2_signal_api_token`` before 3.0.
    """
    accepted = set(inspect.signature(tracker_class.__init__).parameters)
    for base in tracker_class.__mro__[1:]:
        if "__init__" in vars(base):
            accepted |= set(inspect.signature(base.__init__).parameters)
    wanted: dict[str, Any] = {
        "country_iso_code": country_iso_code,
        "region": None,
        "cloud_provider": None,
        "cloud_region": None,
        "country_2letter_iso_code": None,
        "electricitymaps_api_token": None,
        "co2_signal_api_token": None,
        "emissions_endpoint": None,
        "force_carbon_intensity_g_co2e_kwh": None,
        "output_methods": [],
        "save_to_file": False,
        "save_to_api": False,
        "save_to_logger": False,
        "save_to_prometheus": False,
        "save_to_logfire": False,
        "allow_multiple_runs": True,  # no lock file; several runs may share a process
        "tracking_mode": tracking_mode,
        "pue": 1.0,
        "log_level": "error",
    }
    if "output_methods" in accepted:  # it replaces the save_to_* switches (3.2.9)
        wanted = {k: v for k, v in wanted.items() if not k.startswith("save_to_")}
    return {k: v for k, v in wanted.items() if k in accepted}


def rapl_read_by_codecarbon() -> bool:
    """Whether CodeCarbon reads RAPL counters here (measured CPU energy) rather than estimating from CPU load or TDP."""
    from codecarbon.core.cpu import is_rapl_available

    return bool(is_rapl_available())


class UnavailableCarbonMeter(Meter):
    """Stands in for CodeCarbon where it is switched off or not installed: every quantity unavailable, with the reason."""

    nesting = 5

    def __init__(self, reason: str) -> None:
        self._source = f"{UNAVAILABLE}{reason}"

    def sources(self) -> dict[str, str]:
        return dict.fromkeys(CARBON_QUANTITIES, self._source)

    def start(self) -> None:
        pass

    def stop(self) -> list[Measurement]:
        return [Measurement(q, None, unit, self._source) for q, unit in CARBON_QUANTITIES.items()]


class CodeCarbonMeter(Meter):
    """Energy and CO2 from CodeCarbon's ``OfflineEmissionsTracker``, one task per window.

    One tracker per meter is created (it probes the hardware: slow) and warmed up with a
    throw-away task at construction, outside any window. Each window is one
    ``start_task``/``stop_task``; the tracker itself is never ``start()``-ed, so no
    background measuring runs between windows. ``tracking_mode="process"`` (the default)
    counts this process's share when several runs share a machine (``--jobs 2``);
    ``attribution`` says what the numbers cover on this machine. ``emissions_csv``, when
    given, gets one row of CodeCarbon's fields per window.
    """

    nesting = 5

    def __init__(self, country_iso_code: str, *, tracking_mode: str = "process", emissions_csv: Path | None = None) -> None:
        self.country_iso_code = validate_country_iso_code(country_iso_code)
        if tracking_mode not in TRACKING_MODES:
            raise ValueError(f"tracking_mode must be one of {', '.join(TRACKING_MODES)}, got {tracking_mode!r}")
        from codecarbon import OfflineEmissionsTracker
        from codecarbon.core.emissions import Emissions
        from codecarbon.core.units import Energy
        from codecarbon.external.geography import GeoMetadata
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
        self.tracking_mode = tracking_mode
        self.emissions_csv = None if emissions_csv is None else Path(emissions_csv)
        self._tracker = OfflineEmissionsTracker(**tracker_kwargs(OfflineEmissionsTracker, self.country_iso_code, tracking_mode))
        self._tasks = 0
        self._phase = ""
        self._open = False
        self._error: str | None = None
        # Warm-up: hardware probe and emission-data loading happen here, not in the first window.
        self._tracker.start_task("warm-up")
        if self._tracker.stop_task() is None:
            self._source = f"{UNAVAILABLE}CodeCarbon tracker did not start (stop_task returned None)"
            self.attribution = "none"
            return
        self._source = "codecarbon_rapl" if rapl_read_by_codecarbon() else "codecarbon_estimate"
        self.attribution = f"{tracking_mode}: {_ATTRIBUTION[tracking_mode, self._source]}"

    def name_window(self, phase: str) -> None:
        self._phase = phase

    def rewind(self, windows: int) -> None:
        """Keep the first ``windows`` rows of emissions.csv (the windows the resumed run's totals hold)."""
        self._tasks = windows
        if self.emissions_csv is not None and self.emissions_csv.exists():
            rows = pd.read_csv(self.emissions_csv)
            kept = rows[rows["task_name"].str.removeprefix("window-").astype(int) <= windows]
            if len(kept) < len(rows):
                kept.to_csv(self.emissions_csv, index=False)

    def settings(self) -> dict[str, str]:
        return {"tracking_mode": self.tracking_mode, "attribution": self.attribution}

    def sources(self) -> dict[str, str]:
        return {
            "energy_kwh": self._source,
            "co2_g": self._source,
            "grid_intensity_g_per_kwh": self.intensity_source,
        }

    def start(self) -> None:
        self._open = True
        self._error = None
        if self._source.startswith(UNAVAILABLE):
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
        intensity = measured("grid_intensity_g_per_kwh", self.intensity_g_per_kwh, self.intensity_source)
        if self._source.startswith(UNAVAILABLE):
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
        if data is not None and self.emissions_csv is not None:
            append_emissions_row(
                self.emissions_csv, data, task=f"window-{self._tasks}", phase=self._phase, attribution=self.attribution
            )
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
                result.append(measured(quantity, value * scale, self._source))
        return result

    def close(self) -> None:
        if self._open:
            self.stop()


def append_emissions_row(path: Path, data: Any, *, task: str, phase: str, attribution: str) -> None:
    """Append one window's ``EmissionsData`` (CodeCarbon's own fields and units: kWh, W, s, kg) to ``path``,
    after the window's ``task_name`` and ``phase`` (a run's totals sum its search phases; "final" re-scores the answer)."""
    fields: Mapping[str, Any] = dataclasses.asdict(data) if dataclasses.is_dataclass(data) else dict(vars(data))
    row = {"task_name": task, "phase": phase, **fields, "attribution": attribution}
    path = Path(path)
    frame = pd.DataFrame([row])
    if path.exists():
        columns = list(pd.read_csv(path, nrows=0).columns)
        frame = frame.reindex(columns=columns + [c for c in frame.columns if c not in columns])
        if list(frame.columns) != columns:  # another CodeCarbon release added fields: rewrite with them
            pd.concat([pd.read_csv(path), frame]).to_csv(path, index=False)
            return
        frame.to_csv(path, mode="a", header=False, index=False)
    else:
        frame.to_csv(path, index=False)
