"""The project resource: the config file, the data store and the landing zone, as one typed resource."""

from __future__ import annotations

import json

import dagster as dg
from pydantic import PrivateAttr

from robodata.config import ProjectConfig, load_config
from robodata.landing import LandingZone, landing_zone
from robodata.storage import DataStore


class ProjectResource(dg.ConfigurableResource):
    """Where robodata's config lives; everything else (store, landing zone, tier settings) comes from it.

    ``config_path`` empty means: ``$ROBODATA_CONFIG``, else ``./robodata.yaml``, else the embedded defaults.
    ``overrides_json`` holds ``--set key=value`` style overrides (launchpad-friendly).
    """

    config_path: str = ""
    overrides_json: str = "{}"
    _resolved: ProjectConfig | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Resolve the config once when a run (or a sensor tick) starts; every access in it sees that one.
        A run the daemon launched is tagged with its run worker (see :func:`record_run_worker`)."""
        self._resolved = load_config(self.config_path or None, json.loads(self.overrides_json or "{}"))
        record_run_worker(context)

    @property
    def config(self) -> ProjectConfig:
        if self._resolved is not None:
            return self._resolved
        # Outside a run (a direct call on the definitions' instance): the environment may have changed since
        # the last call, so nothing is cached here.
        return load_config(self.config_path or None, json.loads(self.overrides_json or "{}"))

    def store(self) -> DataStore:
        return DataStore(self.config.storage_url)

    def landing(self) -> LandingZone:
        return landing_zone(self.config)


def default_project() -> ProjectResource:
    """The config file is resolved when a run starts ($ROBODATA_CONFIG, ./robodata.yaml, embedded defaults)."""
    return ProjectResource()


def record_run_worker(context: dg.InitResourceContext) -> None:
    """Tag a daemon-launched run with the process that executes it (its run worker: the code server's child
    this process descends from), as CLI runs are tagged: a run whose worker died (killed, out of memory) is
    then ended and its pool slots freed by the next sensor tick or ``robodata doctor``
    (``runs.sweep_dead_runs``); Dagster's default run launcher has no worker health check of its own."""
    run = getattr(context, "dagster_run", None)
    instance = getattr(context, "instance", None)
    if run is None or instance is None or "robodata/owner" in (run.tags or {}):
        return
    import psutil

    from robodata.owner import Owner, host_id

    try:
        p = psutil.Process()
        while (parent := p.parent()) is not None and "grpc" not in " ".join(parent.cmdline()):
            p = parent
        if parent is None:
            return  # not under a code server (a test's in-process run): nothing to record
        instance.add_run_tags(run.run_id, {"robodata/owner": Owner(host_id(), p.pid, int(p.create_time())).token()})
    except (psutil.Error, Exception):  # noqa: BLE001 - a missing tag only means no clean-up for this run
        return
