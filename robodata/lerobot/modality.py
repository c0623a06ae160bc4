"""GR00T's ``meta/modality.json``: named slices of ``observation.state`` and ``action``, camera keys, annotations."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from robodata.formats.isaaclab import EpisodeSchema
from robodata.lerobot.layout import ACTION_KEY, IMAGES_PREFIX, STATE_KEY, TASK_ANNOTATION, camera_key

_INDEXED = re.compile(r"^(.*?)[_.]?(\d+)$")


def modality_from_schema(schema: EpisodeSchema) -> dict[str, Any]:
    """Slices from the schema's state/action features (in schema order), one video entry per camera."""
    return {
        "state": {k: {"start": s, "end": e} for k, (s, e) in schema.slices("state").items()},
        "action": {k: {"start": s, "end": e} for k, (s, e) in schema.slices("action").items()},
        "video": {c.name: {"original_key": camera_key(c.name)} for c in schema.cameras},
        "annotation": {TASK_ANNOTATION: {}},
    }


def _flat_names(ft: Mapping[str, Any]) -> list[str]:
    names = ft.get("names")
    if isinstance(names, dict):
        names = next(iter(names.values()), None)
    if not isinstance(names, list) or len(names) != int(ft["shape"][0]):
        return []
    return [str(n) for n in names]


def _slices_from_names(ft: Mapping[str, Any], fallback: str) -> dict[str, dict[str, int]]:
    """Group consecutive ``<part>_<i>`` names into one slice each; without usable names, one slice for all."""
    width = int(ft["shape"][0])
    names = _flat_names(ft)
    if not names:
        return {fallback: {"start": 0, "end": width}}
    out: dict[str, dict[str, int]] = {}
    prev = None
    for i, n in enumerate(names):
        m = _INDEXED.match(n)
        part = m.group(1) if m and m.group(1) else n
        if part == prev:
            out[part]["end"] = i + 1
        else:
            if part in out:  # the same name again later: not a clean grouping, give up
                return {fallback: {"start": 0, "end": width}}
            out[part] = {"start": i, "end": i + 1}
            prev = part
    return out


def modality_from_features(features: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Slices guessed from feature names (for datasets that did not come from an episode store)."""
    out: dict[str, Any] = {"state": {}, "action": {}, "video": {}, "annotation": {TASK_ANNOTATION: {}}}
    if STATE_KEY in features:
        out["state"] = _slices_from_names(features[STATE_KEY], "state")
    if ACTION_KEY in features:
        out["action"] = _slices_from_names(features[ACTION_KEY], "action")
    for k, f in features.items():
        if f.get("dtype") == "video":
            out["video"][k.removeprefix(IMAGES_PREFIX)] = {"original_key": k}
    return out


def modality_problems(modality: Mapping[str, Any], features: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What is wrong with ``modality`` against ``features`` (slices outside the vector, unknown video keys)."""
    problems = []
    for group, default_key in (("state", STATE_KEY), ("action", ACTION_KEY)):
        parts = modality.get(group) or {}
        if not isinstance(parts, Mapping):
            problems.append(f"{group} is not a JSON object")
            continue
        for name, sl in parts.items():
            if not isinstance(sl, Mapping):
                problems.append(f"{group}.{name} is not a JSON object")
                continue
            key = str(sl.get("original_key") or default_key)  # GR00T: a part may slice another column
            ft = features.get(key) or {}
            width = int((ft.get("shape") or [0])[0])
            start, end = sl.get("start"), sl.get("end")
            if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start < end <= width:
                problems.append(f"{group}.{name} slice [{start}, {end}) is outside {key} of width {width}")
    for name, v in (modality.get("video") or {}).items():
        orig = (v or {}).get("original_key", camera_key(name))
        if features.get(orig, {}).get("dtype") != "video":
            problems.append(f"video.{name} original_key {orig!r} is not a video feature")
    return problems


def without_videos(modality: Mapping[str, Any], keys: set[str]) -> dict[str, Any]:
    """``modality`` without the ``video`` entries whose camera is one of ``keys`` (features left out)."""
    out = dict(modality)
    videos = modality.get("video")
    if isinstance(videos, Mapping):
        out["video"] = {n: v for n, v in videos.items()
                        if str((v or {}).get("original_key", camera_key(n))) not in keys}  # fmt: skip
    return out
