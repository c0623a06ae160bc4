"""Sources of a mixed release, by what they hold: ``robodata.sources.isaac_lab(url)``, ``cosmos(url)``,
``video(url)``, ``recordings(url)``, ``lerobot(url)``.

.. code-block:: python

    internet = ["s3://bucket/internet_videos/"]
    synthetic = [robodata.sources.isaac_lab("s3://bucket/sim/"), robodata.sources.cosmos("s3://bucket/dreams/")]
    teleop = ["s3://bucket/teleop_data/"]
    robodata.pipeline(sources={"internet": internet, "synthetic": synthetic, "teleop": teleop},
                      weights={"internet": 0.2, "synthetic": 0.4, "teleop": 0.4}, output="s3://bucket/release/").run()

A plain string (or path) means, by the layer it is in: a folder of clips in a video layer (``internet``, ``web``,
``human``, ``video``), a folder of Cosmos outputs in the ``generated`` layer, and recordings of any kind robodata
reads (MCAP, ROS bags, Isaac Lab HDF5) in every other layer. Robot sources go through the pipeline
(:func:`robodata.pipeline`), video sources through the corpus scan; :mod:`robodata.mix` cuts the release.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

from robodata.errors import RobodataError

Kind = Literal["recordings", "isaac_lab", "lerobot", "video", "cosmos"]
VIDEO_KINDS = ("video", "cosmos")
VIDEO_LAYERS = ("internet", "web", "human", "video")  # a plain string in these layers is a folder of clips
GENERATED_LAYERS = ("generated",)  # ... and in these a folder of Cosmos outputs
_DATASOURCE = {"recordings": "auto", "isaac_lab": "hdf5"}  # the pipeline's datasource of each robot kind


class SourceError(RobodataError):
    """A source of a mixed release is not one robodata knows (the message names the layer and the item)."""


@dataclass(frozen=True)
class Source:
    """Where a layer's data is and what it is (``kind``); ``options`` go to the datasource (topic map, pattern)."""

    kind: Kind
    url: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def is_video(self) -> bool:
        return self.kind in VIDEO_KINDS

    def pipeline_source(self) -> dict[str, Any]:
        """The pipeline's source spec of a robot source (``{type, path, ...}``)."""
        if self.is_video or self.kind == "lerobot":
            raise SourceError(f"{self.url}: a {self.kind} source does not go through the recordings pipeline")
        opts = dict(self.options)
        kind = opts.pop("type", _DATASOURCE[self.kind])
        known: dict[str, Any] = {k: opts.pop(k) for k in ("topic_map", "pattern") if k in opts}
        return {"type": kind, "path": self.url, **known, **({"options": opts} if opts else {})}


def _url(url: str | os.PathLike[str]) -> str:
    s = os.fspath(url)
    if not s:
        raise SourceError("a source needs a path or URL")
    return s


def isaac_lab(url: str | os.PathLike[str], **options: Any) -> Source:
    """Isaac Lab / robomimic HDF5 episode files (simulation, MimicGen / Isaac Lab Mimic output)."""
    return Source("isaac_lab", _url(url), dict(options))


def recordings(url: str | os.PathLike[str], **options: Any) -> Source:
    """Recordings of any kind robodata reads (``type=`` to pin one: mcap, rosbag, ros2, hdf5; ``topic_map=``)."""
    return Source("recordings", _url(url), dict(options))


def lerobot(url: str | os.PathLike[str]) -> Source:
    """A LeRobot dataset taken into the release as it is (no re-ingest)."""
    return Source("lerobot", _url(url))


def video(url: str | os.PathLike[str]) -> Source:
    """A folder or bucket of clips (MP4, WebM, MKV; captions in sidecar ``clip.txt`` / ``clip.json``)."""
    return Source("video", _url(url))


def cosmos(url: str | os.PathLike[str]) -> Source:
    """Cosmos Transfer / Cosmos outputs: the ``augmented_videos`` tier's clip folder or a folder of MP4s with
    sidecar JSON provenance (:mod:`robodata.video.generated`)."""
    return Source("cosmos", _url(url))


def as_source(item: Any, layer: str) -> Source:
    """``item`` of ``layer`` as a :class:`Source` (a plain string is read by the layer, see the module doc)."""
    if isinstance(item, Source):
        return item
    if isinstance(item, (str, os.PathLike)):
        if layer in VIDEO_LAYERS:
            return video(item)
        if layer in GENERATED_LAYERS:
            return cosmos(item)
        return recordings(item)
    raise SourceError(f"layer {layer!r}: {item!r} is not a source (a path or URL, or robodata.sources.isaac_lab(...), "
                      "cosmos(...), video(...), recordings(...), lerobot(...))")


def as_sources(items: Any, layer: str) -> list[Source]:
    """A layer's sources: one item or a list of them."""
    if isinstance(items, (str, os.PathLike, Source)):
        items = [items]
    return [as_source(it, layer) for it in list(items or [])]


__all__ = ["Source", "SourceError", "as_source", "as_sources", "cosmos", "isaac_lab", "lerobot", "recordings", "video"]
