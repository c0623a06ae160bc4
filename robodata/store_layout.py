"""Where each tier's output lives in the data store: the one home of these paths.

Every runner (the Dagster assets, the Python API, the CLI) and every reader (releases, the sensor, tests)
asks this module instead of formatting a path itself.
"""

from __future__ import annotations

RAW_TELEOP = "raw_teleop"
SYNTHETIC_DEMOS = "synthetic_demos"
AUGMENTED_VIDEOS = "augmented_videos"
EPISODE_TIERS = (RAW_TELEOP, SYNTHETIC_DEMOS, AUGMENTED_VIDEOS)  # tiers holding canonical episode stores
CUSTOM_STAGES = "stages"  # the outputs of users' pipeline stages: stages/<name>/<key>.hdf5

LEROBOT_SHARDS = "lerobot/episodes"
RELEASES = "lerobot/releases"
LATEST = f"{RELEASES}/latest.json"  # the pointer to the newest release whose checks passed
REGISTRY = "registry/recordings"  # one JSON per recording partition: which landed file it is
POLICY_RUNS = "policy/runs"
POLICY_LATEST = "policy/latest.json"  # the promoted checkpoint
VIDEO = "video"  # the video source tier: video/<source>/shots.json per configured source
VIDEO_SHOT_INDEX = f"{VIDEO}/shots.sqlite"  # the shot index (dedup across sources and scans), local stores
MIXED_RELEASES = "mixed/releases"  # releases mixed from the robot release and the video layers
MIXED_LATEST = "mixed/latest.json"  # the pointer to the newest mixed release whose checks passed


def episodes_path(tier: str, key: str) -> str:
    """A recording's canonical episodes (Isaac Lab HDF5) in one of the episode tiers."""
    if tier not in EPISODE_TIERS:
        raise ValueError(f"{tier!r} is not an episode tier ({', '.join(EPISODE_TIERS)})")
    return f"{tier}/{key}.hdf5"


def custom_stage_path(stage: str, key: str) -> str:
    """A recording's episodes after a user's pipeline stage (a plugin's or robodata's) in the platform."""
    return f"{CUSTOM_STAGES}/{stage}/{key}.hdf5"


def tier_episodes_path(tier: str, key: str) -> str:
    """A recording's episodes in ``tier``: an episode tier, or ``stages/<name>`` for a user's pipeline stage.

    A downstream tier reads exactly the one tier it follows (the project config decides which), never
    "whichever is present"."""
    if tier.startswith(f"{CUSTOM_STAGES}/"):
        return custom_stage_path(tier.split("/", 1)[1], key)
    return episodes_path(tier, key)


def overview_path(tier: str, key: str) -> str:
    """The overview plot an episode tier writes beside a recording's episodes."""
    return f"{tier}/{key}.overview.png"


def profile_path(tier: str, key: str) -> str:
    """The profiling report (self-contained HTML) of a recording's output in a tier, or of a release."""
    return f"{tier}/{key}.profile.html"


def videos_path(key: str) -> str:
    """The camera clips (MP4 per camera per demo) the augmentation tier exports and augments."""
    return f"{AUGMENTED_VIDEOS}/{key}"


def failed_demos_path(key: str) -> str:
    """The failed generation trials of a recording, kept apart for analysis (``datagen.keep_failed``)."""
    return f"{SYNTHETIC_DEMOS}/{key}.failed.hdf5"


def shard_path(key: str) -> str:
    """A recording's episodes as a LeRobot v3.0 dataset (the per-recording shard of a release)."""
    return f"{LEROBOT_SHARDS}/{key}"


def shard_version_path(key: str, version: str) -> str:
    """One version of a recording's shard, named by its content digest: written once, never replaced, so a
    release that read the version from the registry reads exactly that content (``<key>@<version>``)."""
    return f"{shard_path(key)}@{version}"


def shard_parts_path(key: str) -> str:
    """Where one-episode parts of a shard are written before they are joined."""
    return f"{shard_path(key)}.parts"


def release_path(release: str) -> str:
    return f"{RELEASES}/{release}"


def video_manifest_path(source: str) -> str:
    """A video source's accepted shots, rejections and findings from its last scan that passed its checks."""
    return f"{VIDEO}/{source}/shots.json"


def mixed_release_path(release: str) -> str:
    """A mixed release (robot/, video/, mixture.json, profile.html), named by what went in."""
    return f"{MIXED_RELEASES}/{release}"


def registry_path(key: str) -> str:
    return f"{REGISTRY}/{key}.json"


def policy_run_path(run: str) -> str:
    """A training run's output folder (checkpoints, trainer log, result), where a resumed run continues."""
    return f"{POLICY_RUNS}/{run}"


def policy_candidate_path(run: str) -> str:
    """A training run's candidate record (checkpoint, metrics, eval): published once it passed the
    not-worse-than-promoted check, quarantined otherwise; only a published one is promoted to POLICY_LATEST."""
    return f"{POLICY_RUNS}/{run}.candidate.json"


# The Python API's working store (beside its output unless configured): the same tier layout as the
# platform's store for canonical episodes, plus one-episode parts, changed arrays and per-run records.
PIPELINE = "pipeline"


def pipeline_part_path(part_id: str) -> str:
    """A one-episode LeRobot v3.0 part, named by everything that shapes it (resume skips it when present)."""
    return f"{PIPELINE}/parts/{part_id}"


def pipeline_arrays_path(signature: str) -> str:
    """Low-dim arrays a stage changed (``.npz``), named by their content."""
    return f"{PIPELINE}/arrays/{signature}.npz"


def pipeline_run_path(run_id: str) -> str:
    """One run's records: events (failures, drops, quarantines) and its result."""
    return f"{PIPELINE}/runs/{run_id}"
