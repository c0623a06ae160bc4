"""robodata's own datasources, stages, validators and metrics (registered by entry point like any plugin)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from robodata import pathkind
from robodata.api.errors import PipelineError
from robodata.api.extensions import Datasource, Metric, PipelineStage, SourceFindingsError, SourceItem, Validator
from robodata.config import ProjectConfig, SourceConfig
from robodata.ingest import IngestReport
from robodata.stages.base import Finding
from robodata.topicmap import format_validation_error

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


class _ReadsHdf5(Datasource):
    """A datasource of robodata's readers that reads Isaac Lab HDF5 files: it takes the options a project config's
    ``sources:`` entry reads such a file with (``fps``, ``quaternion_order``, ...: the same keys, checked the same
    way), and they win over that entry's for the files of this source."""

    def __init__(self, path: str, topic_map: str | dict[str, Any] | None = None, pattern: str = "*",
                 **options: Any):
        own = {k: options.pop(k) for k in list(options) if k in _hdf5_option_names()}
        try:
            checked = SourceConfig.model_validate(own)
        except ValidationError as err:
            raise PipelineError(format_validation_error(err, f"datasource {self.label!r} ({path})")) from err
        self.hdf5_options: dict[str, Any] = {k: getattr(checked, k) for k in own}
        super().__init__(path, topic_map, pattern, **options)

    @classmethod
    def option_names(cls) -> list[str]:
        return sorted({*super().option_names(), *_hdf5_option_names()})

    def reading_options(self, name: str, project: ProjectConfig | None = None) -> dict[str, Any]:
        if not name.lower().endswith(pathkind.HDF5_SUFFIXES):
            return {}
        return {**super().reading_options(name, project), **self.hdf5_options}


def _hdf5_option_names() -> set[str]:
    """The config's per-source HDF5 reading keys (whatever :class:`robodata.config.SourceConfig` holds)."""
    return set(SourceConfig.model_fields) - {"pattern", "topic_map"}


class IsaacLabSource(_ReadsHdf5):
    """Isaac Lab / robomimic HDF5 episode files (no topic map needed); ``fps=``, ``quaternion_order=`` read a
    recorder file (no timestamps, its quaternion order unstated) over the project config's ``sources:``."""

    name = "hdf5"
    suffixes = pathkind.HDF5_SUFFIXES
    needs_topic_map = False


class LeRobotSource(Datasource):
    """Published LeRobot datasets (v2.0, v2.1, v3.0): re-curate one (filter, relabel, re-validate, convert).

    ``episodes: [0, 3]`` takes only those episode indices. A dataset from the wild imports around its gaps (no
    videos shipped, no frame_index, offset timestamps, GR00T keys); each gap is a finding in the run's result,
    and ``strict: true`` makes them errors (the run fails, nothing is published)."""

    name = "lerobot"
    needs_topic_map = False

    def __init__(self, path: str, episodes: list[int] | None = None, strict: bool = False, **kw: Any):
        if not isinstance(strict, bool):
            raise PipelineError(f"datasource 'lerobot' ({path}): strict is true or false, not {strict!r}")
        super().__init__(path, **kw)
        self.episodes = episodes
        self.strict = strict

    def list(self) -> list[SourceItem]:
        import fsspec

        from robodata.lerobot.layout import INFO_PATH

        fs, root = fsspec.core.url_to_fs(self.path)
        proto = self.path.split("://", 1)[0] + "://" if "://" in self.path else ""
        found = sorted(p[: -len(INFO_PATH) - 1] for p in fs.find(root) if p.endswith("/" + INFO_PATH))
        if not found:
            raise PipelineError(f"{self.path}: no LeRobot dataset (no {INFO_PATH}) here or below")
        return [SourceItem(p.rstrip("/").rsplit("/", 1)[-1], proto + p, 0, True) for p in found]

    def reading_options(self, name: str, project: ProjectConfig | None = None) -> dict[str, Any]:
        return {} if self.episodes is None else {"episodes": [int(i) for i in self.episodes]}

    def ingest(self, recording: Path, out: Path, topic_map: Any, *, min_frames: int, max_frames: int,
               image_compression: str = "none") -> Any:
        from robodata.formats.isaaclab import EpisodeStore
        from robodata.ingest import EpisodeReport
        from robodata.lerobot.importer import import_lerobot

        if self.strict:  # refuse before decoding anything, with the findings (the importer's strict says them in text)
            found = self.findings_of(recording)
            if found:
                raise SourceFindingsError(str(recording), found)
        summary = import_lerobot(recording, out, episodes=self.episodes, strict=self.strict)
        fps = float(summary["fps"])
        with EpisodeStore(out) as es:
            eps = [EpisodeReport(n, es.num_samples(n), es.num_samples(n) / fps, 0, None) for n in es.demo_names]
        return SourceIngestReport(str(recording), str(out), eps, fps=fps,
                                  findings=[self._finding(recording, f) for f in summary["findings"]])

    def findings_of(self, recording: Path) -> tuple[Finding, ...]:
        """What an import of ``recording`` (its chosen episodes) would convert around, as the importer surveys it."""
        from dataclasses import replace

        from robodata.lerobot.metadata import read_meta
        from robodata.lerobot.validate import survey_dataset

        meta = read_meta(recording)
        if self.episodes is not None:
            chosen = {int(i) for i in self.episodes}
            meta = replace(meta, episodes=[ep for ep in meta.episodes if ep.index in chosen])
        return tuple(self._finding(recording, f) for f in survey_dataset(meta, stats=False).findings)

    def _finding(self, recording: Path, f: Any) -> Finding:
        """An importer's finding (``where`` a feature, or a path in the dataset) with ``where`` relative to it."""
        root, where = str(recording).rstrip("/"), str(f.where)
        where = where[len(root):].lstrip("/") if where.startswith(root) else where
        return Finding(self.label, f"{f.message}; {f.fix}" if f.fix else f.message,
                       "error" if f.severity == "error" else "warning", where)


@dataclass
class SourceIngestReport(IngestReport):
    """An ingest report with the datasource's findings on the recording (``where`` relative to it)."""

    findings: list[Finding] = field(default_factory=list)


class AnyRecordingSource(_ReadsHdf5):
    """Every recording kind robodata reads: MCAP, ROS 1 bags, ROS 2 bag folders, Isaac Lab HDF5 (``fps=``,
    ``quaternion_order=`` for the HDF5 files, as on ``hdf5``)."""

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


class ReleaseDrift(Validator):
    """The output against a reference dataset (an earlier release, any LeRobot dataset): per state/action
    dimension, episode length, rate, task mix and camera image statistics (:mod:`robodata.drift`, thresholds as
    ``quality.drift``). The report and its plots are written with the output (``meta/robodata_drift/``); a
    drifted feature is a warning, or keeps the output unpublished with ``on_drift: block``; a reference with
    other features is one error naming both."""

    name = "release_drift"

    def __init__(self, reference: str, on_drift: str = "warn", statistic: str = "psi",
                 thresholds: dict[str, float] | None = None, feature_thresholds: dict[str, float] | None = None,
                 ignore: list[str] | None = None):
        from robodata.drift import DriftConfig

        try:
            self.config = DriftConfig(on_drift=on_drift, statistic=statistic, thresholds=thresholds or {},
                                      feature_thresholds=feature_thresholds or {}, ignore=ignore or [])
        except ValidationError as err:
            raise PipelineError(format_validation_error(err, "validator release_drift")) from err
        self.reference = str(reference)

    def validate_dataset(self, path: Path) -> Iterable[Finding]:
        from robodata.drift import DriftError, check_release_drift
        from robodata.storage import DataStore

        parent, _, name = self.reference.rstrip("/").rpartition("/")
        try:
            with DataStore(parent or ".").read_path(name) as ref:
                c = check_release_drift(path, ref, self.config, out_dir=path / "meta" / "robodata_drift")
        except DriftError as err:
            return [self.finding(str(err))]
        sev = "error" if self.config.on_drift == "block" else "warning"
        return [self.finding(f"{f.name}: {f.statistic} {f.value:.3f} > {f.threshold:g} ({f.change()}) against "
                             f"{self.reference}", severity=sev) for f in c.report.drifted]


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
