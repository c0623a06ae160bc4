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
from robodata.stages.tiers import GxLeRobotFrames, GxReport


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


def shots_table(doc: dict[str, Any]) -> Any:
    """The manifest's accepted shots as a table: one row per shot with its duration and frame count."""
    import pandas as pd

    rows = [{**{k: s.get(k) for k in ("clip", "index", "start", "end", "start_frame", "end_frame", "fps", "width",
                                      "height", "codec", "phash")},
             "duration_s": (s["end"] - s["start"]) if s.get("end") is not None and s.get("start") is not None
             else None,
             "frames": (s["end_frame"] - s["start_frame"]) if s.get("end_frame") is not None
             and s.get("start_frame") is not None else None}
            for s in doc.get("shots") or []]
    return pd.DataFrame(rows)


class GxShotsManifest(GxReport):
    """Great Expectations on the shots manifest: every accepted shot names its clip, starts at t >= 0, lasts
    more than 0 s and at least one frame, has a positive frame rate and resolution, a codec and a perceptual hash
    (what dedup and the mix rely on); shot ids (clip, index) are unique. An empty manifest is ShotsAccepted's."""

    name: ClassVar[str] = "gx_shots_valid"
    blocking: ClassVar[bool] = True
    description: ClassVar[str] = ("GX: each shot has a clip, start >= 0, duration > 0, >= 1 frame, fps/width/height "
                                  "> 0, a codec and a perceptual hash; shot ids unique")

    def suite(self, path: Path) -> Any:
        import great_expectations as gx

        from robodata.quality import QualityReport, _run_suite

        df = shots_table(read_json(path))
        if df.empty:
            return QualityReport(self.name, [])
        df["shot_id"] = df["clip"].astype(str) + "#" + df["index"].astype(str)
        df["phash"] = df["phash"].map(lambda v: None if v is None else str(v))  # 64-bit: beyond int64
        e = gx.expectations
        exps: list[Any] = [e.ExpectColumnValuesToBeUnique(column="shot_id")]
        exps += [e.ExpectColumnValuesToNotBeNull(column=c) for c in ("clip", "codec", "phash", "duration_s")]
        exps += [e.ExpectColumnValuesToBeBetween(column="start", min_value=0),
                 e.ExpectColumnValuesToBeBetween(column="duration_s", min_value=0, strict_min=True),
                 e.ExpectColumnValuesToBeBetween(column="frames", min_value=1)]
        exps += [e.ExpectColumnValuesToBeBetween(column=c, min_value=0, strict_min=True)
                 for c in ("fps", "width", "height")]
        return QualityReport(self.name, _run_suite(self.name, df, exps))


class GxMixedFrames(GxLeRobotFrames):
    """:class:`GxLeRobotFrames` on every dataset of the mixed release (``mixture.json``'s datasets): index
    0..N-1, frame_index steps by 1 from 0, timestamps = frame_index / fps, finite vectors, and state and action
    present in the robot datasets; observation-only datasets (video layers) have neither, by design, so only
    what exists is asserted there. Columns in the results are ``<dataset>/<column>``."""

    name = "mixed_frames_contiguous_and_in_sync"
    blocking = True
    description = ("GX on each dataset of the mix: index 0..N-1, frame_index steps by 1, timestamps = frame_index/"
                   "fps, finite state/action (robot datasets have both; observation-only ones neither)")

    def suite(self, path: Path) -> Any:
        import great_expectations as gx
        import pandas as pd

        from robodata.lerobot.layout import ACTION_KEY, STATE_KEY
        from robodata.lerobot.metadata import read_info
        from robodata.quality import QualityReport, _run_suite, validate_lerobot_frames

        results = []
        self._per_dataset: dict[str, dict[str, Any]] = {}
        for name, d in (read_json(path / MIXTURE_PATH).get("datasets") or {}).items():
            root = path / str(d.get("path") or name)
            feats = read_info(root).get("features") or {}
            shape = pd.DataFrame({"feature": sorted(feats)})
            want = [] if d.get("observation_only") else [STATE_KEY, ACTION_KEY]
            present = _run_suite(f"{self.name}_{name}_features", shape, [
                gx.expectations.ExpectColumnDistinctValuesToContainSet(column="feature", value_set=want)]) \
                if want else []
            mine = [*present, *validate_lerobot_frames(root, f"{self.name}_{name}").results]
            for r in mine:
                r.column = f"{name}/{r.column}" if r.column else name
            results += mine
            self._per_dataset[name] = {"observation_only": bool(d.get("observation_only")), "expectations": len(mine),
                                       "failed": sum(not r.success for r in mine)}
        return QualityReport(self.name, results)

    def validate(self, path: Path) -> list[Finding]:
        found = super().validate(path)
        self.last_metadata["datasets"] = self._per_dataset  # GX's verdict per dataset of the mix
        return found


VIDEO_CHECKS: tuple[type[OutputValidator], ...] = (ClipsReadable, ShotsAccepted, GxShotsManifest)
MIX_CHECKS: tuple[type[OutputValidator], ...] = (MixtureHasEveryLayer, GxMixedFrames)
