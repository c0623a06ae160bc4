"""The project config: one YAML file (validated by pydantic) for sources, output, scale-out and every tier.

Resolution order: an explicit path, else ``$ROBODATA_CONFIG``, else ``./robodata.yaml`` if present, else the
embedded defaults (``robodata/defaults.yaml``). Secrets never live in the file: storage credentials come
from the environment (fsspec reads ``AWS_*``/``GOOGLE_*``; ``$ROBODATA_STORAGE_OPTIONS`` may hold JSON).
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from robodata.augment.config import AugmentedVideosConfig
from robodata.errors import RobodataError
from robodata.mimicgen.config import SyntheticDemosConfig
from robodata.topicmap import TopicMap, format_validation_error, load_topic_map
from robodata.train.config import PolicyConfig
from robodata.video.config import VideoCorpusConfig
from robodata.video.episodes import ObservationEpisodesConfig
from robodata.yamlfile import read_yaml

DEFAULTS_FILE = Path(__file__).parent / "defaults.yaml"
HOME_ENV = "ROBODATA_HOME"
CONFIG_ENV = "ROBODATA_CONFIG"


REGISTRY_ENV = "ROBODATA_REGISTRY_URL"  # the registry URL when it holds a password (kept out of the file)
INSTANCE_PG_URL_ENV = "ROBODATA_DAGSTER_PG_URL"  # the Dagster instance's whole PostgreSQL URL (password included)


class ConfigError(RobodataError):
    """The project config is malformed; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceConfig(_Strict):
    """Which topic map applies to landed files matching ``pattern`` (fnmatch on the file name), and how an Isaac
    Lab HDF5 file among them is read (its recorder stores neither timestamps nor its quaternion order)."""

    pattern: str = "*"
    topic_map: str | dict[str, Any] | None = None
    fps: float | None = Field(None, gt=0, description="HDF5 files without timestamps: their frame rate")
    quaternion_order: Literal["auto", "wxyz", "xyzw"] = Field(
        "auto", description="HDF5 files: wxyz (Isaac Lab 2.x), xyzw (3.0), auto (a stamp in env_args, else the data)")
    quaternion_columns: dict[str, list[int]] = Field(
        default_factory=dict, description="HDF5 files: where quaternions are, beside what feature names say "
        "(eef_quat, *_pose): feature -> the first column of each 4-wide quaternion ({object: [3]}; []: none)")

    @field_validator("quaternion_columns")
    @classmethod
    def _columns(cls, v: dict[str, list[int]]) -> dict[str, list[int]]:
        for name, starts in v.items():
            if any(c < 0 for c in starts):
                raise ValueError(f"quaternion_columns {name!r}: {starts} holds a negative column")
        return v

    def hdf5_options(self) -> dict[str, Any]:
        """The HDF5 reading options this source sets (empty when it leaves the defaults)."""
        out: dict[str, Any] = {}
        if self.fps is not None:
            out["fps"] = self.fps
        if self.quaternion_order != "auto":
            out["quaternion_order"] = self.quaternion_order
        if self.quaternion_columns:
            out["quaternion_columns"] = {k: list(v) for k, v in self.quaternion_columns.items()}
        return out


class RayConfig(_Strict):
    """Where Ray runs: embedded (``address: null``) or an existing cluster (``ray://host:10001`` / ``auto``)."""

    address: str | None = None
    num_cpus: int | None = Field(None, ge=1)
    namespace: str = "robodata"


class RawTeleopConfig(_Strict):
    min_episode_frames: int = Field(10, ge=1)
    max_episode_frames: int = Field(200_000, ge=1)
    rate_tolerance: float = Field(0.1, gt=0, lt=1, description="allowed relative deviation of a stream's rate")
    image_compression: Literal["auto", "none", "lzf", "gzip", "gzip-4"] = Field(
        "auto", description="camera frames in the canonical HDF5, lossless, plain-h5py readable: auto (deflate "
        "level 1 where a frame shrinks by a quarter or more, raw otherwise), none, lzf, gzip (level 1), gzip-4")


class LeRobotConfig(_Strict):
    version: Literal["v3.0", "v2.1"] = "v3.0"
    repo_id: str = Field("local/robodata", description="the dataset's id for lerobot-train (--dataset.repo_id)")
    codec: Literal["libsvtav1", "libx264", "h264_nvenc", "auto"] = "libsvtav1"
    crf: int = Field(30, ge=0, le=63)
    gop: int = Field(2, ge=1)
    recordings: list[str] | Literal["all"] = "all"
    action_normalization: Literal["mean_std", "min_max", "quantile"] | None = Field(
        None, description="fit action normalisation statistics once over each release's published episodes and "
        "write them with it (meta/robodata_action_norm.json; the actions stay raw)")


class DemoConfig(_Strict):
    """What ``make demo`` records in the simulator."""

    recordings: int = Field(3, ge=1)
    episodes_per_recording: int = Field(3, ge=1)
    image_hw: tuple[int, int] = (96, 128)
    seed: int = 0


class LandingConfig(_Strict):
    """How the ``new_recordings`` sensor watches the landing zone (see the README's "Landing zone")."""

    prefixes: list[str] = Field(
        [""], description="folders under the landing root to watch, recursively ('' = all of it)")
    settle_seconds: float = Field(2.0, ge=0, description="a file must be untouched this long, and unchanged "
                                  "between two ticks, before it is taken")
    stale_seconds: float = Field(300.0, gt=0, description="an incomplete file untouched this long is a crashed "
                                 "recording: ingested anyway, so that its run reports it as truncated")
    recent_days: int = Field(0, ge=0, description="between full scans, list only date-named folders "
                             "(YYYY-MM-DD) at most this many days old (0: list every folder); for object stores")
    full_scan_minutes: float = Field(60.0, gt=0, description="how often a tick lists everything and re-checks "
                                     "files already registered (in-place changes, vanished files)")
    max_new_per_tick: int = Field(500, ge=1, description="recordings registered per tick; the rest next tick")
    registry: str | None = Field(None, description="SQLAlchemy URL of the recording registry (default: SQLite "
                                 "in the project home; a PostgreSQL URL in production)")
    start_date: str = Field("2026-01-01", description="the first day of the daily partition dimension (robot x "
                            "day): 100 robots for a year are 36,500 partitions per asset")
    default_robot: str = Field("default", description="the robot of a recording that lands directly under a "
                               "watched prefix, with no robot folder")

    @field_validator("start_date", mode="before")
    @classmethod
    def _iso_date(cls, v: str) -> str:
        import datetime as _dt

        try:
            return _dt.date.fromisoformat(str(v)).isoformat()
        except ValueError:
            raise ValueError(f"landing.start_date {v!r}: not a date (YYYY-MM-DD)") from None

    @field_validator("prefixes")
    @classmethod
    def _relative(cls, v: list[str]) -> list[str]:
        out = []
        for p in v or [""]:
            q = p.strip().strip("/")
            if q.startswith("/") or ".." in q.split("/"):
                raise ValueError(f"landing prefix {p!r}: must be a folder inside the landing root")
            out.append(q)
        return out


class MetricsConfig(_Strict):
    """Prometheus metrics: the port the code location's long-running process serves /metrics on (null: not
    served), the address it binds (0.0.0.0 in a pod), the Pushgateway runs push their durations to."""

    port: int | None = Field(9464, ge=1, le=65535)
    addr: str = "127.0.0.1"
    pushgateway: str | None = None


class RobotModelConfig(_Strict):
    """The robot's URDF or MJCF: raw_teleop checks every recording's joints against it (names, position and
    velocity limits; findings per joint and frame range)."""

    path: str = Field(description="URDF or MJCF file (relative to the config file's folder)")
    format: Literal["urdf", "mjcf"] | None = None
    positions: list[str] = Field(["joint_pos"], description="joint-position features (their names are the joints)")
    velocities: dict[str, str] = Field({}, description="position feature -> its velocity feature, where recorded")
    joint_map: dict[str, str] = Field({}, description="data joint name -> model joint name, where they differ")
    name_prefix: str = Field("", description="a prefix the model puts before every name (MuJoCo's robot0:)")
    locked: dict[str, float | list[float]] = Field({}, description="positions of model joints not in the data")
    position_tolerance: float = Field(1e-3, ge=0, description="rad or m past a limit before it counts")
    blocking: bool = Field(False, description="out-of-limit joints keep the recording from being published")


class QualityConfig(_Strict):
    """Data-quality settings: the robot model, dedup and drift policies, profiling reports."""

    robot_model: RobotModelConfig | None = None
    dedup: dict[str, Any] = Field({}, description="robodata.dedup.DedupConfig: tolerances and the release policy")
    drift: dict[str, Any] = Field({}, description="robodata.drift.DriftConfig: thresholds, warn or block")
    profiles: bool = Field(True, description="an HTML profile per recording and per release")


class PostgresInstanceConfig(_Strict):
    """Where the Dagster instance's PostgreSQL database is. The password is never here: ``pass_env`` names the
    environment variable that holds it (a key with "password" in its name would be a secret in the file), or
    ``$ROBODATA_DAGSTER_PG_URL`` gives the whole URL and wins over these fields."""

    host: str = "127.0.0.1"
    port: int = Field(5432, ge=1, le=65535)
    db: str = Field("dagster", description="the database (one per Dagster deployment)")
    username: str = "dagster"
    pass_env: str | None = Field("DAGSTER_PG_PASSWORD", description="the environment variable holding the "
                                 "password (null: none, e.g. trust or a ~/.pgpass the server accepts)")


class InstanceConfig(_Strict):
    """The Dagster instance's storage (runs, event log, schedules and sensor ticks): SQLite files under the
    project home, or a PostgreSQL database (dagster-postgres) that every process of a deployment shares."""

    storage: Literal["sqlite", "postgres"] = "sqlite"
    postgres: PostgresInstanceConfig = PostgresInstanceConfig()


class RetryConfig(_Strict):
    """How a tier's step is retried after a transient fault (a storage timeout, a Ray worker or a pod lost): up
    to ``max_retries`` more attempts, the n-th after about ``delay_s`` x 2^(n-1) s (``exponential``) or
    ``delay_s`` x n s (``linear``), with random jitter. A fault of the data or the config is never retried."""

    max_retries: int = Field(3, ge=0, le=20)
    delay_s: float = Field(10.0, ge=0, description="the wait before the first retry")
    backoff: Literal["exponential", "linear"] = "exponential"
    jitter: Literal["plus_minus", "full", "none"] = Field(
        "plus_minus", description="plus_minus: the wait +-50 %; full: between 0 and the wait; none")


class TiersConfig(_Strict):
    raw_teleop: RawTeleopConfig = RawTeleopConfig()
    lerobot: LeRobotConfig = LeRobotConfig()
    # Tiers built in later milestones keep free-form settings until their models land.
    synthetic_demos: SyntheticDemosConfig = SyntheticDemosConfig()
    augmented_videos: AugmentedVideosConfig = AugmentedVideosConfig()
    policy: PolicyConfig = PolicyConfig()


_NAME = re.compile(r"^[a-z0-9_-]+$")


def weight_problem(w: object) -> bool:
    """Whether ``w`` is not a mixture weight (a non-negative finite number; a bool is not one). One rule for the
    ``mix.weights`` config and the Python API's ``weights=`` (:func:`robodata.mix.normalise_weights`)."""
    return isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0


def _check_name(v: str, what: str) -> str:
    if not _NAME.match(v):
        raise ValueError(f"{what} {v!r}: lowercase letters, digits, '_' and '-' only (it is a partition key)")
    return v


class VideoSourceConfig(_Strict):
    """A folder or bucket of clips (MP4, WebM, MKV, with optional ``clip.txt`` / ``clip.json`` captions) that the
    ``video_clips`` asset scans as one partition, into one layer of the mixed release."""

    name: str = Field(description="the partition key: lowercase letters, digits, '_' and '-'")
    url: str = Field(description="folder or bucket URL (a relative path resolves against the config file's folder)")
    layer: str = Field("internet", description="the release layer: internet, generated or any layer name")
    kind: Literal["video", "cosmos"] | None = Field(
        None, description="video: clips with sidecar captions; cosmos: generated clips (Cosmos Transfer outputs or "
        "the augmented_videos clip folder) with their provenance; default: cosmos in the generated layer")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "video source name")

    @field_validator("layer")
    @classmethod
    def _layer(cls, v: str) -> str:
        return _check_name(v, "video source layer")

    @property
    def listing(self) -> Literal["video", "cosmos"]:
        """How the source's clips are listed: ``cosmos`` (generated, with provenance) or ``video``."""
        return self.kind or ("cosmos" if self.layer == "generated" else "video")

    def resolved_url(self, cfg: ProjectConfig) -> str:
        """``url`` resolved like every path of the config (a URL as it is)."""
        return cfg._local(self.url)


class VideoConfig(_Strict):
    """The video source tier: the corpora to scan, how clips are split, filtered and deduplicated, and how
    accepted shots become observation-only episodes in the mixed release."""

    sources: list[VideoSourceConfig] = Field([], description="one video_clips partition each (none: no video tier)")
    corpus: VideoCorpusConfig = VideoCorpusConfig()
    episodes: ObservationEpisodesConfig = ObservationEpisodesConfig()
    index: str | None = Field(None, description="the shot index (SQLAlchemy URL or path) that dedups across "
                              "sources and earlier scans; default: in the store, or the project home for a "
                              "remote store")

    @field_validator("sources")
    @classmethod
    def _unique(cls, v: list[VideoSourceConfig]) -> list[VideoSourceConfig]:
        seen: set[str] = set()
        for s in v:
            if s.name in seen:
                raise ValueError(f"video source name {s.name!r} is used twice (names are partition keys)")
            seen.add(s.name)
        return v

    def index_url(self, cfg: ProjectConfig, store_root: Path | None) -> str:
        """The shot index: ``index`` (a path resolves like every path of the config), else
        ``video/shots.sqlite`` under ``store_root`` (a local store's folder) or, for a remote store (None), under
        the project home (SQLite wants a local file, as the registry does)."""
        from robodata import store_layout as layout

        if self.index:
            return self.index if "://" in self.index else cfg._local(self.index)
        return str((store_root or cfg.home_dir) / layout.VIDEO_SHOT_INDEX)


class MixReleaseConfig(_Strict):
    """The mixed release (``mixed_release``): the robot release as layer ``robot_layer`` plus every video source's
    layer, drawn with ``weights`` (layer -> non-negative number, normalised; none: equal)."""

    enabled: bool | None = Field(None, description="cut mixed releases (default: when video sources are configured)")
    robot_layer: str = Field("teleop", description="the layer the robot release (lerobot_dataset) goes into")
    weights: dict[str, float] = Field({}, description="layer -> mixture weight")

    @field_validator("robot_layer")
    @classmethod
    def _layer(cls, v: str) -> str:
        return _check_name(v, "mix.robot_layer")

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        for k, w in v.items():
            if weight_problem(w):
                raise ValueError(f"weight of layer {k!r} is {w}: a weight is a non-negative number")
        return v

    def active(self, video: VideoConfig) -> bool:
        """Whether the graph has a mixed release: ``enabled``, or by default whenever video sources exist."""
        return bool(video.sources) if self.enabled is None else self.enabled


class ProjectConfig(_Strict):
    home: str | None = None
    storage_root: str | None = None
    landing_root: str | None = None
    landing: LandingConfig = LandingConfig()
    sources: list[SourceConfig] = [SourceConfig()]
    topic_map: str | dict[str, Any] | None = None
    ray: RayConfig = RayConfig()
    num_gpus: float = Field(0, ge=0)
    tiers: TiersConfig = TiersConfig()
    quality: QualityConfig = QualityConfig()
    metrics: MetricsConfig = MetricsConfig()
    demo: DemoConfig = DemoConfig()
    instance: InstanceConfig = InstanceConfig()  # the Dagster instance's storage (runs.py writes dagster.yaml)
    retries: RetryConfig = RetryConfig()  # tier steps after a transient fault (assets/partitions.py retry_policy)
    video: VideoConfig = VideoConfig()  # the video source tier (assets/video.py): web, human and generated clips
    mix: MixReleaseConfig = MixReleaseConfig()  # the mixed release of the robot release and the video layers
    # A pipeline YAML (the Python API's declarative form) whose stages and validators the platform adds as
    # tiers between the recording tiers and lerobot_episodes (each stage its own asset).
    pipeline: str | None = None

    # Where the file came from (relative paths in it resolve against its folder).
    source_file: str | None = Field(None, exclude=True)
    # The folder relative paths resolve against, fixed when the file is loaded (a later chdir moves nothing).
    _base: Path | None = PrivateAttr(None)

    @field_validator("sources")
    @classmethod
    def _nonempty(cls, v: list[SourceConfig]) -> list[SourceConfig]:
        if not v:
            raise ValueError("at least one source")
        return v

    @model_validator(mode="after")
    def _no_secrets(self) -> ProjectConfig:
        from robodata.secrets import find_secrets

        found = find_secrets(self.model_dump(mode="json"))
        if found:
            raise ValueError(f"{', '.join(found)}: secrets must come from environment variables")
        return self

    # ---- resolved locations -------------------------------------------------------------------------
    # The rule: relative paths in a config file (``--config``, ``$ROBODATA_CONFIG``, ``./robodata.yaml``) resolve
    # against that file's folder; with no file (the embedded defaults) against the folder the config was loaded
    # in, never inside the installed package; ``$ROBODATA_HOME`` (relative: to the current folder) wins for the
    # home. Every derived location (Dagster home, store, landing zone, registry, logs) follows the home.
    @property
    def base_dir(self) -> Path:
        """The folder relative paths resolve against: the config file's, or (embedded defaults, or a config built
        in code) the current folder when the config was loaded."""
        if self._base is not None:
            return self._base
        if not self.source_file or _is_embedded_defaults(Path(self.source_file)):
            return Path.cwd()
        return Path(self.source_file).parent

    def _local(self, path: str) -> str:
        """A local path resolved against ``base_dir``; a URL (``s3://...``) as it is."""
        if "://" in path:
            return path
        p = Path(path).expanduser()
        return str(p if p.is_absolute() else (self.base_dir / p).resolve())

    @property
    def home_dir(self) -> Path:
        env = os.environ.get(HOME_ENV)
        if env:
            return Path(env).expanduser().resolve()  # relative: to the current folder, as any shell path
        return Path(self._local(self.home or ".robodata"))

    @property
    def dagster_home(self) -> Path:
        return self.home_dir / "dagster"

    @property
    def logs_dir(self) -> Path:
        """Where dependency and encoder chatter goes (``robodata.log``) unless ``--verbose``."""
        return self.home_dir / "logs"

    @property
    def storage_url(self) -> str:
        return self._local(self.storage_root) if self.storage_root else str(self.home_dir / "store")

    @property
    def landing_url(self) -> str:
        return self._local(self.landing_root) if self.landing_root else str(self.home_dir / "landing")

    @property
    def registry_url(self) -> str:
        """The recording registry's database (SQLAlchemy URL); a relative SQLite file resolves like any path."""
        url = (self.landing.registry or os.environ.get(REGISTRY_ENV)  # a PostgreSQL URL with its password
               or f"sqlite:///{self.home_dir / 'registry.sqlite3'}")
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url[len(prefix):] not in ("", ":memory:"):
            url = prefix + self._local(url[len(prefix):])
        return url

    def _resolve(self, ref: str | dict[str, Any] | None) -> TopicMap | None:
        if ref is None:
            return None
        if isinstance(ref, dict):
            return load_topic_map(ref)
        p = Path(ref)
        if not p.is_absolute():
            cand = self.base_dir / p
            p = cand if cand.exists() else Path(__file__).parent.parent / p
        return load_topic_map(p)

    def pipeline_spec(self) -> Any:
        """The configured pipeline spec (a robodata.api.spec.PipelineSpec), or None."""
        if not self.pipeline:
            return None
        from robodata.api.spec import load_spec

        p = Path(self.pipeline)
        return load_spec(p if p.is_absolute() else self.base_dir / p)

    def datasources(self) -> list[Any]:
        """The configured pipeline's datasources (robodata.api.Datasource objects): in the platform they say
        which more landed files are recordings and ingest them (a plugin's CSV reader, say)."""
        spec = self.pipeline_spec()
        if spec is None or not spec.sources:
            return []
        from robodata import plugins

        return [plugins.get("datasources", s.type)(s.path, topic_map=s.topic_map, pattern=s.pattern, **s.options)
                for s in spec.sources]

    def topic_map_for(self, filename: str) -> TopicMap | None:
        """The topic map for a landed file: the first source whose pattern matches, else the default."""
        base = filename.rsplit("/", 1)[-1]  # a pattern matches the landed path or the file's own name
        for src in self.sources:
            if (fnmatch.fnmatch(filename, src.pattern) or fnmatch.fnmatch(base, src.pattern)) \
                    and src.topic_map is not None:
                return self._resolve(src.topic_map)
        return self._resolve(self.topic_map)

    def hdf5_options_for(self, filename: str) -> dict[str, Any]:
        """How to read a landed HDF5 file: the options of the first matching source that sets any."""
        base = filename.rsplit("/", 1)[-1]
        for src in self.sources:
            if (fnmatch.fnmatch(filename, src.pattern) or fnmatch.fnmatch(base, src.pattern)) and src.hdf5_options():
                return src.hdf5_options()
        return {}

    def storage_options(self) -> dict[str, Any]:
        from robodata.storage import storage_options

        return storage_options()


def load_config(path: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None) -> ProjectConfig:
    """Load and validate the project config; errors name the file and the key."""
    if path is None:
        path = os.environ.get(CONFIG_ENV) or ("robodata.yaml" if Path("robodata.yaml").exists() else DEFAULTS_FILE)
    p = Path(path)
    data = read_yaml(p, ConfigError, "config file") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the config must be a mapping of keys to values")
    from robodata.secrets import find_secrets

    # the file and the --set overrides alike (they end up in run configs and metadata)
    for where, doc in ((str(p), data), ("--set", overrides or {})):
        found = find_secrets(doc)
        if found:
            raise ConfigError(f"{where}: {', '.join(found)}: secrets must come from environment variables "
                              "(AWS_*, MLFLOW_TRACKING_PASSWORD, $ROBODATA_REGISTRY_URL, $ROBODATA_STORAGE_OPTIONS), "
                              "never the config")
    data = _deep_merge(data, overrides or {})
    try:
        cfg = ProjectConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, str(p))) from err
    cfg.source_file = str(p.resolve())
    cfg._base = Path.cwd() if _is_embedded_defaults(p) else p.resolve().parent
    # Validate referenced topic maps now, so a broken one fails at load time with its own file named.
    cfg.topic_map_for("")
    for src in cfg.sources:
        cfg._resolve(src.topic_map)
    return cfg


def _is_embedded_defaults(path: Path) -> bool:
    """The defaults shipped in the package: their relative paths must never resolve inside it (site-packages)."""
    try:
        return path.resolve() == DEFAULTS_FILE.resolve()
    except OSError:
        return False


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["tiers.lerobot.crf=28", "seed=3"]`` -> a nested dict (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not KEY=VALUE")
        key, val = item.split("=", 1)
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(val)
    return out
