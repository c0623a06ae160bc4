"""The topic map: which topic/field of a recording becomes which episode feature, how episodes are cut, how streams sync."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from robodata.errors import RobodataError
from robodata.yamlfile import read_yaml

Role = Literal["state", "action", "image", "pose", "extra"]
SyncMethod = Literal["nearest", "linear", "hold"]


class TopicMapError(RobodataError):
    """A topic map is malformed or does not fit the recording it is applied to."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SyncPolicy(_Strict):
    """How a stream is aligned to the reference clock.

    ``nearest`` takes the sample closest in time; ``linear`` interpolates between the two samples around the
    reference time (images always use nearest); ``hold`` takes the latest sample at or before the reference
    time (for slow topics such as goals). A reference frame whose best sample is farther than
    ``tolerance_s`` is out of sync: it is dropped and reported, never silently kept.
    """

    method: SyncMethod = "nearest"
    tolerance_s: float = Field(0.02, gt=0)


class ReferenceClock(_Strict):
    """The clock every stream is aligned to: a topic's own timestamps, or a uniform rate."""

    topic: str | None = None
    rate_hz: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_of(self) -> ReferenceClock:
        if (self.topic is None) == (self.rate_hz is None):
            raise ValueError("give exactly one of 'topic' or 'rate_hz'")
        return self


class EpisodeSplit(_Strict):
    """How a recording is cut into episodes: the whole file, at marker messages, or at gaps in the reference."""

    split: Literal["whole", "marker", "gap"] = "whole"
    topic: str | None = None
    gap_s: float = Field(1.0, gt=0)
    min_frames: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _marker_needs_topic(self) -> EpisodeSplit:
        if self.split == "marker" and not self.topic:
            raise ValueError("split 'marker' needs 'topic'")
        return self


class FeatureMap(_Strict):
    """One feature: ``field`` of the messages on ``topic`` becomes ``name`` with ``role``."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    topic: str
    role: Role
    field: str | None = None
    fields: list[str] | None = Field(None, min_length=1, description="several scalar fields, concatenated")
    select: list[str] | None = None
    names: list[str] | None = None
    sync: SyncPolicy | None = None
    optional: bool = False
    default: list[float] | None = Field(
        None, description="value before the stream's first sample (e.g. a zero command before teleop starts)"
    )

    @model_validator(mode="after")
    def _field_or_fields(self) -> FeatureMap:
        if self.field is not None and self.fields is not None:
            raise ValueError("give 'field' or 'fields', not both")
        if self.fields and not self.names:
            self.names = list(self.fields)
        return self


class FieldRef(_Strict):
    topic: str
    field: str | None = None


class TaskTopic(_Strict):
    """The task instruction read from the recording: the text ``field`` of the messages on ``topic``
    (``std_msgs/String`` on ``/task``: ``{topic: /task, field: data}``).

    An episode's task is the last task message at or before its first frame, else the first one inside it;
    an episode with neither gets ``default`` (the recording's name when that is empty). Empty messages are
    ignored. ``optional: true`` lets a recording without the topic through (every episode gets the default).
    """

    topic: str
    field: str | None = "data"
    default: str = ""
    optional: bool = False


class DatagenMap(_Strict):
    """Which features feed MimicGen's ``obs/datagen_info`` (pose features become 4x4 matrices)."""

    object_pose: dict[str, str] = {}
    eef_pose: dict[str, str] = {}
    target_eef_pose: dict[str, str] = {}
    subtask_term_signals: dict[str, str] = {}


class TopicMap(_Strict):
    """The whole mapping from a recording's topics to canonical episodes."""

    task: str | TaskTopic = Field("", description="the task instruction, or where to read it ({topic, field})")
    robot_type: str = "unknown"
    fps: float = Field(30.0, gt=0)
    reference: ReferenceClock
    sync: SyncPolicy = SyncPolicy()
    episodes: EpisodeSplit = EpisodeSplit()
    success: FieldRef | None = None
    features: list[FeatureMap] = Field(min_length=1)
    datagen: DatagenMap = DatagenMap()

    @model_validator(mode="after")
    def _consistent(self) -> TopicMap:
        names = [f.name for f in self.features]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"feature names repeat: {dup}")
        for kind in ("object_pose", "eef_pose", "target_eef_pose", "subtask_term_signals"):
            for key, feat in getattr(self.datagen, kind).items():
                if feat not in names:
                    raise ValueError(f"datagen.{kind}.{key} names unknown feature {feat!r}")
        # the episode store's obs/state and actions are the concatenation of these roles: none is a zero-width
        # dataset no reader (or h5py) takes
        have = ", ".join(f"{f.name} ({f.role})" for f in self.features)
        for role, example in (("state", "joint positions"), ("action", "the commanded joints or end-effector")):
            if not any(f.role == role for f in self.features):
                raise ValueError(f"no feature with role {role!r} (the episodes need one, e.g. {example}); "
                                 f"features: {have}")
        return self

    def sync_for(self, feature: FeatureMap) -> SyncPolicy:
        return feature.sync or self.sync

    @property
    def task_topic(self) -> TaskTopic | None:
        """Where the episodes' tasks are read from, when the recording carries them (``None``: a fixed task)."""
        return self.task if isinstance(self.task, TaskTopic) else None

    @property
    def task_text(self) -> str:
        """The fixed task: the plain string, or a task topic's ``default`` (may be empty)."""
        return self.task.default if isinstance(self.task, TaskTopic) else self.task

    @property
    def topics(self) -> list[str]:
        t = {f.topic for f in self.features}
        if self.reference.topic:
            t.add(self.reference.topic)
        if self.episodes.split == "marker" and self.episodes.topic:
            t.add(self.episodes.topic)
        if self.success:
            t.add(self.success.topic)
        if self.task_topic:
            t.add(self.task_topic.topic)
        return sorted(t)


def format_validation_error(err: ValidationError, source: str, prefix: str = "") -> str:
    """One line per problem, each naming the key (dotted path) and the file."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "")
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {loc or '<top>'}: {msg}")
    return "\n".join(lines)


def load_topic_map(source: str | Path | dict[str, Any]) -> TopicMap:
    """Load a topic map from a YAML file (or an already-parsed dict), with errors naming the key and the file."""
    if isinstance(source, dict):
        data, where = source, "<topic map>"
    else:
        path = Path(source)
        where = str(path)
        data = read_yaml(path, TopicMapError, "topic map file")
        if isinstance(data, dict) and "topic_map" in data and "features" not in data:
            data = data["topic_map"]
    if not isinstance(data, dict):
        raise TopicMapError(f"{where}: a topic map must be a mapping")
    try:
        return TopicMap.model_validate(data)
    except ValidationError as err:
        raise TopicMapError(format_validation_error(err, where)) from err


DEMO_TOPIC_MAP = Path(__file__).parent / "sim" / "demo_topic_map.yaml"
