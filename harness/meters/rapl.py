"""CPU package energy from Linux powercap RAPL counters."""

from __future__ import annotations

import re
from pathlib import Path

from harness.meters.measurement import UNAVAILABLE, Measurement, Meter, measured, unavailable

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
            return f"{UNAVAILABLE}no RAPL powercap tree at {self._root}"
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
            return f"{UNAVAILABLE}cannot read RAPL under {self._root}: {exc}"
        if not self._domains:
            return f"{UNAVAILABLE}no intel-rapl package domain under {self._root}"
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
        return [measured("cpu_energy_j", total_uj / 1e6, self._source)]
