"""LeRobot features (``dtype``/``shape``/``names``) from an episode schema, and the Arrow schema of the frame tables."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from robodata.formats.isaaclab import EpisodeSchema, FeatureSpec
from robodata.lerobot.layout import ACTION_KEY, DEFAULT_FEATURES, STATE_KEY, camera_key, observation_key

VIDEO_NAMES = ["height", "width", "channels"]


def part_names(spec: FeatureSpec) -> list[str]:
    """Names of the scalar components of one state/action feature (its own names, else ``<name>_<i>``)."""
    width = int(np.prod(spec.shape)) if spec.shape else 1
    if spec.names and len(spec.names) == width:
        return [str(n) for n in spec.names]
    return [spec.name] if width == 1 else [f"{spec.name}_{i}" for i in range(width)]


def vector_feature(specs: list[FeatureSpec]) -> dict[str, Any]:
    """One float32 vector feature made of ``specs`` concatenated in order."""
    names = [n for s in specs for n in part_names(s)]
    return {"dtype": "float32", "shape": [len(names)], "names": names}


def video_feature(height: int, width: int, info: Mapping[str, Any]) -> dict[str, Any]:
    return {"dtype": "video", "shape": [height, width, 3], "names": list(VIDEO_NAMES), "info": dict(info)}


def features_from_schema(schema: EpisodeSchema, video_infos: Mapping[str, Mapping[str, Any]]) -> dict[str, dict]:
    """The ``features`` of ``info.json`` for a schema.

    ``observation.state`` and ``action`` are the state/action features concatenated in schema order; each pose
    feature becomes a flat float32 ``observation.<name>`` vector; each camera an ``observation.images.<camera>``
    video feature whose ``info`` comes from ``video_infos`` (keyed by camera name); ``extra`` features are
    not exported. The default columns come last, as lerobot writes them.
    """
    feats: dict[str, dict] = {}
    if schema.of_role("state"):
        feats[STATE_KEY] = vector_feature(schema.of_role("state"))
    if schema.of_role("action"):
        feats[ACTION_KEY] = vector_feature(schema.of_role("action"))
    for spec in schema.of_role("pose"):
        feats[observation_key(spec.name)] = vector_feature([spec])
    for cam in schema.cameras:
        h, w = int(cam.shape[0]), int(cam.shape[1])
        feats[camera_key(cam.name)] = video_feature(h, w, video_infos.get(cam.name, {}))
    feats.update({k: dict(v) for k, v in DEFAULT_FEATURES.items()})
    return feats


def video_keys(features: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return [k for k, f in features.items() if f.get("dtype") == "video"]


def table_keys(features: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Features stored as parquet columns (everything but video and image)."""
    return [k for k, f in features.items() if f.get("dtype") not in ("video", "image")]


def _arrow_type(ft: Mapping[str, Any]) -> pa.DataType:
    dtype = pa.from_numpy_dtype(np.dtype(ft["dtype"])) if ft["dtype"] != "string" else pa.string()
    shape = list(ft["shape"])
    if shape == [1]:
        return dtype
    t = dtype
    for n in reversed(shape):
        t = pa.list_(t, int(n))
    return t


def _hf_type(ft: Mapping[str, Any]) -> dict[str, Any]:
    value = {"dtype": ft["dtype"], "_type": "Value"}
    if list(ft["shape"]) == [1]:
        return value
    t: dict[str, Any] = value
    for n in reversed(list(ft["shape"])):
        t = {"feature": t, "length": int(n), "_type": "List"}
    return t


def arrow_schema(features: Mapping[str, Mapping[str, Any]], extra: Mapping[str, pa.DataType] | None = None) -> pa.Schema:
    """The Arrow schema of a frame table, with the ``huggingface`` metadata ``datasets`` reads back."""
    keys = table_keys(features)
    fields = [pa.field(k, _arrow_type(features[k])) for k in keys]
    hf = {k: _hf_type(features[k]) for k in keys}
    for k, t in (extra or {}).items():
        fields.append(pa.field(k, t))
        hf[k] = {"dtype": str(t), "_type": "Value"}
    meta = {"huggingface": json.dumps({"info": {"features": hf}})}
    return pa.schema(fields, metadata=meta)


def comparable(features: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Features with encoder-only video settings dropped: two shards whose ``comparable`` match can be merged."""
    out: dict[str, Any] = {}
    for k, f in features.items():
        g = {kk: vv for kk, vv in f.items() if kk not in ("info", "video_info")}
        g["shape"] = list(g.get("shape", []))
        if f.get("dtype") == "video":
            info = f.get("info") or {}
            g["codec"] = info.get("video.codec")
            g["pix_fmt"] = info.get("video.pix_fmt")
        out[k] = g
    return out
