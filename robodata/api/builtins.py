"""robodata's own datasources, stages, validators and metrics (registered by entry point like any plugin)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from robodata import pathkind
from robodata.api.extensions import Datasource, Metric, PipelineStage, SourceItem, Validator
from robodata.stages.base import Finding

# ---- datasources --------------------------------------------------------------------------------------------


class McapSource(Datasource):
    """MCAP files (ROS 2 CDR, ROS 1, JSON encodings)."""

    name = "mcap"
    suffixes = (pathkind.MCAP_SUFFIX,)


class Ros1BagSource(Datasource):
    """ROS 1 ``.bag`` files (any compression, unsorted chunks)."""

    name = "rosbag"
    suffixes = (pathkind.ROS1_BAG_SUFFIX,)


class Ros2BagSource(Datasource):
    """ROS 2 bag folders (``metadata.yaml`` with sqlite3 or MCAP storage, split files)."""

    name = "ros2"

    def matches(self, name: str, is_dir: bool) -> bool:
        return is_dir


class IsaacLabSource(Datasource):
    """Isaac Lab / robomimic HDF5 episode files (no topic map needed)."""

    name = "hdf5"
    suffixes = pathkind.HDF5_SUFFIXES
    needs_topic_map = False


class LeRobotSource(Datasource):
    """Published LeRobot datasets (v2.0, v2.1, v3.0): re-curate one (filter, relabel, re-validate, convert).

    ``episodes: [0, 3]`` takes only those episode indices."""

    name = "lerobot"
    needs_topic_map = False

    def __init__(self, path: str, episodes: list[int] | None = None, **kw: Any):
        super().__init__(path, **kw)
        self.episodes = episodes

    def list(self) -> list[SourceItem]:
        import fsspec

        from robodata.lerobot.layout import INFO_PATH

        fs, root = fsspec.core.url_to_fs(self.path)
        proto = self.path.split("://", 1)[0] + "://" if "://" in self.path else ""
        found = sorted(p[: -len(INFO_PATH) - 1] for p in fs.find(root) if p.endswith("/" + INFO_PATH))
        if not found:
            from robodata.api.errors import PipelineError

            raise PipelineError(f"{self.path}: no LeRobot dataset (no {INFO_PATH}) here or below")
        return [SourceItem(p.rstrip("/").rsplit("/", 1)[-1], proto + p, 0, True) for p in found]

    def ingest(self, recording: Path, out: Path, topic_map: Any, *, min_frames: int, max_frames: int,
               image_compression: str = "none") -> Any:
        from robodata.formats.isaaclab import EpisodeStore
        from robodata.ingest import EpisodeReport, IngestReport
        from robodata.lerobot.importer import import_lerobot

        summary = import_lerobot(recording, out, episodes=self.episodes)
        fps = float(summary["fps"])
        with EpisodeStore(out) as es:
            eps = [EpisodeReport(n, es.num_samples(n), es.num_samples(n) / fps, 0, None) for n in es.demo_names]
        return IngestReport(str(recording), str(out), eps, fps=fps)


class AnyRecordingSource(Datasource):
    """Every recording kind robodata reads: MCAP, ROS 1 bags, ROS 2 bag folders, Isaac Lab HDF5."""

    name = "auto"

    def matches(self, name: str, is_dir: bool) -> bool:
        return is_dir or name.lower().endswith(McapSource.suffixes + Ros1BagSource.suffixes + IsaacLabSource.suffixes)


# ---- stages -------------------------------------------------------------------------------------------------


class KeepSuccessful(PipelineStage):
    """Drop episodes whose ``success`` is false (unknown success is kept)."""

    name = "keep_successful"

    def process_episode(self, episode: dict[str, Any]) -> dict[str, Any] | None:
        return None if episode.get("success") is False else episode


class SetTask(PipelineStage):
    """Give every episode the same task text (e.g. a language instruction for a VLA policy)."""

    name = "set_task"

    def __init__(self, task: str):
        self.task = task

    def process_episode(self, episode: dict[str, Any]) -> dict[str, Any] | None:
        return {**episode, "task": self.task}


# ---- validators ---------------------------------------------------------------------------------------------


class FiniteValues(Validator):
    """No NaN or infinity in ``action`` or ``observation.state``."""

    name = "finite_values"

    def validate_episode(self, episode: dict[str, Any]) -> Iterable[Finding]:
        for col in ("action", "observation.state"):
            arr = np.asarray(episode[col], dtype=np.float64)
            bad = ~np.isfinite(arr)
            if bad.any():
                frame = int(np.argwhere(bad)[0][0])
                yield self.finding(f"{col} has {int(bad.sum())} non-finite values (first at frame {frame})", episode)


class EpisodeLength(Validator):
    """Episode length within ``[min_frames, max_frames]``."""

    name = "episode_length"

    def __init__(self, min_frames: int = 1, max_frames: int = 10**9):
        self.min_frames, self.max_frames = int(min_frames), int(max_frames)

    def validate_episode(self, episode: dict[str, Any]) -> Iterable[Finding]:
        n = int(episode["num_frames"])
        if not self.min_frames <= n <= self.max_frames:
            yield self.finding(f"{n} frames, outside [{self.min_frames}, {self.max_frames}]", episode)


# ---- metrics ------------------------------------------------------------------------------------------------


class EpisodeDuration(Metric):
    """Seconds per episode."""

    name = "episode_duration"

    def compute(self, episode: dict[str, Any]) -> dict[str, float]:
        return {"duration_s": float(episode["num_frames"]) / float(episode["fps"] or 1.0)}


class ActionJerk(Metric):
    """Mean absolute third difference of the action per second^3 (how smooth the teleoperator was)."""

    name = "action_jerk"

    def compute(self, episode: dict[str, Any]) -> dict[str, float]:
        a = np.asarray(episode["action"], dtype=np.float64)
        if len(a) < 4:
            return {}
        fps = float(episode["fps"] or 1.0)
        return {"action_jerk": float(np.abs(np.diff(a, n=3, axis=0)).mean() * fps**3)}
