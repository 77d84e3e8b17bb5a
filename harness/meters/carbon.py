"""Energy and CO2 from CodeCarbon's offline tracker, with an explicit, validated country."""

from __future__ import annotations

import difflib
import logging
import math

from harness.meters.measurement import UNAVAILABLE, Measurement, Meter, measured, unavailable

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
            self._source = f"{UNAVAILABLE}CodeCarbon tracker did not start (stop_task returned None)"
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
