"""The checks of the video tier and the mixed release: validators on the staged output, as every tier's
(:func:`robodata.stages.base.stage_and_publish` publishes only when the blocking ones pass). The code location
turns them into Dagster asset checks (``video_clips``, ``mixed_release``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from robodata.errors import RobodataError
from robodata.mix import MIXTURE_PATH
from robodata.stages.base import Finding, OutputValidator


def read_json(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    if not isinstance(doc, dict):
        raise RobodataError(f"{path}: not a JSON object")
    return doc


class ClipsReadable(OutputValidator):
    """Every file of the source is a usable clip; each one that is not is a finding naming it."""

    name: ClassVar[str] = "clips_readable"
    blocking: ClassVar[bool] = False
    description: ClassVar[str] = ("Every file of the video source is a usable clip: none that does not decode, is "
                                  "empty, audio only or truncated, and no caption file without its clip")

    def validate(self, path: Path) -> list[Finding]:
        found = read_json(path).get("findings") or []
        self.last_metadata = {"unusable_files": [f["path"] for f in found][:200], "unusable": len(found)}
        return [Finding(self.name, str(f["problem"]), "error", str(f["path"])) for f in found]


class ShotsAccepted(OutputValidator):
    """The scan accepted at least one shot (a source that yields none keeps its previous manifest)."""

    name: ClassVar[str] = "shots_accepted"
    blocking: ClassVar[bool] = True
    description: ClassVar[str] = ("The video source yields at least one accepted shot; otherwise its new manifest "
                                  "is not published and the previous one stays")

    def validate(self, path: Path) -> list[Finding]:
        doc = read_json(path)
        n = len(doc.get("shots") or [])
        self.last_metadata = {"accepted_shots": n}
        if n:
            return []
        counts = {k: v for k, v in (doc.get("counts") or {}).items() if v and k != "accepted"}
        why = ", ".join(f"{k}: {v}" for k, v in counts.items()) or "no clips found"
        return [Finding(self.name, f"no shot accepted ({why})", "error", str(doc.get("url", "")))]


class MixtureHasEveryLayer(OutputValidator):
    """Every layer with a positive weight has episodes in the mixed release."""

    name: ClassVar[str] = "mixture_has_every_layer"
    blocking: ClassVar[bool] = True
    description: ClassVar[str] = "Every layer with a positive mixture weight has episodes in the mixed release"

    def validate(self, path: Path) -> list[Finding]:
        layers = read_json(path / MIXTURE_PATH).get("layers") or {}
        self.last_metadata = {"episodes_per_layer": {k: int(v.get("episodes") or 0) for k, v in layers.items()}}
        return [Finding(self.name, f"layer {k!r} has weight {float(v.get('weight') or 0):.3f} but no episodes",
                        "error", str(path / MIXTURE_PATH))
                for k, v in layers.items() if float(v.get("weight") or 0) > 0 and not int(v.get("episodes") or 0)]


VIDEO_CHECKS: tuple[type[OutputValidator], ...] = (ClipsReadable, ShotsAccepted)
MIX_CHECKS: tuple[type[OutputValidator], ...] = (MixtureHasEveryLayer,)
