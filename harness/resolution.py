"""Resolution: a user's ``RunConfig`` made into the ``ResolvedRun`` that everything downstream runs.

Resolution fills in what the registries declare (the supernet a config names, the searcher's
presets for that supernet's family, the space's MAC limit) and names the run once. Only a
``ResolvedRun`` reaches a workspace, a runner, a matrix or a sweep, so no path can run a config
whose defaults are still open, nor name one run two ways (the id of a config before resolution
hashed its open defaults, which is why the id is only ever taken here).

Light on purpose (registries and the config only): the CLI resolves before torch loads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import searchers
import supernets
from harness.config import RunConfig, check_run_id
from harness.run_record import RunSetup


def supernet_name(config: RunConfig) -> str:
    """The supernet a config names ("" is the default supernet)."""
    return config.supernet or supernets.DEFAULT_SUPERNET


def mac_limit(config: RunConfig) -> int | None:
    """The MACs-per-image limit a config searches under (None: unconstrained); "auto" is the space's registered one."""
    if config.mac_limit == "auto":
        registered = supernets.supernet_entry(supernet_name(config)).mac_limit
        return registered.macs if registered else None
    return None if config.mac_limit == "none" else config.mac_limit


def resolved_config(config: RunConfig) -> RunConfig:
    """``config`` with its open defaults filled in (supernet, the searcher's presets for its family, MAC limit)."""
    name = supernet_name(config)
    preset = searchers.searcher_entry(config.searcher).preset(supernets.supernet_entry(name).family)
    params = dict(config.searcher_params)
    for key, value in preset.items():
        params.setdefault(key, value)
    limit = mac_limit(config)
    return dataclasses.replace(config, supernet=name, searcher_params=params, mac_limit="none" if limit is None else limit)


@dataclass(frozen=True)
class ResolvedRun:
    """A run as it is run: its config with nothing left open, and its one id (what run.json records
    and, unless a caller names another folder, the name of its folder).

    Made by ``resolve`` (a new run) or ``recorded_run`` (a run already on disk); building one
    from a config that resolution would still change is an error.
    """

    config: RunConfig
    run_id: str

    def __post_init__(self) -> None:
        if resolved_config(self.config) != self.config:
            raise ValueError("this RunConfig still has open defaults; make its run with harness.resolution.resolve(config)")
        check_run_id(self.run_id)
        if self.config.run_id and self.config.run_id != self.run_id:
            raise ValueError(f"run id {self.run_id!r} differs from the config's run_id {self.config.run_id!r}")

    @property
    def mac_limit(self) -> int | None:
        return mac_limit(self.config)


def resolve(config: RunConfig) -> ResolvedRun:
    """The run of ``config``: defaults filled in, named by ``config.run_id`` or by supernet, searcher, seed and config hash."""
    if isinstance(config, ResolvedRun):
        raise TypeError("resolve takes a RunConfig; this run is resolved already")
    full = resolved_config(config)
    return ResolvedRun(full, full.run_id or f"{full.supernet}_{full.searcher}_s{full.seed}_{full.hash()[:8]}")


def recorded_run(setup: RunSetup, *, at_recorded_checkpoint: bool = False) -> ResolvedRun:
    """The run a run.json's setup records, under the id it was recorded with.

    Its config is the one it was scored with (``protocol.val_size`` 0 already replaced by the
    split's size), so its hash can differ from the one in its id; the recorded id stays the id.
    ``at_recorded_checkpoint``: reading its weights from the absolute checkpoint path it recorded,
    so it opens from any working directory (what it records keeps the path it was given); runs
    recorded before that path existed keep the config's.
    """
    config = setup.config
    if at_recorded_checkpoint:
        config = dataclasses.replace(config, checkpoint=setup.checkpoint_path or config.checkpoint)
    return ResolvedRun(resolved_config(config), setup.run_id)


def require_resolved(run: object, where: str) -> ResolvedRun:
    """``run`` if it is a ``ResolvedRun``; a plain ``RunConfig`` (or anything else) is refused, naming ``where``."""
    if not isinstance(run, ResolvedRun):
        raise TypeError(
            f"{where} takes a ResolvedRun, got {type(run).__name__}; resolve the config first "
            "(harness.resolution.resolve(config))"
        )
    return run
