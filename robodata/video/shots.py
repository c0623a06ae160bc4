"""What the video source tier hands on: accepted shots, rejected shots (with the reason) and findings on files.

These records are the contract between the corpus scan (:mod:`robodata.video.corpus`), the observation-only
episode writer (:mod:`robodata.video.episodes`) and the mixed release (:mod:`robodata.mix`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# The layers of the data pyramid a release mixes (a release config may name others).
LAYERS = ("internet", "generated", "sim", "mimicgen", "teleop")


@dataclass(frozen=True)
class Shot:
    """One accepted shot: frames ``[start_frame, end_frame)`` of ``clip`` (``start``/``end`` in seconds)."""

    clip: str  # the clip's path or URL, as the corpus names it
    index: int  # the shot's number within its clip (0-based, in time order)
    start: float
    end: float
    start_frame: int
    end_frame: int
    fps: float
    width: int
    height: int
    codec: str
    caption: str | None = None  # the task text: the sidecar clip.txt / clip.json caption
    layer: str = "internet"  # internet | generated | ...
    provenance: dict[str, Any] = field(default_factory=dict)  # e.g. Cosmos: source_demo, control_video, seed
    phash: int = 0  # the shot's 64-bit perceptual hash (the mean of its sampled frames' DCT hashes)

    @property
    def id(self) -> str:
        return f"{self.clip}#{self.index}"

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Rejection:
    """A shot (``index`` >= 0) or a whole clip (``index`` = -1) left out by a quality filter or dedup."""

    clip: str
    index: int
    reason: str  # too_short | low_resolution | static | black | blurred | shaky | duplicate
    detail: str  # the measured value against its threshold, or the twin for a duplicate
    twin: str | None = None  # for duplicates: the shot id kept


@dataclass(frozen=True)
class ClipFinding:
    """A file the corpus could not use at all (does not decode, audio only, zero length, truncated, a caption
    without a clip): one finding naming the file; the rest of the corpus goes on."""

    path: str
    problem: str
