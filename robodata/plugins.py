"""Plugins: datasources, stages, validators and metrics registered by other packages through entry points.

A plugin package declares, in its own ``pyproject.toml``::

    [project.entry-points."robodata.stages"]
    smooth_actions = "my_plugin:SmoothActions"

and robodata finds it by name (``stages: [{type: smooth_actions}]`` in a pipeline YAML, or
``robodata.plugins.get("stages", "smooth_actions")``) in both runners. Built-in names are registered the same
way (in robodata's own distribution), so a plugin can neither shadow nor be shadowed silently: two
providers of one name are an error naming both.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from robodata.errors import RobodataError

GROUPS = {
    "datasources": "robodata.datasources",
    "stages": "robodata.stages",
    "validators": "robodata.validators",
    "metrics": "robodata.metrics",
}


class PluginError(RobodataError):
    """A plugin cannot be found or fails to import; the message names the plugin and its entry point."""


def _describe(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    by = f" (from {dist.name} {dist.version})" if dist is not None else ""
    return f"{ep.group} plugin {ep.name!r} = {ep.value}{by}"


def load_entry_point(ep: EntryPoint) -> Any:
    try:
        return ep.load()
    except Exception as err:
        raise PluginError(f"{_describe(ep)} failed to import: {type(err).__name__}: {err}") from err


def load_entry_points(group: str, *, missing_ok: bool = False) -> dict[str, Any]:
    """Load every entry point of ``group``. With ``missing_ok``, one whose imports are not installed
    (an ImportError, e.g. an optional layer such as the platform) is left out instead of raising."""
    out: dict[str, Any] = {}
    for ep in entry_points(group=group):
        try:
            out[ep.name] = ep.load()
        except ImportError:
            if not missing_ok:
                raise PluginError(f"{_describe(ep)} failed to import (a dependency is missing)") from None
        except Exception as err:
            raise PluginError(f"{_describe(ep)} failed to import: {type(err).__name__}: {err}") from err
    return out


@cache
def _index(group: str) -> dict[str, EntryPoint]:
    eps: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        if ep.name in eps and eps[ep.name].value != ep.value:
            raise PluginError(f"two {group} plugins are named {ep.name!r}: {eps[ep.name].value} and {ep.value}")
        eps[ep.name] = ep
    return eps


def names(kind: str) -> list[str]:
    """The names registered for ``kind`` (``datasources``, ``stages``, ``validators``, ``metrics``)."""
    return sorted(_index(_group(kind)))


def get(kind: str, name: str) -> Any:
    """The object registered as ``name`` for ``kind``; a PluginError lists the names that exist."""
    eps = _index(_group(kind))
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none installed"
        raise PluginError(f"no {kind[:-1]} named {name!r} (known: {known})")
    return load_entry_point(eps[name])


def refresh() -> None:
    """Forget the cached entry-point index (after installing a plugin into the running interpreter)."""
    _index.cache_clear()


def _group(kind: str) -> str:
    if kind not in GROUPS:
        raise PluginError(f"unknown plugin kind {kind!r} (one of {', '.join(GROUPS)})")
    return GROUPS[kind]
