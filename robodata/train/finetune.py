"""One fine-tuning run from release to registry: plan it, (someone launches it), then evaluate, track, promote.

The launch itself belongs to the caller (the ``policy_checkpoint`` asset launches through Dagster Pipes:
subprocess, Kubernetes pod or Ray job); everything before and after is here, free of Dagster.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robodata import store_layout as layout
from robodata.atomic import atomic_write_text
from robodata.errors import RobodataError
from robodata.lerobot.layout import INFO_PATH, RELEASE_INFO_PATH, V30
from robodata.lerobot.metadata import read_info
from robodata.storage import DataStore
from robodata.train.commands import TrainCommand, build_command
from robodata.train.config import PolicyConfig
from robodata.train.evaluate import EvalReport, evaluate_checkpoint, holdout_split
from robodata.train.runner import RESULT_FILE, TrainResult, dir_bytes, last_checkpoint

RELEASES = layout.RELEASES
LATEST_RELEASE = layout.LATEST
POLICY_RUNS = layout.POLICY_RUNS
POLICY_LATEST = layout.POLICY_LATEST


class TrainError(RobodataError):
    """A fine-tuning run cannot start or did not produce a usable checkpoint; the message says which and why."""


@dataclass
class ReleaseRef:
    release: str
    root: Path
    format: str
    recordings: list[str]
    upstream_versions: dict[str, str]
    episodes: int
    frames: int
    repo_id: str


@dataclass
class RunPlan:
    name: str
    output_dir: Path
    command: TrainCommand
    train_episodes: list[int]
    heldout_episodes: list[int]
    completed: TrainResult | None = None  # this release + config already trained: nothing to do
    params: dict[str, Any] = field(default_factory=dict)


def resolve_release(store: DataStore, release: str = "latest") -> ReleaseRef:
    """The ``lerobot_dataset`` release to train on: ``latest`` (the last one that passed its checks) or an id."""
    if release in ("", "latest"):
        if not store.exists(LATEST_RELEASE):
            raise TrainError(f"{store.url(LATEST_RELEASE)} does not exist: no lerobot_dataset release has passed "
                             "its checks yet (materialize lerobot_dataset first)")
        release = json.loads(store.local_path(LATEST_RELEASE).read_text())["release"]
    rel = f"{RELEASES}/{release}"
    if not store.exists(f"{rel}/{INFO_PATH}"):
        raise TrainError(f"release {release!r}: {store.url(rel)} is not a LeRobot dataset (no {INFO_PATH})")
    root = store.local_path(rel)
    info = read_info(root)
    meta_file = root / RELEASE_INFO_PATH
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    return ReleaseRef(release, root, str(info.get("codebase_version", V30)), list(meta.get("recordings", [])),
                      dict(meta.get("upstream_versions", {})), int(info.get("total_episodes", 0)),
                      int(info.get("total_frames", 0)), str(meta.get("repo_id") or "local/robodata"))


def check_release(ref: ReleaseRef) -> None:
    """Refuse a release that fails robodata's dataset checks (the ones ``lerobot_dataset`` runs)."""
    from robodata.lerobot import validate_dataset

    errors = [str(f) for f in validate_dataset(ref.root) if f.severity == "error"]
    if errors:
        raise TrainError(f"release {ref.release} at {ref.root} fails its checks ({len(errors)} errors, first: "
                         f"{errors[0]}); not training on it")


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_gpus(cfg: PolicyConfig) -> None:
    """A config that asks for GPUs on the local launcher must find them here (k8s / Ray schedule their own)."""
    if cfg.launcher != "subprocess":
        return
    want = cfg.num_gpus or (1 if cfg.device == "cuda" else 0)
    if want and visible_gpus() < want:
        raise TrainError(f"tiers.policy asks for {want} GPU(s) (num_gpus={cfg.num_gpus}, device={cfg.device}) but "
                         f"this machine has {visible_gpus()}; use launcher k8s/ray, or num_gpus=0 device=cpu")


def run_name(cfg: PolicyConfig, release: str) -> str:
    digest = hashlib.sha1(json.dumps(cfg.signature(), sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{release}-{cfg.engine}-{cfg.policy_type if cfg.engine == 'lerobot' else 'gr00t'}-{digest}"


def plan_run(cfg: PolicyConfig, ref: ReleaseRef, runs_root: str | Path) -> RunPlan:
    """Where this run writes, which episodes it trains on, the trainer's command line (resuming when it can)."""
    name = run_name(cfg, ref.release)
    out = Path(runs_root) / name
    train, held = holdout_split(ref.episodes, cfg.holdout_fraction, ref.release)
    completed = None
    result = out / RESULT_FILE
    if result.exists() and not cfg.retrain:
        prev = TrainResult.from_dict(json.loads(result.read_text()))
        if prev.ok and prev.checkpoint and Path(prev.checkpoint).exists():
            completed = prev
    if cfg.retrain and out.exists():
        shutil.rmtree(out)
    if completed is None and out.exists() and last_checkpoint(cfg.engine, out) is None:
        shutil.rmtree(out)  # a run that died before its first checkpoint: nothing to resume, start clean
    elif completed is None and result.exists():
        result.unlink()
    cmd = build_command(cfg, ref.root, out, repo_id=ref.repo_id, dataset_format=ref.format,
                        train_episodes=train if held else None)
    params = {**{f"policy.{k}": v for k, v in cfg.signature().items() if not isinstance(v, dict)},
              "release": ref.release, "dataset_format": ref.format, "train_episodes": train,
              "heldout_episodes": held, "command": cmd.shell()}
    atomic_write_text(Path(runs_root) / f"{name}.split.json",
                      json.dumps({"release": ref.release, "train": train, "heldout": held}))
    return RunPlan(name, out, cmd, train, held, completed, params)


def lineage_tags(ref: ReleaseRef) -> dict[str, str]:
    return {"robodata.release": ref.release, "robodata.dataset_format": ref.format,
            "robodata.dataset_path": str(ref.root), "robodata.recordings": json.dumps(ref.recordings),
            "robodata.upstream_versions": json.dumps(ref.upstream_versions)[:5000]}


def read_promoted(store: DataStore) -> dict[str, Any] | None:
    return json.loads(store.local_path(POLICY_LATEST).read_text()) if store.exists(POLICY_LATEST) else None


def evaluate(cfg: PolicyConfig, plan: RunPlan, ref: ReleaseRef, checkpoint: str) -> EvalReport | None:
    """Held-out action error and simulator rollouts (lerobot checkpoints; GR00T ones are evaluated on GPU)."""
    if cfg.engine != "lerobot":
        return None
    return evaluate_checkpoint(checkpoint, ref.root, release=ref.release, heldout=plan.heldout_episodes,
                               repo_id=ref.repo_id, max_frames=cfg.eval_max_frames, rollouts=cfg.rollouts,
                               rollout_steps=cfg.rollout_steps)


def compare_with_promoted(cfg: PolicyConfig, plan: RunPlan, ref: ReleaseRef, report: EvalReport | None,
                          promoted: dict[str, Any] | None) -> tuple[bool, str, dict[str, float] | None]:
    """Is the candidate at least as good as the promoted checkpoint on the *same* eval?

    The promoted checkpoint is re-evaluated on this run's eval when its stored numbers come from another
    one (another release, another held-out split); lower ``promote_metric`` wins (higher for success rates).
    Returns (promote, reason, the previous checkpoint's metrics on this eval).
    """
    if promoted is None:
        return True, "first checkpoint", None
    if report is None:
        return True, f"{cfg.engine} checkpoints are not evaluated locally; promoted on a successful run", None
    prev = None
    if promoted.get("eval", {}).get("signature") == report.signature:
        prev = {k: v for k, v in promoted.get("metrics", {}).items() if k.startswith("eval_")}
    elif promoted.get("engine") == "lerobot" and promoted.get("checkpoint") and Path(promoted["checkpoint"]).exists():
        try:
            again = evaluate(cfg, plan, ref, promoted["checkpoint"])
            prev = again.metrics() if again is not None else None
        except RobodataError as err:
            return True, f"the promoted checkpoint cannot be evaluated on this release ({err})", None
    if not prev or cfg.promote_metric not in prev or cfg.promote_metric not in report.metrics():
        return True, "no comparable metric for the promoted checkpoint", prev
    new, old = report.metrics()[cfg.promote_metric], prev[cfg.promote_metric]
    higher_better = "success" in cfg.promote_metric
    better = new >= old if higher_better else new <= old
    word = "at least as good as" if better else "worse than"
    return better, f"{cfg.promote_metric} {new:.4g} is {word} the promoted {promoted.get('run')}'s {old:.4g}", prev


def write_promoted(store: DataStore, entry: dict[str, Any]) -> None:
    with store.write_path(POLICY_LATEST) as p:
        p.write_text(json.dumps(entry, indent=1))


def checkpoint_size(path: str | Path) -> int:
    return dir_bytes(path)
