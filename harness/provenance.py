"""Where a run happened: package versions, git commit + dirty flag, machine and device."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from harness import plugins

# The checkout this package runs from (an editable install or a clone); a wheel install has none of its files.
REPO_ROOT = Path(__file__).resolve().parent.parent


def versions() -> dict[str, Any]:
    """Versions of python and the packages that change results or measurements, plus the loaded plugins."""
    out: dict[str, Any] = {"python": platform.python_version()}
    for dist in ("pcfes-bench", "torch", "numpy", "pandas", "codecarbon", "nvidia-ml-py"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    if plugins.loaded():
        out["plugins"] = plugin_versions()
    return out


def plugin_versions() -> list[dict[str, Any]]:
    """Each loaded plugin: its module, package and version (entry points), source hash and the names it registered."""
    return [
        {
            "module": p.module,
            "distribution": p.distribution,
            "version": p.version,
            "source_sha256": p.source_sha256(),
            "provides": [f"{kind}:{name}" for kind, name in p.provides],
        }
        for p in plugins.loaded()
    ]


def git_state(repo: Path = REPO_ROOT) -> dict[str, Any]:
    """Commit and dirty flag of the checkout the code runs from (None outside a checkout)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """Host facts that make timings comparable (or not)."""
    import torch

    try:
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1)
    except (ValueError, OSError, AttributeError):
        memory_gb = None
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gb": memory_gb,
        "python_executable": sys.executable,
    }


def device_info(device: str) -> dict[str, Any]:
    """Type and name of the evaluation device."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return {"type": "cuda", "index": index, "name": torch.cuda.get_device_name(index)}
    return {"type": dev.type, "name": _cpu_model()}


def fingerprint() -> str:
    """A short key for 'the same machine' (timing baselines are only compared on equal keys)."""
    import torch

    info = machine()
    return f"{info['cpu']}|{info['cpu_count']}cpu|{info['memory_gb']}GB|torch{torch.__version__}"
