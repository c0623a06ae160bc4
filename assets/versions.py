"""Code versions and data versions of the assets: digests of what shapes each tier's output.

Dagster marks a materialized partition STALE when its asset's ``code_version`` differs from the one it was
materialized with (cause category CODE), or when an input's data version differs from the one it read (DATA);
"Materialize stale" in the UI then re-runs exactly those. So every asset's ``code_version`` is a short digest
of :data:`CODE_REVISIONS` (bump a tier's entry when its code changes what it writes) and the config settings
that shape its output, and nothing else: settings that only say where or how fast something runs (launchers,
namespaces, partitions per run, timeouts, batch sizes of a fan-out) are left out, so changing them marks
nothing stale. ``robodata.__version__`` is left out too: a release of the package that does not change a
tier's output must not force a re-run of every recording through MimicGen and augmentation.

A ``data_version`` (what downstream staleness compares) is, per robot x day partition, the digest of its
recordings' output versions (``assets/partitions.py``), each derived from the recording's inputs (its
upstream output's version) and this tier's code version, plus what it wrote, so that a re-run that changed
nothing leaves downstream FRESH.
"""

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from robodata.config import ProjectConfig

# Bump a tier's revision when its code changes what it writes (its partitions then show as stale).
CODE_REVISIONS: Mapping[str, int] = {
    "raw_teleop": 1,
    "synthetic_demos": 1,
    "augmented_videos": 3,  # 2: real JPEG round trip, per-clip noise field; 3: the CPU path in OpenCV
    "custom_stage": 1,
    "lerobot_episodes": 1,
    "lerobot_dataset": 1,
    "policy_checkpoint": 1,
}


def digest(*parts: Any) -> str:
    """A short, stable digest of JSON-able parts (dict keys sorted)."""
    doc = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(doc.encode()).hexdigest()[:12]


def _versioned(tier: str, settings: Any) -> str:
    return f"{tier}-r{CODE_REVISIONS[tier]}-{digest(settings)}"


# ---- what shapes each tier's output ------------------------------------------------------------------------


def raw_teleop_content_settings(cfg: ProjectConfig) -> dict[str, Any]:
    """The ``tiers.raw_teleop`` settings that shape the episodes downstream reads (the recording's own topic
    map is in the library's per-partition data version). ``image_compression`` changes the stored bytes, not
    the frames read back."""
    return cfg.tiers.raw_teleop.model_dump(mode="json", exclude={"image_compression"})


def raw_teleop_settings(cfg: ProjectConfig, spec: Any = None) -> dict[str, Any]:
    """``tiers.raw_teleop``, every source's pattern and resolved topic map
    (the file's content, not its path), the default topic map, and the pipeline YAML's datasources."""
    def topic_map(ref: Any) -> Any:
        tm = cfg._resolve(ref)
        return tm.model_dump(mode="json") if tm is not None else None

    datasources = []
    for s in getattr(spec, "sources", None) or []:
        doc = s.model_dump(mode="json")
        if s.topic_map is not None:
            from robodata.topicmap import load_topic_map

            try:
                doc["topic_map"] = load_topic_map(s.topic_map).model_dump(mode="json")
            except Exception:  # noqa: BLE001 - a map the datasource resolves itself: its reference then counts
                pass
        datasources.append(doc)
    return {
        "tier": cfg.tiers.raw_teleop.model_dump(mode="json"),
        "sources": [{"pattern": s.pattern, "topic_map": topic_map(s.topic_map), **s.hdf5_options()} for s in cfg.sources],
        "default_topic_map": topic_map(cfg.topic_map),
        "datasources": datasources,
    }


def synthetic_demos_settings(cfg: ProjectConfig) -> dict[str, Any]:
    """``tiers.synthetic_demos`` with its engine; the Isaac Lab Mimic section only when that engine is chosen,
    less where its container runs (launcher, namespace)."""
    c = cfg.tiers.synthetic_demos
    out = c.model_dump(mode="json", exclude={"enabled", "max_partitions_per_run", "isaaclab"})
    if c.engine == "isaaclab":
        out["isaaclab"] = c.isaaclab.model_dump(mode="json", exclude={"launcher", "namespace"})
    return out


def augmented_videos_settings(cfg: ProjectConfig) -> dict[str, Any]:
    """``tiers.augmented_videos`` with the chosen engine's section only: for ``local`` less ``device``, the batch
    and thread settings (the draws are per clip: any batch gives the same frames), for ``cosmos`` less launcher,
    namespace and timeout."""
    c = cfg.tiers.augmented_videos
    out = c.model_dump(mode="json", exclude={"enabled", "local", "cosmos"})
    if c.engine == "local":
        out["local"] = c.local.model_dump(mode="json", exclude={"device", "batch_frames", "cpu_batch", "gpu_max_batch",
                                                                "gpu_memory_fraction", "torch_threads"})
    else:
        out["cosmos"] = c.cosmos.model_dump(mode="json", exclude={"launcher", "namespace", "timeout_s"})
    return out


def lerobot_episodes_settings(cfg: ProjectConfig) -> dict[str, Any]:
    """What shapes a shard: the video codec, crf and gop. Not ``version`` (a shard is always LeRobot v3.0; the
    release converts), not ``recordings`` nor ``repo_id`` (release settings)."""
    return cfg.tiers.lerobot.model_dump(mode="json", include={"codec", "crf", "gop"})


def lerobot_dataset_settings(cfg: ProjectConfig) -> dict[str, Any]:
    """The release's format, selection and dataset id (the codec is the shards'; a release copies packets)."""
    return cfg.tiers.lerobot.model_dump(mode="json", include={"version", "recordings", "repo_id"})


def policy_settings(cfg: ProjectConfig) -> dict[str, Any]:
    """What gets trained (``PolicyConfig.signature``: engine, policy, steps, seed, trainer args, ...), on which
    release, and how it is evaluated and promoted; not where it runs or how it is tracked."""
    p = cfg.tiers.policy
    return {**p.signature(), **p.model_dump(mode="json", include={"release", "eval_max_frames", "rollouts",
                                                                  "rollout_steps", "promote_metric"})}


def raw_teleop_version(cfg: ProjectConfig, spec: Any = None) -> str:
    return _versioned("raw_teleop", raw_teleop_settings(cfg, spec))


def synthetic_demos_version(cfg: ProjectConfig) -> str:
    return _versioned("synthetic_demos", synthetic_demos_settings(cfg))


def augmented_videos_version(cfg: ProjectConfig) -> str:
    return _versioned("augmented_videos", augmented_videos_settings(cfg))


def custom_stage_version(name: str, options: Mapping[str, Any], validators: Any, batch_size: int, seed: int) -> str:
    """A pipeline stage: its name and options, the pipeline's episode validators (they decide what is kept),
    its batch size and seed."""
    return _versioned("custom_stage", {"stage": name, "options": dict(options), "validators": validators,
                                       "batch_size": batch_size, "seed": seed})


def lerobot_episodes_version(cfg: ProjectConfig) -> str:
    return _versioned("lerobot_episodes", lerobot_episodes_settings(cfg))


def lerobot_dataset_version(cfg: ProjectConfig) -> str:
    return _versioned("lerobot_dataset", lerobot_dataset_settings(cfg))


def policy_checkpoint_version(cfg: ProjectConfig) -> str:
    return _versioned("policy_checkpoint", policy_settings(cfg))
