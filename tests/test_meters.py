"""Meters: scripted NVML, fake RAPL sysfs, real clocks, offline CodeCarbon, MeterSet sums and state."""

from __future__ import annotations

import inspect
import json
import math
import socket
import sys
import time
from pathlib import Path

import pytest
import torch

import pandas as pd

from harness import meters as M
from harness.meters import carbon
from harness.meters import Measurement, MeterSet


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


# ---------------------------------------------------------------- NVML (scripted fake pynvml)


class FakeNVMLError(Exception):
    pass


class FakeNotSupported(FakeNVMLError):
    pass


class FakeNvml:
    """The pynvml calls the meter makes, scripted; ``energy_mj=None`` means no energy counter."""

    NVMLError = FakeNVMLError
    NVMLError_NotSupported = FakeNotSupported

    def __init__(self, energy_mj=None, power_mw=150_000, init_error=None, events=None):
        self.energy = None if energy_mj is None else list(energy_mj)
        self.power_mw = power_mw
        self.init_error = init_error
        self.events = [] if events is None else events
        self.power_calls = 0

    def nvmlInit(self):
        if self.init_error is not None:
            raise FakeNVMLError(self.init_error)
        self.events.append("init")

    def nvmlShutdown(self):
        self.events.append("shutdown")

    def nvmlDeviceGetHandleByIndex(self, index):
        if index != 0:
            raise FakeNVMLError("Invalid Argument")
        return "handle-0"

    def nvmlDeviceGetHandleByUUID(self, uuid):
        if uuid != "GPU-1234":
            raise FakeNVMLError("Not Found")
        return "handle-uuid"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if self.energy is None:
            raise FakeNotSupported("Not Supported")
        self.events.append("energy")
        value = self.energy.pop(0)
        if isinstance(value, Exception):
            raise value
        return value

    def nvmlDeviceGetPowerUsage(self, handle):
        self.power_calls += 1
        return self.power_mw


def test_nvml_counter_readings_give_joules_read_after_synchronize():
    events: list[str] = []
    fake = FakeNvml(energy_mj=[7, 1_000, 3_500, 3_500, 3_750], events=events)
    meter = M.NvmlEnergyMeter(nvml=fake, synchronize=lambda: events.append("sync"))
    assert meter.sources() == {"gpu_energy_j": "nvml_counter"}
    meter.start()
    assert meter.stop() == [Measurement("gpu_energy_j", 2.5, "J", "nvml_counter")]
    meter.start()
    assert meter.stop() == [Measurement("gpu_energy_j", 0.25, "J", "nvml_counter")]
    # init + probe, then every reading directly follows a device synchronise
    assert events == ["init", "energy"] + ["sync", "energy"] * 4
    meter.close()
    assert events[-1] == "shutdown"


def test_nvml_counter_wraps_around_unsigned_64_bit():
    fake = FakeNvml(energy_mj=[0, 2**64 - 500, 1_500])
    meter = M.NvmlEnergyMeter(nvml=fake)
    meter.start()
    assert meter.stop()[0].value == 2.0


def test_nvml_device_by_uuid_and_missing_device():
    assert M.NvmlEnergyMeter(nvml=FakeNvml(energy_mj=[0]), uuid="GPU-1234").sources() == {
        "gpu_energy_j": "nvml_counter"
    }
    fake = FakeNvml(energy_mj=[0])
    meter = M.NvmlEnergyMeter(nvml=fake, uuid="GPU-9999")
    assert meter.sources()["gpu_energy_j"] == "unavailable: no NVML device with uuid GPU-9999: Not Found"
    assert fake.events == ["init", "shutdown"]


def test_nvml_not_supported_falls_back_to_power_integral():
    fake = FakeNvml(energy_mj=None, power_mw=150_000)
    meter = M.NvmlEnergyMeter(nvml=fake, power_interval_s=0.01)
    assert meter.sources() == {"gpu_energy_j": "nvml_power_integral"}
    t0 = time.perf_counter()
    meter.start()
    time.sleep(0.1)
    (m,) = meter.stop()
    outer = time.perf_counter() - t0
    assert (m.quantity, m.unit, m.source) == ("gpu_energy_j", "J", "nvml_power_integral")
    # constant 150 W integrated over the window: between the body time and the outer time
    assert 150 * 0.1 <= m.value <= 150 * outer
    assert fake.power_calls >= 5  # probe, window start, >= 2 thread samples, window stop
    calls = fake.power_calls
    time.sleep(0.05)
    assert fake.power_calls == calls  # the sampling thread ended with the window


def test_nvml_init_failure_is_unavailable_with_reason():
    meter = M.NvmlEnergyMeter(nvml=FakeNvml(init_error="Driver Not Loaded"))
    reason = "unavailable: NVML init failed: Driver Not Loaded"
    assert meter.sources() == {"gpu_energy_j": reason}
    meter.start()
    assert meter.stop() == [Measurement("gpu_energy_j", None, "J", reason)]


def test_nvml_missing_library_is_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    source = M.NvmlEnergyMeter().sources()["gpu_energy_j"]
    assert source.startswith("unavailable: pynvml not importable (install nvidia-ml-py)")


def test_nvml_failed_read_in_a_window_is_unavailable_not_zero():
    meter = M.NvmlEnergyMeter(nvml=FakeNvml(energy_mj=[0, 10, FakeNVMLError("GPU is lost")]))
    meter.start()
    assert meter.stop() == [
        Measurement("gpu_energy_j", None, "J", "unavailable: NVML reading at window stop failed: GPU is lost")
    ]


# ---------------------------------------------------------------- RAPL (fake sysfs tree)


def _domain(path: Path, name: str, energy_uj: int, max_uj: int = 1_000_000_000) -> Path:
    path.mkdir(parents=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path


@pytest.fixture()
def rapl_tree(tmp_path):
    root = tmp_path / "powercap"
    (root / "intel-rapl").mkdir(parents=True)  # the control type, no counter
    pkg0 = _domain(root / "intel-rapl:0", "package-0", 1_000_000)
    pkg1 = _domain(root / "intel-rapl:1", "package-1", 5_000_000)
    _domain(root / "intel-rapl:0" / "intel-rapl:0:0", "core", 100)
    _domain(root / "intel-rapl:0:0", "core", 100)  # sysfs also lists subdomains at the top level
    _domain(root / "intel-rapl:2", "psys", 0)
    _domain(root / "intel-rapl-mmio:0", "package-0", 0)  # MMIO view of package 0 on some Intel CPUs
    return root, pkg0, pkg1


def test_rapl_sums_packages_and_ignores_subdomains(rapl_tree):
    root, pkg0, pkg1 = rapl_tree
    meter = M.RaplMeter(root)
    assert meter.sources() == {"cpu_energy_j": "rapl"}
    meter.start()
    (pkg0 / "energy_uj").write_text("3000000\n")
    (pkg1 / "energy_uj").write_text("5500000\n")
    for sub in ("intel-rapl:0:0", "intel-rapl:0/intel-rapl:0:0", "intel-rapl:2", "intel-rapl-mmio:0"):
        (root / sub / "energy_uj").write_text("999999999\n")
    assert meter.stop() == [Measurement("cpu_energy_j", 2.5, "J", "rapl")]


def test_rapl_wraps_with_max_energy_range(tmp_path):
    pkg = _domain(tmp_path / "intel-rapl:0", "package-0", 999_000_000, max_uj=1_000_000_000)
    meter = M.RaplMeter(tmp_path)
    meter.start()
    (pkg / "energy_uj").write_text("500000\n")
    assert meter.stop()[0].value == 1.5


def test_rapl_unreadable_or_absent_is_unavailable(rapl_tree, monkeypatch, tmp_path):
    root, pkg0, _ = rapl_tree
    original = Path.read_text

    def deny(self, *args, **kwargs):
        if self == pkg0 / "energy_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", deny)
    meter = M.RaplMeter(root)
    assert meter.sources()["cpu_energy_j"] == (
        f"unavailable: cannot read RAPL under {root}: [Errno 13] Permission denied: '{pkg0 / 'energy_uj'}'"
    )
    meter.start()
    assert meter.stop()[0].value is None
    monkeypatch.undo()

    assert M.RaplMeter(tmp_path / "nowhere").sources()["cpu_energy_j"] == (
        f"unavailable: no RAPL powercap tree at {tmp_path / 'nowhere'}"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert M.RaplMeter(empty).sources()["cpu_energy_j"] == f"unavailable: no intel-rapl package domain under {empty}"


def test_rapl_counter_vanishing_mid_run_is_unavailable(rapl_tree):
    root, pkg0, _ = rapl_tree
    meter = M.RaplMeter(root)
    meter.start()
    (pkg0 / "energy_uj").unlink()
    (m,) = meter.stop()
    assert m.value is None and m.source.startswith("unavailable: RAPL read at window stop failed: ")


# ---------------------------------------------------------------- wall and CPU clocks


def test_busy_loop_raises_cpu_time_and_sleep_only_wall_time():
    wall, cpu = M.WallMeter(), M.CpuTimeMeter()
    wall.start(), cpu.start()
    _busy(0.1)
    (c_busy,), (w_busy,) = cpu.stop(), wall.stop()
    wall.start(), cpu.start()
    time.sleep(0.1)
    (c_sleep,), (w_sleep,) = cpu.stop(), wall.stop()
    assert (w_busy.source, c_busy.source, w_busy.unit) == ("perf_counter_ns", "process_time_ns", "s")
    assert w_busy.value >= 0.1 and c_busy.value > 0.02  # a shared core may be taken away for a while
    assert w_sleep.value >= 0.1 and c_sleep.value < w_sleep.value / 2


def test_stop_without_start_raises():
    with pytest.raises(RuntimeError, match=r"WallMeter.stop\(\) called without start\(\)"):
        M.WallMeter().stop()


def test_cuda_event_meter_on_cpu_is_unavailable():
    meter = M.CudaEventMeter("cpu")
    meter.start()
    assert meter.stop() == [Measurement("gpu_s", None, "s", "unavailable: run device is cpu, not CUDA")]


# ---------------------------------------------------------------- CodeCarbon (offline)


def test_codecarbon_rejects_unknown_country_code():
    with pytest.raises(ValueError, match=r"unknown country ISO code 'XYZ'.*USA, FRA, DEU"):
        M.CodeCarbonMeter("XYZ")
    with pytest.raises(ValueError, match=r"'FRANCE'.*did you mean FRA"):
        M.validate_country_iso_code("FRANCE")
    assert M.validate_country_iso_code(" fra ") == "FRA"


@pytest.fixture(scope="module")
def carbon_meter():
    meter = M.CodeCarbonMeter("FRA")
    yield meter
    meter.close()


def test_codecarbon_offline_window(tmp_path, monkeypatch, capfd):
    from codecarbon.input import DataSource

    monkeypatch.chdir(tmp_path)
    connects: list[object] = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: connects.append(address))
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: connects.append(address))

    meter = M.CodeCarbonMeter("FRA", emissions_csv=tmp_path / "emissions.csv")
    meter.name_window("evaluate")
    meter.start()
    _busy(0.05)
    first = {m.quantity: m for m in meter.stop()}
    meter.start()
    _busy(0.05)
    window = {m.quantity: m for m in meter.stop()}
    meter.close()
    energy, co2, intensity = window["energy_kwh"], window["co2_g"], window["grid_intensity_g_per_kwh"]

    label = "codecarbon_rapl" if carbon.rapl_read_by_codecarbon() else "codecarbon_estimate"
    assert (energy.unit, energy.source) == ("kWh", label)
    assert (co2.unit, co2.source) == ("g", label)
    assert energy.value > 0 and co2.value > 0
    expected = DataSource().get_global_energy_mix_data()["FRA"]["carbon_intensity"]
    assert intensity == Measurement("grid_intensity_g_per_kwh", pytest.approx(expected), "g/kWh", intensity.source)
    assert intensity.source == "codecarbon_energy_mix:FRA:2023"
    assert co2.value == pytest.approx(energy.value * intensity.value, rel=1e-9)
    assert list(tmp_path.iterdir()) == [tmp_path / "emissions.csv"]  # ours; CodeCarbon writes nothing
    # CodeCarbon's own fields, one row per window (not the warm-up), in its units (kWh, kg, W, s).
    rows = pd.read_csv(tmp_path / "emissions.csv")
    assert list(rows["task_name"]) == ["window-1", "window-2"] and list(rows["phase"].fillna("")) == ["evaluate", "evaluate"]
    for column in ("cpu_energy", "ram_energy", "gpu_energy", "cpu_power", "ram_power", "gpu_power", "duration",
                   "tracking_mode", "pue", "cpu_model", "energy_consumed", "emissions", "codecarbon_version"):
        assert column in rows.columns, column
    assert (rows["tracking_mode"] == "process").all() and (rows["pue"] == 1.0).all()
    assert list(rows["energy_consumed"]) == pytest.approx([first["energy_kwh"].value, energy.value], rel=1e-12)
    assert (rows["duration"] > 0.04).all()
    assert meter.settings() == {"tracking_mode": "process", "attribution": rows["attribution"].iloc[0]}
    assert rows["attribution"].iloc[0].startswith("process: ")
    assert connects == []
    assert "codecarbon" not in capfd.readouterr().err


def test_codecarbon_bad_result_is_unavailable_never_zero(carbon_meter, monkeypatch):
    monkeypatch.setattr(carbon_meter._tracker, "stop_task", lambda: None)
    carbon_meter.start()
    got = {m.quantity: m for m in carbon_meter.stop()}
    assert got["co2_g"] == Measurement("co2_g", None, "g", "unavailable: CodeCarbon stop_task returned None")
    assert got["energy_kwh"].value is None

    class NanData:
        emissions = math.nan
        energy_consumed = 1e-6

    monkeypatch.setattr(carbon_meter._tracker, "stop_task", lambda: NanData())
    carbon_meter.start()
    got = {m.quantity: m for m in carbon_meter.stop()}
    assert got["co2_g"] == Measurement("co2_g", None, "g", "unavailable: CodeCarbon returned nan")
    assert got["energy_kwh"].value == 1e-6


# ---------------------------------------------------------------- MeterSet


class Scripted(M.Meter):
    """Returns scripted values (None = unavailable) and logs its start/stop calls."""

    def __init__(self, quantity, values, nesting=1, source="fake", log=None, delay_s=0.0):
        self.quantity, self.values, self.nesting, self.source = quantity, list(values), nesting, source
        self.log = [] if log is None else log
        self.delay_s = delay_s

    def sources(self):
        return {self.quantity: self.source}

    def start(self):
        self.log.append(f"start {self.quantity}")
        time.sleep(self.delay_s)

    def stop(self):
        self.log.append(f"stop {self.quantity}")
        time.sleep(self.delay_s)
        value = self.values.pop(0)
        if value is None:
            return [M.unavailable(self.quantity, "sensor gone")]
        return [Measurement(self.quantity, value, M.QUANTITY_UNITS[self.quantity], self.source)]


def _run(meters: MeterSet, *phases: str) -> None:
    for phase in phases:
        with meters.window(phase):
            pass


def test_meterset_accumulates_per_phase_and_keeps_unavailable():
    ms = MeterSet([Scripted("wall_s", [0.5, 0.25, 1.0, 2.0]), Scripted("cpu_s", [0.5, None, 1.0, 2.0])])
    _run(ms, "evaluate", "evaluate", "search")
    totals = ms.totals()
    assert totals["evaluate"]["wall_s"] == Measurement("wall_s", 0.75, "s", "fake")
    assert totals["evaluate"]["cpu_s"] == Measurement("cpu_s", None, "s", "unavailable: sensor gone")
    assert totals["search"]["cpu_s"] == Measurement("cpu_s", 1.0, "s", "fake")
    grand = ms.grand_totals()
    assert grand["wall_s"].value == 1.75 and grand["cpu_s"].value is None
    assert ms.last["wall_s"].value == 1.0
    assert set(ms.last) == set(M.QUANTITY_UNITS)
    assert ms.last["co2_g"] == M.unavailable("co2_g", "no meter in this set measures it")


def test_meterset_nests_cheap_meters_innermost_and_counts_overhead():
    log: list[str] = []
    slow = Scripted("co2_g", [1.0], nesting=5, log=log, delay_s=0.02)
    inner = Scripted("gpu_s", [1.0], nesting=0, log=log)
    ms = MeterSet([inner, M.WallMeter(), slow])
    with ms.window("cache"):
        log.append("body")
    assert log == ["start co2_g", "start gpu_s", "body", "stop gpu_s", "stop co2_g"]
    assert ms.overhead_s >= 0.04
    assert ms.last["wall_s"].value < 0.01  # the slow outer meter is outside the wall window
    assert [type(m).__name__ for m in ms.meters] == ["Scripted", "WallMeter", "Scripted"]


def test_meterset_energy_rule():
    measured = MeterSet(
        [
            Scripted("gpu_energy_j", [10.0, None], source="nvml_counter"),
            Scripted("cpu_energy_j", [2.5, 1.0], source="rapl"),
            Scripted("energy_kwh", [1e-6, 2e-6], source="codecarbon_estimate"),
        ]
    )
    assert measured.sources()["energy_j"] == "nvml_counter+rapl"
    _run(measured, "evaluate")
    assert measured.last["energy_j"] == Measurement("energy_j", 12.5, "J", "nvml_counter+rapl")
    _run(measured, "evaluate")  # GPU counter lost: CodeCarbon's estimate takes over, labelled
    assert measured.last["energy_j"] == Measurement("energy_j", 2e-6 * 3.6e6, "J", "codecarbon_estimate")
    assert measured.totals()["evaluate"]["energy_j"] == Measurement(
        "energy_j", 12.5 + 2e-6 * 3.6e6, "J", "mixed(codecarbon_estimate|nvml_counter+rapl)"
    )
    nothing = MeterSet([Scripted("cpu_energy_j", [None]), Scripted("energy_kwh", [None])])
    _run(nothing, "search")
    assert nothing.last["energy_j"] == M.unavailable(
        "energy_j", "cpu_energy_j: sensor gone; energy_kwh: sensor gone"
    )


def test_meterset_state_dict_round_trip_adds_to_previous_time():
    ms = MeterSet([Scripted("wall_s", [1.5]), Scripted("cpu_s", [None])])
    _run(ms, "evaluate")
    state = json.loads(json.dumps(ms.state_dict()))
    resumed = MeterSet([Scripted("wall_s", [0.5]), Scripted("cpu_s", [1.0])])
    resumed.load_state_dict(state)
    assert resumed.totals() == ms.totals() and resumed.overhead_s == ms.overhead_s
    _run(resumed, "evaluate")
    assert resumed.totals()["evaluate"]["wall_s"].value == 2.0
    assert resumed.totals()["evaluate"]["cpu_s"].value is None  # lost before the interruption: stays lost
    assert resumed.overhead_s > ms.overhead_s
    with pytest.raises(ValueError, match="meter state version 0 is not 1"):
        resumed.load_state_dict({**state, "version": 0})


def test_meterset_guards():
    with pytest.raises(ValueError, match="'wall_s' measured by both WallMeter and Scripted"):
        MeterSet([M.WallMeter(), Scripted("wall_s", [])])
    ms = MeterSet([Scripted("wall_s", [1.0, 2.0])])
    with pytest.raises(RuntimeError, match=r"window\('search'\) opened inside window\('cache'\)"):
        with ms.window("cache"):
            with ms.window("search"):
                pass
    with pytest.raises(KeyError):
        with ms.window("evaluate"):
            raise KeyError("boom")
    assert ms.totals()["evaluate"]["wall_s"].value == 2.0  # a failed phase's cost is still counted


def test_combine_rules():
    a = Measurement("grid_intensity_g_per_kwh", 56.0, "g/kWh", "codecarbon_energy_mix:FRA:2023")
    assert M.combine(a, a) == a  # intensity is not summed
    b = Measurement("grid_intensity_g_per_kwh", 380.0, "g/kWh", "codecarbon_energy_mix:DEU:2023")
    assert M.combine(a, b).source == "unavailable: differs between windows (56.0 vs 380.0 g/kWh)"
    with pytest.raises(ValueError, match=r"cannot combine wall_s \[s\] with cpu_s \[s\]"):
        M.combine(Measurement("wall_s", 1.0, "s", "x"), Measurement("cpu_s", 1.0, "s", "x"))


def test_measurement_never_a_silent_zero():
    with pytest.raises(ValueError, match="value must be None exactly when"):
        Measurement("wall_s", 0.0, "s", "unavailable: no clock")
    with pytest.raises(ValueError, match="value must be None exactly when"):
        Measurement("wall_s", None, "s", "perf_counter_ns")


# ---------------------------------------------------------------- default set


def test_tracker_gets_only_the_settings_its_codecarbon_release_accepts():
    """Feature detection down to pyproject's floor: 2.7 has save_to_* and co2_signal_api_token, no
    output_methods or forced intensity; 3.3 has output_methods and electricitymaps_api_token."""

    class Tracker27:
        def __init__(self, project_name=None, save_to_file=None, save_to_api=None, save_to_logger=None,
                     save_to_prometheus=None, save_to_logfire=None, co2_signal_api_token=None, emissions_endpoint=None,
                     tracking_mode=None, log_level=None, pue=None, allow_multiple_runs=None):
            pass

    class Offline27(Tracker27):
        def __init__(self, *args, country_iso_code=None, region=None, cloud_provider=None, cloud_region=None,
                     country_2letter_iso_code=None, **kwargs):
            super().__init__(*args, **kwargs)

    old = carbon.tracker_kwargs(Offline27, "FRA", "process")
    assert old == {
        "country_iso_code": "FRA", "region": None, "cloud_provider": None, "cloud_region": None,
        "country_2letter_iso_code": None, "co2_signal_api_token": None, "emissions_endpoint": None,
        "save_to_file": False, "save_to_api": False, "save_to_logger": False, "save_to_prometheus": False,
        "save_to_logfire": False, "allow_multiple_runs": True, "tracking_mode": "process", "pue": 1.0, "log_level": "error",
    }
    from codecarbon import OfflineEmissionsTracker

    new = carbon.tracker_kwargs(OfflineEmissionsTracker, "FRA", "machine")
    accepted = set(inspect.signature(OfflineEmissionsTracker.__init__).parameters)
    if "output_methods" in accepted:  # 3.2.9 and later: one switch for every output
        assert new["output_methods"] == [] and not any(k.startswith("save_to_") for k in new)
    assert new["tracking_mode"] == "machine" and new["allow_multiple_runs"] is True


def test_codecarbon_off_or_missing_is_unavailable_with_the_reason(monkeypatch):
    ms = M.default_meters("cpu", "FRA", codecarbon=False)
    _run(ms, "evaluate")
    for quantity in ("energy_kwh", "co2_g", "grid_intensity_g_per_kwh"):
        assert ms.last[quantity] == Measurement(quantity, None, ms.last[quantity].unit, f"unavailable: {M.meter_set.CARBON_OFF}")
    assert ms.settings() == {}
    monkeypatch.setattr(carbon.importlib.util, "find_spec", lambda name: None)
    assert M.default_meters("cpu", "FRA").sources()["co2_g"] == (
        "unavailable: codecarbon is not installed (pip install codecarbon, or pass --no-carbon)"
    )


def test_default_meters_cpu():
    ms = M.default_meters("cpu", "FRA", codecarbon=False)
    assert [type(m).__name__ for m in ms.meters] == ["UnavailableCarbonMeter", "RaplMeter", "CpuTimeMeter", "WallMeter"]
    _run(ms, "evaluate")
    assert ms.last["wall_s"].available and ms.last["cpu_s"].available
    assert ms.sources()["gpu_s"] == "unavailable: no meter in this set measures it"
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda\\[:i\\]', got 'meta'"):
        M.default_meters("meta", "FRA")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the labels of a machine without CUDA")
def test_default_meters_cuda_without_cuda_is_labelled_unavailable():
    ms = M.default_meters("cuda", "FRA", codecarbon=False)
    assert ms.sources()["gpu_s"] == "unavailable: CUDA not available"
    assert ms.sources()["gpu_energy_j"].startswith("unavailable: ")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_default_meters_on_a_gpu_measure_gpu_time_and_energy():
    ms = M.default_meters("cuda:0", "USA")
    x = torch.randn(4096, 4096, device="cuda:0")
    with ms.window("evaluate"):
        for _ in range(50):
            x = x @ x
            x = x / x.norm()
    last = ms.last
    assert last["gpu_s"].source == "cuda_events" and last["gpu_s"].value > 0
    assert last["gpu_s"].value <= last["wall_s"].value
    assert last["gpu_energy_j"].source in ("nvml_counter", "nvml_power_integral")
    assert last["gpu_energy_j"].value > 0
    assert last["energy_j"].available and last["co2_g"].available
    ms.close()
