"""Plugins: modules the `pcfes` command imports so that they register searchers, supernets and datasets.

Two ways in, both naming a **module whose import registers** (with ``searchers.register_searcher``,
``supernets.register_supernet`` or the dataset registry), the pytest / flake8 convention:

- an installed package declares entry points in the groups ``pcfes.searchers``,
  ``pcfes.supernets`` or ``pcfes.datasets``; the entry point's value is a module, not an object::

      [project.entry-points."pcfes.searchers"]
      my = "my_pkg.searchers"

- ``pcfes --plugin MODULE`` (repeatable): a dotted module importable from the working directory,
  or a path to a ``.py`` file (imported under its file name's stem).

:func:`load` imports the installed entry points once per process, then each requested module
once; a module that fails to import is a :class:`PluginError` of one line naming it and its
error. Every plugin records what it registered, so :func:`origin` can say where a name came
from and run.json can record the plugin's version and source hash (``harness.provenance``).
`pcfes sweep` workers (local processes and Ray tasks) call :func:`load` with :func:`requested`
of the driver before a run, so they see the same names.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType

import searchers
import supernets
from harness.datasets import available_datasets

GROUPS = ("pcfes.searchers", "pcfes.supernets", "pcfes.datasets")
KINDS = ("searcher", "supernet", "dataset")
BUILT_IN = "built in"

_LISTERS: dict[str, Callable[[], Iterable[str]]] = {
    "searcher": searchers.available,
    "supernet": supernets.available,
    "dataset": available_datasets,
}


class PluginError(ImportError):
    """A plugin that could not be found or imported (the message is one line naming it)."""


@dataclass(frozen=True)
class Plugin:
    """One imported plugin module and what importing it registered."""

    module: str  # the module's name in sys.modules
    source: str  # the file it was imported from
    provides: tuple[tuple[str, str], ...]  # (kind, name) pairs it registered
    spec: str = ""  # what --plugin said (a resolved path for a file); "" for an entry point
    entry_point: str = ""  # "group:name" for an entry point
    distribution: str | None = None  # the installed package an entry point came from
    version: str | None = None

    @property
    def origin(self) -> str:
        """``name==version`` for a package, else the module's file."""
        if self.distribution:
            return f"{self.distribution}=={self.version}"
        return self.source

    def source_sha256(self) -> str:
        """SHA-256 of the module's source (of every ``.py`` file below a package's folder)."""
        path = Path(self.source)
        files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
        digest = hashlib.sha256()
        for file in files:
            digest.update(file.relative_to(path.parent).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
        return digest.hexdigest()


_entry_points_loaded = False
_plugins: list[Plugin] = []


def load(modules: Sequence[str] = ()) -> tuple[Plugin, ...]:
    """Import the installed entry points (once per process), then each of ``modules`` not yet imported."""
    global _entry_points_loaded
    if not _entry_points_loaded:
        _entry_points_loaded = True  # a failure is reported once, not retried on every call
        for group in GROUPS:
            for point in sorted(metadata.entry_points(group=group), key=lambda p: p.name):
                _load_entry_point(point)
    for spec in modules:
        key = _spec_key(spec)
        if all(p.spec != key for p in _plugins):
            _load_module(key)
    return loaded()


def loaded() -> tuple[Plugin, ...]:
    """The plugins imported in this process so far, in import order."""
    return tuple(_plugins)


def requested() -> tuple[str, ...]:
    """The ``--plugin`` modules loaded in this process (file paths resolved): what sweep workers must load too."""
    return tuple(p.spec for p in _plugins if p.spec)


def origin(kind: str, name: str) -> str:
    """Where a registered name came from: ``built in``, ``package==version`` or the plugin module's file."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    provider = provided_by(kind, name)
    return provider.origin if provider else BUILT_IN


def provided_by(kind: str, name: str) -> Plugin | None:
    """The plugin that registered ``name`` as a ``kind``, or None for a built-in name."""
    return next((p for p in _plugins if (kind, name) in p.provides), None)


def _snapshot() -> set[tuple[str, str]]:
    return {(kind, name) for kind, names in _LISTERS.items() for name in names()}


def _register(module: ModuleType, before: set[tuple[str, str]], **fields: str | None) -> None:
    provides = tuple(sorted(_snapshot() - before))
    _plugins.append(Plugin(module=module.__name__, source=str(module.__file__), provides=provides, **fields))


def _load_entry_point(point: metadata.EntryPoint) -> None:
    dist = getattr(point, "dist", None)
    name = dist.metadata["Name"] if dist is not None else None
    version = dist.version if dist is not None else None
    label = f"entry point {point.group}:{point.name} = {point.value!r}" + (f" of {name}=={version}" if name else "")
    try:
        module_name, attr = point.module, point.attr
    except AttributeError:  # importlib.metadata's parse of a value that is no "module[:object]"
        module_name, attr = "", None
    if attr or not module_name:
        raise PluginError(f"plugin {label} does not name a module; pcfes entry points name a module whose import registers, e.g. 'my_pkg.searchers'")
    before = _snapshot()
    module = _import(label, lambda: importlib.import_module(module_name))
    _register(module, before, entry_point=f"{point.group}:{point.name}", distribution=name, version=version)


def _spec_key(spec: str) -> str:
    """A ``.py`` path resolved (so worker processes find it from anywhere); a dotted name as given."""
    return str(Path(spec).resolve()) if spec.endswith(".py") else spec


def _load_module(spec: str) -> None:
    label = f"--plugin {spec}"
    before = _snapshot()
    if spec.endswith(".py"):
        module = _import(label, lambda: _import_file(Path(spec)))
    else:
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # the `pcfes` script, unlike `python -m`, does not put it there
        module = _import(label, lambda: importlib.import_module(spec))
    _register(module, before, spec=spec)


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise FileNotFoundError(f"no such file {path}")
    name = path.stem
    existing = sys.modules.get(name)
    if existing is not None:
        if getattr(existing, "__file__", None) and Path(existing.__file__).resolve() == path:
            return existing
        raise ImportError(f"a module named {name!r} is already imported from {getattr(existing, '__file__', None)}; rename the file")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path} as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # registered classes are then picklable by module name, as in a worker
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _import(label: str, do: Callable[[], ModuleType]) -> ModuleType:
    try:
        return do()
    except Exception as exc:  # noqa: BLE001 - any error inside a plugin becomes one line naming it
        message = " ".join(str(exc).split()) or "(no message)"
        raise PluginError(f"plugin {label} failed to load: {type(exc).__name__}: {message}") from None
