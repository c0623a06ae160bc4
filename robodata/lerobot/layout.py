"""The LeRobot dataset layouts (v3.0 and v2.1), written down once: versions, paths, default columns, limits."""

from __future__ import annotations

from typing import Any

V30 = "v3.0"
V21 = "v2.1"
V20 = "v2.0"
VERSIONS = (V30, V21)

# Columns every frame row carries (lerobot's DEFAULT_FEATURES), in lerobot's order.
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}

OBSERVATION_PREFIX = "observation."  # every observation feature: observation.<name>
STATE_KEY = "observation.state"
ACTION_KEY = "action"
IMAGES_PREFIX = "observation.images."

DEFAULT_CHUNK_SIZE = 1000  # files per chunk folder
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 200

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{int(q * 100):02d}" for q in QUANTILES)
STAT_KEYS = ("min", "max", "mean", "std", "count", *QUANTILE_KEYS)

# Top-level folders of a dataset (both versions). Paths below are spelled out in full, so a grep for
# "meta/info.json" lands here.
META_DIR = "meta"
DATA_DIR = "data"
VIDEOS_DIR = "videos"

# Both versions.
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
MODALITY_PATH = "meta/modality.json"  # GR00T's; v3.0 shards from episode stores carry one too
RELEASE_INFO_PATH = "meta/robodata_release.json"  # robodata's provenance of a release [extension]

# v3.0: many episodes per file.
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
CHUNK_FILE_GLOB = "chunk-*/file-*"
V30_DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
V30_VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
V30_EPISODES_DIR = "meta/episodes"
V30_EPISODES_PATH = V30_EPISODES_DIR + "/" + CHUNK_FILE + ".parquet"
V30_EPISODES_GLOB = CHUNK_FILE_GLOB + ".parquet"  # under V30_EPISODES_DIR
V30_TASKS_PATH = "meta/tasks.parquet"

# v3.0 episode-table columns locating an episode's rows and video (lerobot's names; see video_column()).
DATA_CHUNK_COLUMN = "data/chunk_index"
DATA_FILE_COLUMN = "data/file_index"
EPISODES_CHUNK_COLUMN = "meta/episodes/chunk_index"
EPISODES_FILE_COLUMN = "meta/episodes/file_index"
LOCATION_PREFIXES = ("data/", "videos/", "dataset_")  # the columns kept in EpisodeMeta.location

# v2.x: one parquet and one MP4 per episode (what GR00T N1.5 reads).
V21_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V21_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
V21_EPISODES_PATH = "meta/episodes.jsonl"
V21_EPISODES_STATS_PATH = "meta/episodes_stats.jsonl"
V21_TASKS_PATH = "meta/tasks.jsonl"

# Shorter names for the same paths.
TASKS_PATH = V30_TASKS_PATH
EPISODES_JSONL = V21_EPISODES_PATH
TASKS_JSONL = V21_TASKS_PATH
EPISODES_STATS_JSONL = V21_EPISODES_STATS_PATH

# GR00T's language annotation: a column of indices into tasks.jsonl.
ANNOTATION_PREFIX = "annotation."
TASK_ANNOTATION = "human.action.task_description"
TASK_ANNOTATION_COLUMN = ANNOTATION_PREFIX + TASK_ANNOTATION

# info.json keys each version must carry.
V30_INFO_KEYS = (
    "codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks", "chunks_size",
    "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits", "data_path", "video_path", "features",
)  # fmt: skip
V21_INFO_KEYS = (
    "codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks", "total_videos",
    "total_chunks", "chunks_size", "fps", "splits", "data_path", "video_path", "features",
)  # fmt: skip


def observation_key(name: str) -> str:
    """The LeRobot feature key of an observation (``observation.<name>``)."""
    return OBSERVATION_PREFIX + name


def camera_key(camera: str) -> str:
    """The LeRobot feature key of a camera (``observation.images.<camera>``)."""
    return camera if camera.startswith(IMAGES_PREFIX) else IMAGES_PREFIX + camera


def video_column(video_key: str, field: str) -> str:
    """A v3.0 episode-table column of a camera: ``videos/<key>/<field>`` (``chunk_index``, ``file_index``,
    ``from_timestamp``, ``to_timestamp``)."""
    return f"{VIDEOS_DIR}/{video_key}/{field}"


def v30_data_path(chunk_index: int, file_index: int) -> str:
    """The v3.0 data file ``data/chunk-XXX/file-XXX.parquet``, relative to the dataset root."""
    return V30_DATA_PATH.format(chunk_index=chunk_index, file_index=file_index)


def v30_video_path(video_key: str, chunk_index: int, file_index: int) -> str:
    """The v3.0 video file ``videos/<key>/chunk-XXX/file-XXX.mp4``, relative to the dataset root."""
    return V30_VIDEO_PATH.format(video_key=video_key, chunk_index=chunk_index, file_index=file_index)


def v30_episodes_path(chunk_index: int, file_index: int) -> str:
    """The v3.0 episode table ``meta/episodes/chunk-XXX/file-XXX.parquet``, relative to the dataset root."""
    return V30_EPISODES_PATH.format(chunk_index=chunk_index, file_index=file_index)


def v21_data_path(episode_index: int, chunks_size: int = DEFAULT_CHUNK_SIZE) -> str:
    """The v2.1 data file of an episode, relative to the dataset root."""
    return V21_DATA_PATH.format(episode_chunk=episode_index // chunks_size, episode_index=episode_index)


def v21_video_path(video_key: str, episode_index: int, chunks_size: int = DEFAULT_CHUNK_SIZE) -> str:
    """The v2.1 video file of an episode and camera, relative to the dataset root."""
    return V21_VIDEO_PATH.format(
        episode_chunk=episode_index // chunks_size, video_key=video_key, episode_index=episode_index
    )

