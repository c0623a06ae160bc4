"""Offline evaluation of a lerobot checkpoint: action error on held-out episodes and rollouts in the simulator."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robodata.errors import RobodataError
from robodata.lerobot.layout import ACTION_KEY, IMAGES_PREFIX, OBSERVATION_PREFIX, TASKS_PATH, observation_key
from robodata.lerobot.metadata import read_info


class EvaluationError(RobodataError):
    """A checkpoint cannot be evaluated (unreadable, or its features do not match the dataset)."""


def holdout_split(n_episodes: int, fraction: float, key: str) -> tuple[list[int], list[int]]:
    """Deterministic train / held-out episode indices: a permutation seeded by ``key`` (the release id).

    At least one episode is held out when ``fraction > 0`` and there are two or more episodes.
    """
    if n_episodes < 2 or fraction <= 0:
        return list(range(n_episodes)), []
    k = min(n_episodes - 1, max(1, round(fraction * n_episodes)))
    order = sorted(range(n_episodes), key=lambda i: hashlib.sha1(f"{key}:{i}".encode()).hexdigest())
    held = sorted(order[:k])
    return [i for i in range(n_episodes) if i not in held], held


@dataclass
class EvalReport:
    """What a checkpoint scored on one eval (``signature`` names the eval: same signature, comparable numbers)."""

    signature: str
    heldout_episodes: list[int]
    frames: int = 0
    action_mse: float | None = None
    action_mae: float | None = None
    action_mae_per_dim: dict[str, float] = field(default_factory=dict)
    rollouts: int = 0
    rollout_successes: int = 0
    rollout_success_rate: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metrics(self) -> dict[str, float]:
        out = {"eval_action_mse": self.action_mse, "eval_action_mae": self.action_mae,
               "eval_rollout_success_rate": self.rollout_success_rate}
        return {k: float(v) for k, v in out.items() if v is not None}


def eval_signature(release: str, heldout: list[int], max_frames: int, rollouts: int, rollout_steps: int,
                   seed: int) -> str:
    raw = json.dumps([release, heldout, max_frames, rollouts, rollout_steps, seed])
    return hashlib.sha1(raw.encode()).hexdigest()[:12]


def load_policy(checkpoint: str | Path, device: str = "cpu"):
    """A lerobot ``pretrained_model`` folder -> (policy, preprocessor, postprocessor), ready for inference."""
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    path = Path(checkpoint)
    if not (path / "config.json").exists():
        raise EvaluationError(f"{path}: not a lerobot checkpoint (no config.json)")
    try:
        cfg = PreTrainedConfig.from_pretrained(str(path))
        cfg.device = device
        policy = get_policy_class(cfg.type).from_pretrained(str(path), config=cfg)
        pre, post = make_pre_post_processors(cfg, pretrained_path=str(path),
                                             preprocessor_overrides={"device_processor": {"device": device}})
    except Exception as err:
        raise EvaluationError(f"{path}: cannot load the checkpoint ({err})") from err
    policy.eval()
    return policy, pre, post


def _batch(item: dict[str, Any]) -> dict[str, Any]:
    import torch

    b: dict[str, Any] = {}
    for k, v in item.items():
        if k.startswith(OBSERVATION_PREFIX) and isinstance(v, torch.Tensor):
            b[k] = v.unsqueeze(0)
    b["task"] = [item.get("task", "")]
    return b


def action_error(checkpoint: str | Path, dataset_root: str | Path, episodes: list[int], *, repo_id: str,
                 max_frames: int = 400, device: str = "cpu") -> dict[str, Any]:
    """Closed-loop-free action error: the policy's action for each held-out frame vs the recorded one.

    Frames are visited in episode order (the policy is reset at each episode start), up to ``max_frames``.
    """
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    if not episodes:
        return {"frames": 0}
    policy, pre, post = load_policy(checkpoint, device)
    ds = LeRobotDataset(repo_id=repo_id, root=str(dataset_root), episodes=episodes, video_backend="pyav")
    names = (ds.meta.features.get(ACTION_KEY, {}).get("names") or [])
    errs = []
    prev_ep = None
    with torch.inference_mode():
        for i in range(min(len(ds), max_frames)):
            item = ds[i]
            ep = int(item["episode_index"])
            if ep != prev_ep:
                policy.reset()
                prev_ep = ep
            act = post(policy.select_action(pre(_batch(item))))
            errs.append((act.reshape(-1).cpu().numpy() - item[ACTION_KEY].numpy()).astype(np.float64))
    e = np.stack(errs)
    per_dim = np.abs(e).mean(0)
    return {"frames": len(e), "action_mse": float((e**2).mean()), "action_mae": float(np.abs(e).mean()),
            "action_mae_per_dim": {(names[j] if j < len(names) else str(j)): round(float(v), 5)
                                   for j, v in enumerate(per_dim)}}


def _sim_observation(sim, features: dict[str, Any], hw: tuple[int, int] | None) -> dict[str, Any]:
    """The dataset's observation features, read from the simulator (state by joint/goal names, cameras by name)."""
    import torch

    js = sim.joint_state()
    by_name = dict(zip(js.names, js.position, strict=True))
    by_name.update({f"goal_{a}": v for a, v in zip("xyz", sim.goal, strict=True)})
    poses = {observation_key("eef_pose"): sim.eef_pose(), observation_key("object_pose"): sim.object_pose()}
    obs: dict[str, Any] = {}
    for key, ft in features.items():
        if key.startswith(IMAGES_PREFIX):
            img = sim.render(key[len(IMAGES_PREFIX):], hw)
            obs[key] = torch.from_numpy(img).permute(2, 0, 1).float().div(255.0).unsqueeze(0)
        elif key in poses:
            obs[key] = torch.tensor(poses[key], dtype=torch.float32).unsqueeze(0)
        elif key.startswith(OBSERVATION_PREFIX):
            names = ft.get("names") or []
            missing = [n for n in names if n not in by_name]
            if missing:
                raise EvaluationError(f"feature {key}: the simulator has no {missing}; cannot roll this policy out")
            obs[key] = torch.tensor([by_name[n] for n in names], dtype=torch.float32).unsqueeze(0)
    return obs


def rollout_success(checkpoint: str | Path, dataset_root: str | Path, *, n: int, steps: int, seed: int = 10_000,
                    device: str = "cpu") -> dict[str, Any]:
    """Run ``n`` episodes of ``steps`` control steps in the project's Fetch simulator; count successes."""
    import torch

    from robodata.sim.fetch import FetchPickPlace

    if n <= 0:
        return {"rollouts": 0}
    info = read_info(dataset_root)
    features = {k: v for k, v in info["features"].items() if k.startswith(OBSERVATION_PREFIX)}
    img = next((v for k, v in features.items() if k.startswith(IMAGES_PREFIX)), None)
    hw = (int(img["shape"][0]), int(img["shape"][1])) if img else None
    task = ""
    tasks_file = Path(dataset_root) / TASKS_PATH
    if tasks_file.exists():
        import pandas as pd

        t = pd.read_parquet(tasks_file)
        task = str(t.index[0]) if len(t) else ""
    policy, pre, post = load_policy(checkpoint, device)
    sim = FetchPickPlace(image_hw=hw or (96, 128))
    successes = 0
    with torch.inference_mode():
        for i in range(n):
            sim.reset(seed=seed + i)
            policy.reset()
            ok = False
            for _ in range(steps):
                obs = _sim_observation(sim, features, hw)
                obs["task"] = [task]
                act = post(policy.select_action(pre(obs))).reshape(-1).cpu().numpy()
                sim.step(np.clip(act, -1.0, 1.0))
                if sim.is_success():
                    ok = True
                    break
            successes += ok
    return {"rollouts": n, "rollout_successes": successes, "rollout_success_rate": successes / n}


def evaluate_checkpoint(checkpoint: str | Path, dataset_root: str | Path, *, release: str, heldout: list[int],
                        repo_id: str, max_frames: int, rollouts: int, rollout_steps: int, seed: int = 10_000,
                        device: str = "cpu") -> EvalReport:
    t0 = time.perf_counter()
    rep = EvalReport(eval_signature(release, heldout, max_frames, rollouts, rollout_steps, seed), list(heldout))
    ae = action_error(checkpoint, dataset_root, heldout, repo_id=repo_id, max_frames=max_frames, device=device)
    rep.frames = ae.get("frames", 0)
    rep.action_mse, rep.action_mae = ae.get("action_mse"), ae.get("action_mae")
    rep.action_mae_per_dim = ae.get("action_mae_per_dim", {})
    ro = rollout_success(checkpoint, dataset_root, n=rollouts, steps=rollout_steps, seed=seed, device=device)
    rep.rollouts = ro.get("rollouts", 0)
    rep.rollout_successes = ro.get("rollout_successes", 0)
    rep.rollout_success_rate = ro.get("rollout_success_rate")
    rep.seconds = round(time.perf_counter() - t0, 2)
    return rep
