"""Release pointer changes made outside a run (``robodata rollback``), recorded in Dagster.

A rollback moves ``lerobot/releases/latest.json`` (or ``policy/latest.json``) without materializing
anything, so the asset's history in the UI would not show it. :func:`record_release_event` reports a
runless ``AssetObservation`` on ``lerobot_dataset`` (or ``policy_checkpoint``) carrying the release the
pointer now names, the one before, and whether it is pinned: the asset's Events tab then reads
"materialized release A, B; observed rollback to A". Part of the code location (the library's CLI reaches
it through the platform object, never by import).
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from robodata.config import ProjectConfig

ASSETS = ("lerobot_dataset", "policy_checkpoint")


def release_observation(event: dict[str, Any]) -> dg.AssetObservation:
    asset = event.get("asset") or "lerobot_dataset"
    if asset not in ASSETS:
        raise ValueError(f"release events are for {', '.join(ASSETS)}, not {asset!r}")
    meta: dict[str, Any] = {"action": str(event.get("action") or "rollback"), "source": "robodata CLI"}
    for k in ("release", "run", "previous", "pinned"):
        if event.get(k) is not None:
            meta["previous_release" if k == "previous" and asset == "lerobot_dataset" else
                 "previous_run" if k == "previous" else k] = event[k]
    if event.get("path"):
        meta["path"] = dg.MetadataValue.path(str(event["path"]))
    if event.get("recordings") is not None:
        meta["recordings"] = dg.MetadataValue.json(list(event["recordings"]))
    what = event.get("release") if asset == "lerobot_dataset" else event.get("run")
    return dg.AssetObservation(
        asset_key=asset, metadata=meta,
        description=f"{meta['action']}: latest -> {what}" if meta["action"] == "rollback" else meta["action"],
        tags={"robodata/action": meta["action"]},
    )


def record_release_event(instance: dg.DagsterInstance, event: dict[str, Any]) -> dg.AssetObservation:
    """Report ``event`` (what ``robodata rollback`` did) as a runless observation on its asset."""
    obs = release_observation(event)
    instance.report_runless_asset_event(obs)
    return obs


def record_release_event_for(cfg: ProjectConfig, event: dict[str, Any]) -> dg.AssetObservation:
    """The same, on the project's own instance (what the CLI calls through the platform object)."""
    from robodata_dagster.runs import prepare_home

    prepare_home(cfg)
    return record_release_event(dg.DagsterInstance.get(), event)
