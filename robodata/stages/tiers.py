"""The built-in tiers as stages: ingest (raw_teleop), LeRobot shards (lerobot_episodes), releases (lerobot_dataset).

Each is called the same way by the Dagster assets and by the Python API; the runners only fan work out
(Ray tasks, Ray Data) and report.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from robodata import store_layout as layout
from robodata.config import LeRobotConfig, RawTeleopConfig
from robodata.errors import RobodataError
from robodata.lerobot.layout import INFO_PATH, META_DIR, RELEASE_INFO_PATH, V30
from robodata.lerobot.metadata import read_info
from robodata.stages.base import (
    CheckResult,
    Finding,
    OutputValidator,
    Severity,
    SharedVerdicts,
    Stage,
    StageOutcome,
    run_validators,
    stage_and_publish,
)
from robodata.storage import DataStore
from robodata.topicmap import TopicMap

# ---- validators ---------------------------------------------------------------------------------------------


class RawSuites(SharedVerdicts[tuple[Any, Any]]):
    """Great Expectations' two raw_teleop suites (frames, episodes) on a canonical store, run once for both."""

    def __init__(self, config: RawTeleopConfig):
        super().__init__()
        self.config = config

    def compute(self, path: Path) -> tuple[Any, Any]:
        from robodata.formats.isaaclab import EpisodeStore
        from robodata.quality import validate_raw_episodes

        with EpisodeStore(path) as es:
            fps = es.schema.fps
        c = self.config
        return validate_raw_episodes(path, fps=fps, rate_tolerance=c.rate_tolerance, min_frames=c.min_episode_frames,
                                     max_frames=c.max_episode_frames)


class GxReport(OutputValidator):
    """A GX suite's failed expectations as findings, its results (GX's own) as the check's metadata."""

    def __init__(self) -> None:
        self.last_metadata: dict[str, Any] = {}

    def suite(self, path: Path) -> Any:
        raise NotImplementedError

    def validate(self, path: Path) -> list[Finding]:
        report = self.suite(path)
        self.last_metadata = report.as_metadata()
        # "error": the check failed (whether that blocks publishing is the check's ``blocking``)
        return [Finding(self.name, line, "error") for line in report.failure_lines()]


class _GxRawSuite(GxReport):
    """Great Expectations on a canonical episode store: one of the two suites of :class:`RawSuites`."""

    part: ClassVar[int] = 0  # 0: frames, 1: episodes

    def __init__(self, suites: RawSuites):
        super().__init__()
        self.suites = suites

    def suite(self, path: Path) -> Any:
        return self.suites.on(path)[self.part]


class RawFramesValid(_GxRawSuite):
    name = "frames_in_sync_and_finite"
    description = "GX: timestamps strictly increasing, no NaN/inf in state, action, obs"
    part = 0


class RawEpisodesValid(_GxRawSuite):
    name = "episode_rates_and_lengths"
    description = "GX: each episode's median rate within tolerance of fps; length in bounds"
    part = 1


class GxStoreFrames(GxReport):
    """GX on any tier's canonical store: timestamps present and strictly increasing per episode, positive
    frame intervals, every state/action/pose dimension a finite number."""

    name = "gx_frames_valid"
    description = "GX: timestamps strictly increasing per episode, every state/action dimension a finite number"

    def suite(self, path: Path) -> Any:
        from robodata.quality import validate_store_frames

        return validate_store_frames(path, self.name)


Reference = tuple[str | None, dict[str, tuple[float, float]]]  # (release id, learned per-dimension bounds)


class WithinReferenceBounds(GxReport):
    """GX: every state/action dimension within the range the reference release (the latest one) saw, widened
    by a quarter of it, for 95 % of the frames. A warning (new data may rightly go further); passes, saying so, before the
    first release."""

    name = "within_reference_release_bounds"
    blocking = False
    description = "GX: state/action dimensions within the latest release's range (+25 %) for 95 % of frames"

    def __init__(self, reference: Reference | None = None, *, lerobot: bool = False):
        super().__init__()
        self.reference = reference or (None, {})
        self.lerobot = lerobot

    def suite(self, path: Path) -> Any:
        from robodata.quality import QualityReport, episode_tables, lerobot_frame_table, validate_within_bounds

        release, bounds = self.reference
        if not bounds:
            return QualityReport(self.name, [])
        frames = lerobot_frame_table(path)[0] if self.lerobot else episode_tables(path)[0]
        return validate_within_bounds(frames, bounds, suite=self.name, data=path)

    def validate(self, path: Path) -> list[Finding]:
        found = super().validate(path)
        self.last_metadata["reference_release"] = self.reference[0] or "none yet (nothing to compare with)"
        return found


class JointsWithinModelLimits(OutputValidator):
    """The recording's joints against the robot's own model (``quality.robot_model``: a URDF or MJCF loaded
    with pinocchio): every joint name exists in the model, positions within the joint limits, velocities within
    the velocity limits; one finding per joint, kind and demo, with its frame ranges and worst value."""

    name = "joints_within_robot_model_limits"
    blocking = False
    description = "robot model (URDF/MJCF, pinocchio): joint names exist, positions and velocities within limits"

    def __init__(self, model: Any, model_path: str):
        self.model_cfg, self.model_path = model, model_path
        self.last_metadata: dict[str, Any] = {}

    def validate(self, path: Path) -> list[Finding]:
        from robodata.formats.isaaclab import EpisodeStore
        from robodata.robot.model import RobotModel, RobotModelError
        from robodata.robot.validate import validate_episode_store

        c = self.model_cfg
        sev: Severity = "error"  # the check failed; ``blocking`` says whether that stops publishing
        try:
            model = RobotModel.load(self.model_path, c.format, locked=c.locked or None, name_prefix=c.name_prefix)
            with EpisodeStore(path) as es:
                names = {f.name for f in es.schema.features}
                missing = [p for p in c.positions if p not in names]
                if missing:
                    return [Finding(self.name, f"the recording has no joint-position feature {missing} "
                                    f"(quality.robot_model.positions; its features: {sorted(names)})", "error")]
                reports = validate_episode_store(es, model, {p: c.velocities.get(p) for p in c.positions},
                                                 c.joint_map or None, position_tolerance=c.position_tolerance)
        except RobotModelError as err:  # a model that does not parse, joint names that do not match: one error
            self.last_metadata = {"robot_model": self.model_path}
            return [Finding(self.name, str(err), "error")]
        found = [f for r in reports.values() for f in r.findings]
        notes = sorted({n for r in reports.values() for n in r.notes})
        self.last_metadata = {"robot_model": self.model_path, "demos": len(reports), "findings": len(found),
                              "joint_findings": [f.to_json() for f in found][:50], "notes": notes}
        return [Finding(self.name, f.message, sev) for f in found]


class JointsWithinModelLimitsBlocking(JointsWithinModelLimits):
    blocking = True


class ReleaseDrift(OutputValidator):
    """The release against the one it follows (``latest`` when it is cut): per state/action dimension, episode
    length, rate, task mix and camera image statistics (PSI / KS / Wasserstein, :mod:`robodata.drift`);
    fails when a feature drifted past its threshold (``quality.drift``), a warning unless ``on_drift: block``."""

    name = "release_drift"
    blocking = False
    description = "drift against the previous release (PSI/KS/Wasserstein per feature, image stats per camera)"

    def __init__(self, store: DataStore | None = None, previous: str | None = None, config: Any = None):
        self.store, self.previous, self.config = store, previous, config
        self.last_metadata: dict[str, Any] = {}

    def validate(self, path: Path) -> list[Finding]:
        from robodata.drift import DriftConfig, DriftError, check_release_drift

        if self.store is None or not self.previous:
            self.last_metadata = {"reference_release": "none yet (nothing to compare with)"}
            return []
        cfg = DriftConfig.model_validate(self.config or {})
        rel = layout.release_path(self.previous)
        sev: Severity = "error"  # the check failed; ``blocking`` says whether that stops publishing
        try:
            with self.store.read_path(rel) as ref:
                c = check_release_drift(path, ref, cfg)
        except DriftError as err:  # a reference with other features: one clear error naming both
            self.last_metadata = {"reference_release": self.previous}
            return [Finding(self.name, str(err), sev)]
        from robodata.plots import markdown_image

        plots = "\n\n".join(markdown_image(png, name) for name, png in list(c.report.plots.items())[:3])
        self.last_metadata = {**c.metadata, "reference_release": self.previous, "summary": c.description,
                              "report_md": c.report.to_markdown()[:20000] + ("\n\n" + plots if plots else "")}
        return [Finding(self.name, f"{f.name}: {f.statistic} {f.value:.3f} > {f.threshold:g} ({f.change()})", sev)
                for f in c.report.drifted]


class ReleaseDriftBlocking(ReleaseDrift):
    blocking = True


class LeRobotLayoutValid(OutputValidator):
    """``robodata validate``: layout, info.json, timestamps, video frames vs rows, stats, modality slices."""

    name = "shard_is_valid_lerobot"
    description = "robodata validate: layout, timestamps, video frames, stats"

    def __init__(self) -> None:
        self.last_metadata: dict[str, Any] = {}

    def validate(self, path: Path) -> list[Finding]:
        from robodata.lerobot import validate_dataset

        found = validate_dataset(path)
        errors = [f for f in found if f.severity == "error"]
        self.last_metadata = {"findings": [str(f) for f in found][:50], "errors": len(errors)}
        return [Finding(self.name, f.message, "error" if f.severity == "error" else "warning", f.where) for f in found]


class ReleaseLayoutValid(LeRobotLayoutValid):
    name = "release_layout_videos_and_stats"
    description = "robodata validate: info.json, episode lengths = video frames, stats"


class GxLeRobotFrames(GxReport):
    name = "release_frames_contiguous_and_in_sync"
    description = "GX: index 0..N-1, frame_index steps by 1 from 0, timestamps = frame_index/fps, finite vectors"

    def suite(self, path: Path) -> Any:
        from robodata.quality import validate_lerobot_frames

        return validate_lerobot_frames(path, self.name)


class GxShardFrames(GxLeRobotFrames):
    name = "shard_frames_contiguous_and_in_sync"


# ---- ingest ---------------------------------------------------------------------------------------------------


class IngestStage(Stage[RawTeleopConfig]):
    """A recording (ROS 1/2 bag, MCAP, Isaac Lab HDF5) -> canonical, time-synced episodes (Isaac Lab HDF5)."""

    name = "raw_teleop"
    inputs = ("recording",)
    checks = (RawFramesValid, RawEpisodesValid, WithinReferenceBounds)
    reference: Reference | None = None  # the latest release's learned bounds (set by the caller that has the store)
    robot_model: tuple[Any, str] | None = None  # (quality.robot_model, its resolved path), when configured

    @classmethod
    def check_types(cls, robot_model: Any = None) -> tuple[type[OutputValidator], ...]:
        """The checks this tier runs: the joint-limit check too when the project names a robot model."""
        if robot_model is None:
            return cls.checks
        return (*cls.checks, JointsWithinModelLimitsBlocking if robot_model.blocking else JointsWithinModelLimits)

    def output_path(self, key: str) -> str:
        return layout.episodes_path(layout.RAW_TELEOP, key)

    def work(self, staged: Path, key: str, *, recording: Path, topic_map: TopicMap | None = None,
             progress: Any = None, datasource: Any = None, hdf5_options: dict[str, Any] | None = None) -> Any:
        """``datasource`` (a robodata.api.Datasource) ingests formats robodata does not read itself;
        ``hdf5_options`` (``fps``, ``quaternion_order``, ``quaternion_columns``) read an Isaac Lab HDF5 file."""
        from robodata.ingest import ingest_recording

        c = self.config
        if datasource is not None and datasource.reads_itself:
            return datasource.ingest(recording, staged, topic_map, min_frames=c.min_episode_frames,
                                     max_frames=c.max_episode_frames, image_compression=c.image_compression)
        # robodata's readers: the config's sources: options for the file, the pipeline datasource's own on top
        options = {**(hdf5_options or {}), **(datasource.reading_options(recording.name) if datasource else {})}
        return ingest_recording(recording, staged, topic_map, min_frames=c.min_episode_frames,
                                max_frames=c.max_episode_frames, progress=progress,
                                image_compression=c.image_compression, **options)

    def validators(self) -> list[OutputValidator]:
        suites = RawSuites(self.config)
        out: list[OutputValidator] = [RawFramesValid(suites), RawEpisodesValid(suites),
                                      WithinReferenceBounds(self.reference)]
        return out + self.model_validators()

    def model_validators(self) -> list[OutputValidator]:
        """The robot model's check (``quality.robot_model``), which needs no Great Expectations."""
        if self.robot_model is None:
            return []
        cfg, path = self.robot_model
        return [(JointsWithinModelLimitsBlocking if cfg.blocking else JointsWithinModelLimits)(cfg, path)]


# ---- LeRobot shards and releases --------------------------------------------------------------------------


def codec_options(config: LeRobotConfig, gpus: float = 0.0) -> dict[str, Any]:
    """The writer's video options from the tier config (``auto``: NVENC where a GPU is, else SVT-AV1)."""
    codec = config.codec
    if codec == "auto":
        codec = "h264_nvenc" if gpus else "libsvtav1"
    return {"video_codec": codec, "crf": config.crf, "gop": config.gop}


@dataclass
class PartReport:
    """One episode written as a one-episode LeRobot v3.0 dataset (a part of a shard)."""

    rel: str
    frames: int
    seconds: float
    bytes: int
    codec: str


def write_episode_part(store: DataStore, src_rel: str, episode: str, part_rel: str, opts: dict[str, Any],
                       task: str | None = None) -> PartReport:
    """One episode of a canonical store -> a one-episode LeRobot v3.0 part, published at ``part_rel``.

    This is the unit both runners fan out (a Ray task per episode, or a Ray Data row)."""
    from robodata.lerobot import write_shard

    with store.read_path(src_rel) as src, store.write_path(part_rel) as tmp:
        rep = write_shard(src, tmp, episodes=[episode], task=task, **opts)
    return PartReport(part_rel, rep.frames, rep.seconds, rep.bytes, rep.codec)


class LeRobotShardStage(Stage[LeRobotConfig]):
    """Joins a recording's one-episode parts into its LeRobot v3.0 shard (video remuxed, not re-encoded)."""

    name = "lerobot_episodes"
    inputs = ("episodes",)
    checks = (LeRobotLayoutValid, GxShardFrames)

    def output_path(self, key: str) -> str:
        return layout.shard_path(key)

    def work(self, staged: Path, key: str, *, parts: Sequence[Path]) -> Any:
        from robodata.lerobot import aggregate

        return aggregate(list(parts), staged, version=V30, repo_id=f"{self.config.repo_id}-{key}")

    def validators(self) -> list[OutputValidator]:
        return [LeRobotLayoutValid(), GxShardFrames()]

    def run_versioned(self, store: DataStore, key: str, *, parts: Sequence[Path]) -> tuple[StageOutcome, str]:
        """Like :meth:`run`, but published at the content-addressed ``<key>@<digest>``
        (:func:`layout.shard_version_path`), never over an existing folder: a new version is a new path (one
        rename locally, one upload remotely), the same content already there is kept. Returns the outcome and
        the version (the digest)."""
        digests: list[str] = []

        def named_by(staged: Path) -> str:
            digests.append(dataset_digest(staged))
            return layout.shard_version_path(key, digests[0])

        outcome = stage_and_publish(self.name, store, self.output_path(key),
                                    lambda tmp: self.work(tmp, key, parts=parts), self.validators(),
                                    named_by=named_by)
        return outcome, digests[0]


def dataset_digest(root: Path) -> str:
    """A digest of a LeRobot dataset's metadata files (info, episodes, stats): changes whenever its content does."""
    h = hashlib.sha1()
    for p in sorted(root.rglob("*")):
        if p.is_file() and META_DIR in p.relative_to(root).parts:
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def release_id(config: LeRobotConfig, shard_versions: dict[str, str]) -> str:
    """A release is named by what went in: the format, every shard's version and, when asked for, the action
    normalisation it carries (same inputs, same release)."""
    named: dict[str, Any] = {"v": config.version, "shards": shard_versions}
    if config.action_normalization:
        named["action_norm"] = config.action_normalization
    return hashlib.sha1(json.dumps(named, sort_keys=True).encode()).hexdigest()[:12]


def fit_action_normalization(root: Path, mode: str) -> dict[str, Any]:
    """Fit :class:`robodata.robot.actions.ActionNormalizer` once over a release's published episodes (its data
    files, after dedup left copies out: the statistics describe what a policy trains on) and store it with the
    release (``meta/robodata_action_norm.json``, dimension names from info.json); what the release records."""
    import pyarrow.parquet as pq

    from robodata.lerobot.layout import ACTION_KEY
    from robodata.robot.actions import ACTION_NORM_PATH, ActionNormalizer

    info = read_info(root)
    feat = (info.get("features") or {}).get(ACTION_KEY)
    if not feat:
        raise RobodataError(f"{root / INFO_PATH}: no {ACTION_KEY!r} feature to fit tiers.lerobot.action_normalization on")
    names = feat.get("names")
    if isinstance(names, dict):  # lerobot's {"motors": [...]} form
        names = next(iter(names.values()), None)
    norm = ActionNormalizer(mode, feature=ACTION_KEY, names=[str(n) for n in names] if names else None)
    for f in sorted((root / "data").rglob("*.parquet")):
        col = pq.read_table(f, columns=[ACTION_KEY]).column(ACTION_KEY).combine_chunks()
        flat = col.flatten() if hasattr(col, "flatten") else col
        norm.update(flat.to_numpy(zero_copy_only=False).reshape(len(col), -1))
    norm.fit([])  # an error if there was nothing to fit
    norm.save(root)
    return {"mode": mode, "path": ACTION_NORM_PATH, "frames": int(norm.stats["count"][0]), "names": norm.names}




def dedup_index_path(settings: str) -> str:
    """The releases' dedup index in a local store (named by the dedup settings its pairs were verified with)."""
    return f"lerobot/dedup-{settings}.sqlite"


def dedup_index_url(cfg: Any, store_root: Path | None) -> str | None:
    """The dedup index of a project (a :class:`robodata.config.ProjectConfig`), as the video shot index is found:
    ``quality.dedup.index`` (a path resolves like every path of the config), else None for a local store
    (:meth:`ReleaseStage.dedup_index` keeps it in the store), else a file under the project home (SQLite wants a
    local file)."""
    from robodata.dedup import DedupConfig

    dc = DedupConfig.model_validate(cfg.quality.dedup or {})
    if dc.index:
        return dc.index if "://" in dc.index else str(cfg._local(dc.index))
    if store_root is not None:
        return None
    return str(cfg.home_dir / dedup_index_path(dc.settings_digest()))


def utc_iso(ts: float) -> str:
    """``2026-01-31T12:00:00.123Z``: when a release was cut (sorts as it reads)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


@dataclass
class ReleaseResult:
    """A cut release: its id and path, whether it passed and became ``latest`` (not while a rollback pins
    ``latest`` elsewhere: ``pinned_to``), what went in, its checks."""

    release: str
    url: str
    published: bool
    reused: bool
    previous: str | None
    recordings: list[str]
    versions: dict[str, str]
    checks: list[CheckResult]
    info: dict[str, Any]
    seconds: float
    pinned_to: str | None = None  # latest.json is pinned (by a rollback) to this release: not promoted


class ReleaseStage(Stage[LeRobotConfig]):
    """Every selected recording's shard -> one versioned LeRobot release (v3.0, or v2.1 + modality.json)."""

    name = "lerobot_dataset"
    inputs = ("shards",)
    checks = (GxLeRobotFrames, ReleaseLayoutValid, WithinReferenceBounds, ReleaseDrift)
    reference: Reference | None = None  # the release latest.json points at when this one is cut, learned bounds
    quality: Any = None  # the project's QualityConfig (dedup policy, drift thresholds); None: the defaults
    _previous: tuple[DataStore, str] | None = None
    dedup_report: Any = None  # the last cut's robodata.dedup.DedupReport
    index_url: str | None = None  # the dedup index (a SQLAlchemy URL or path); None: see dedup_index()
    _index: Any = None  # the DedupIndex of the cut in progress
    _cutting: str | None = None  # the release id being cut

    @classmethod
    def check_types(cls, quality: Any = None) -> tuple[type[OutputValidator], ...]:
        """The checks a release runs; the drift check blocks when ``quality.drift.on_drift`` is ``block``."""
        block = bool(quality is not None and (quality.drift or {}).get("on_drift") == "block")
        return tuple(ReleaseDriftBlocking if (c is ReleaseDrift and block) else c for c in cls.checks)

    def output_path(self, key: str) -> str:
        return layout.release_path(key)

    def work(self, staged: Path, key: str, *, shards: Sequence[Path], recordings: Sequence[str],
             versions: dict[str, str]) -> Any:
        from robodata.lerobot import aggregate

        c = self.config
        exclude = self._dedup(shards, recordings, versions)
        rep = aggregate(list(shards), staged, version=c.version, repo_id=c.repo_id, exclude=exclude)
        extra: dict[str, Any] = {}
        if c.action_normalization:
            extra["action_normalization"] = fit_action_normalization(staged, c.action_normalization)
        (staged / RELEASE_INFO_PATH).write_text(json.dumps(
            {"release": key, "recordings": list(recordings), "upstream_versions": versions, "format": c.version,
             "repo_id": c.repo_id, "created": utc_iso(time.time()), **extra},
            indent=1))
        return rep

    def validators(self) -> list[OutputValidator]:
        store, prev = self._previous or (None, None)
        drift = next(c for c in self.check_types(self.quality) if issubclass(c, ReleaseDrift))
        return [GxLeRobotFrames(), ReleaseLayoutValid(), WithinReferenceBounds(self.reference, lerobot=True),
                drift(store, prev, self.quality.drift if self.quality is not None else None)]

    def _dedup(self, shards: Sequence[Path], recordings: Sequence[str], versions: dict[str, str]) -> dict[int, set[int]]:
        """Duplicate episodes of the release, against each other and against the earlier published releases
        (:meth:`robodata.dedup.DedupIndex.release_report`): each with its twin in ``dedup_report``; those the
        policy (``quality.dedup.policy``) excludes, by shard position and episode index.

        Signatures live in the persistent index (:meth:`dedup_index`), one source per shard version
        (``<recording>@<version>``): a shard is signed (its video decoded) the first time a cut takes it, never
        again; the cut then reads the stored pairs. Signing at the cut, not when lerobot_episodes publishes the
        shard, keeps one writer on the index (partitions write shards in parallel, the release is one asset),
        uses the dedup settings of the release that reads them, and never signs a shard no release takes."""
        from robodata.dedup import lerobot_signatures

        index = self._index
        if index is None:
            index = self._index = self.dedup_index(None)
        cfg = index.config
        sources = [(f"{rec}@{versions.get(rec) or 'unversioned'}", rec) for rec in recordings]
        have = index.indexed_sources(s for s, _ in sources)
        verified = 0
        for shard, (src, rec) in zip(shards, sources, strict=True):
            if src not in have:
                verified += index.add_source(src, rec, lerobot_signatures(shard, cfg, source=src))
        self.dedup_report = index.release_report(sources, index.released_sources(but=self._cutting), cfg,
                                                 verified)
        position = {rec: i for i, rec in enumerate(recordings)}
        out: dict[int, set[int]] = {}
        for source, episode in self.dedup_report.excluded:
            out.setdefault(position[source], set()).add(int(episode.rsplit("_", 1)[-1]))  # episode_000003
        return out

    def dedup_config(self) -> Any:
        from robodata.dedup import DedupConfig

        return DedupConfig.model_validate(self.quality.dedup if self.quality is not None else {})

    def dedup_index(self, store: DataStore | None) -> Any:
        """The persistent dedup index: ``index_url`` (the caller's, from the config), else ``quality.dedup.index``,
        else ``lerobot/dedup-<settings>.sqlite`` in a local store (new dedup settings: a new file, signed again
        once); a remote store without a URL gets an in-memory index (every cut signs every shard again)."""
        from robodata.dedup import DedupIndex

        cfg = self.dedup_config()
        url = self.index_url or cfg.index
        if not url:
            if store is not None and store.local:
                url = str(store.local_path(dedup_index_path(cfg.settings_digest())))
            else:
                import logging

                logging.getLogger(__name__).warning("dedup: no index URL for the remote store %s (quality.dedup."
                                                    "index): signing every shard on every cut",
                                                    getattr(store, "root", "?"))
                url = ":memory:"
        return DedupIndex(url, cfg)

    def select(self, store: DataStore, known: Sequence[str], paths: dict[str, str] | None = None) -> list[str]:
        """The recordings this release takes (``recordings: all`` or a list) that have a shard (at ``paths``,
        key -> store path of the shard version to take; default ``lerobot/episodes/<key>``)."""
        keys = sorted(known)
        if self.config.recordings != "all":
            missing = sorted(set(self.config.recordings) - set(keys))
            if missing:
                raise RobodataError(f"tiers.lerobot.recordings names unknown recordings: {missing}")
            keys = list(self.config.recordings)
        paths = paths or {}
        keys = [k for k in keys if store.exists(f"{paths.get(k) or layout.shard_path(k)}/{INFO_PATH}")]
        if not keys:
            raise RobodataError("no recording has a lerobot_episodes shard yet: nothing to release")
        return keys

    def cut(self, store: DataStore, keys: Sequence[str], versions: dict[str, str],
            paths: dict[str, str] | None = None) -> ReleaseResult:
        """Cut (or find) the release of ``keys`` at the shard ``versions``, check it, promote it if it passed.

        ``paths`` (key -> store path) names the shard version to read, e.g. the content-addressed one the
        registry recorded with the version, so that version and content cannot disagree; default
        ``lerobot/episodes/<key>``. A shard without a known version counts by the digest of its content. The
        same inputs give the same release id: an existing one is re-checked, not rewritten."""
        t0 = time.perf_counter()
        versions = dict(versions)
        src = {k: (paths or {}).get(k) or layout.shard_path(k) for k in keys}
        for k in keys:
            if not versions.get(k):
                with store.read_path(src[k]) as root:
                    versions[k] = dataset_digest(root)
        release = release_id(self.config, versions)
        rel = self.output_path(release)
        latest = self.latest(store) or {}
        previous = latest.get("release")
        # `robodata rollback` pins latest.json to the release it rolled back to: a later cut is checked and kept,
        # but does not replace it until the pin is lifted (`robodata rollback --unpin`).
        pinned_to = previous if latest.get("pinned") and previous != release else None
        if previous and previous != release:
            if self.reference is None:
                from robodata.quality import latest_release_bounds

                self.reference = latest_release_bounds(store)  # the release this one follows
            self._previous = (store, str(previous))
        reused = store.exists(f"{rel}/{INFO_PATH}")
        self._cutting, self._index = release, self.dedup_index(store)
        if reused:
            with store.read_path(rel) as root:
                checks = run_validators(root, self.validators())
            published, url = not any(c.blocking and not c.passed for c in checks), store.url(rel)
        else:
            with tempfile.TemporaryDirectory(prefix="robodata-release-") as tmp:
                shards = store.local_copies([src[k] for k in keys], Path(tmp))
                outcome = self.run(store, release, shards=shards, recordings=list(keys), versions=versions)
            checks, published, url = outcome.checks, outcome.published, outcome.url or outcome.quarantined
        with store.read_path(store.rel(url)) as root:
            info = read_info(root)
        if published:  # later cuts check their episodes against this release's too
            self._index.mark_released(release, [f"{k}@{versions[k]}" for k in keys])
        self._index = self._cutting = None
        if published and pinned_to:
            published = False  # passed its checks, but latest stays where the rollback pinned it
        elif published:  # only a release that passes its checks becomes "latest"; a failed one leaves the old
            self.promote(store, release, keys)
        return ReleaseResult(release, url, published, reused, previous, list(keys), versions, checks, info,
                             time.perf_counter() - t0, pinned_to)

    @staticmethod
    def latest(store: DataStore) -> dict[str, Any] | None:
        if not store.exists(layout.LATEST):
            return None
        with store.read_path(layout.LATEST) as p:
            return dict(json.loads(p.read_text()))

    def promote(self, store: DataStore, release: str, recordings: Sequence[str]) -> None:
        """Point ``latest.json`` at ``release`` (only ever called for a release whose checks passed)."""
        with store.write_path(layout.LATEST) as p:
            p.write_text(json.dumps({"release": release, "path": store.url(self.output_path(release)),
                                     "format": self.config.version, "recordings": list(recordings)}, indent=1))
