"""Time, energy and CO2 meters that wrap the runner's phases (DESIGN.md, "Runner and meters").

One module per meter (``clock``, ``cuda``, ``nvml``, ``rapl``, ``carbon``) beside the
``Measurement`` type (``measurement``) and the ``MeterSet`` that runs them (``meter_set``).

A ``Meter`` is started and stopped around one window and returns ``Measurement`` s, each
with a value, a unit and the ``source`` it came from. A meter that cannot measure returns
``value=None`` with ``source="unavailable: <reason>"``: never a silent zero. Sums keep that
rule: a total that includes an unavailable window is unavailable.

``MeterSet.window(phase)`` runs all meters around one phase, returns that window's measurements
(``Window.measurements``, filled when the block exits) and accumulates per-phase sums.
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

from harness.meters.carbon import CodeCarbonMeter, UnavailableCarbonMeter, codecarbon_missing, validate_country_iso_code
from harness.meters.clock import CpuTimeMeter, WallMeter
from harness.meters.cuda import CudaEventMeter, cuda_synchronizer
from harness.meters.measurement import QUANTITY_UNITS, UNAVAILABLE, Measurement, Meter, best_energy, combine, unavailable
from harness.meters.meter_set import MeterSet, Window, default_meters
from harness.meters.nvml import NvmlEnergyMeter
from harness.meters.rapl import RaplMeter

__all__ = [
    "QUANTITY_UNITS",
    "UNAVAILABLE",
    "CodeCarbonMeter",
    "UnavailableCarbonMeter",
    "CpuTimeMeter",
    "CudaEventMeter",
    "Measurement",
    "Meter",
    "MeterSet",
    "NvmlEnergyMeter",
    "RaplMeter",
    "WallMeter",
    "Window",
    "best_energy",
    "combine",
    "cuda_synchronizer",
    "default_meters",
    "unavailable",
    "codecarbon_missing",
    "validate_country_iso_code",
]
