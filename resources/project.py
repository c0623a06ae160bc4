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
        """Resolve the config once when a run (or a sensor tick) starts; every access in it sees that one."""
        self._resolved = load_config(self.config_path or None, json.loads(self.overrides_json or "{}"))

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
