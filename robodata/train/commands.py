"""The trainer command lines: ``lerobot-train`` (local and production) and Isaac-GR00T's ``gr00t_finetune.py``."""

from __future__ import annotations

import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from robodata.errors import RobodataError
from robodata.lerobot.layout import MODALITY_PATH, V21, V30
from robodata.train.config import PolicyConfig

LEROBOT_CHECKPOINTS = "checkpoints"
LEROBOT_LAST = "last"
LEROBOT_MODEL = "pretrained_model"
LEROBOT_TRAIN_CONFIG = "train_config.json"
GROOT_CHECKPOINT_PREFIX = "checkpoint-"
# Policies whose vision backbone lerobot would otherwise download (ImageNet ResNet weights).
_RESNET_POLICIES = ("act",)


class TrainCommandError(RobodataError):
    """A trainer command cannot be built from the config (wrong engine/format, missing GPU...)."""


@dataclass
class TrainCommand:
    """One trainer launch: the argv, the extra environment, where it writes, and which engine parses its log."""

    engine: str
    argv: list[str]
    output_dir: str
    env: dict[str, str] = field(default_factory=dict)
    resumed: bool = False

    def shell(self) -> str:
        return shlex.join(self.argv)

    def to_dict(self) -> dict:
        return {"engine": self.engine, "argv": self.argv, "output_dir": self.output_dir, "env": self.env,
                "resumed": self.resumed}


def _flag_name(arg: str) -> str | None:
    return arg.split("=", 1)[0] if arg.startswith("--") else None


def merge_args(base: list[str], extra: list[str]) -> list[str]:
    """``base`` with ``extra`` appended; a ``--key=value`` in ``extra`` replaces the same key in ``base``."""
    overridden = {_flag_name(a) for a in extra if _flag_name(a) and "=" in a}
    return [a for a in base if _flag_name(a) not in overridden] + list(extra)


def _executable(cfg: PolicyConfig, default: list[str]) -> list[str]:
    return shlex.split(cfg.trainer_executable) if cfg.trainer_executable else default


def lerobot_train_exe() -> list[str]:
    """``lerobot-train`` from this interpreter's environment (the project's venv), else from PATH."""
    cand = Path(sys.executable).parent / "lerobot-train"
    return [str(cand)] if cand.exists() else [shutil.which("lerobot-train") or "lerobot-train"]


def device_for(cfg: PolicyConfig) -> str:
    if cfg.device != "auto":
        return cfg.device
    return "cuda" if cfg.num_gpus > 0 else "cpu"


def lerobot_last_checkpoint(output_dir: str | Path) -> Path | None:
    """``<output>/checkpoints/last/pretrained_model`` resolved to its step folder, when a checkpoint exists."""
    last = Path(output_dir) / LEROBOT_CHECKPOINTS / LEROBOT_LAST / LEROBOT_MODEL
    return last.resolve() if (last / "config.json").exists() else None


def groot_last_checkpoint(output_dir: str | Path) -> Path | None:
    """The highest ``checkpoint-<step>`` folder that HF Trainer (GR00T's runner) wrote."""
    cps = [p for p in Path(output_dir).glob(f"{GROOT_CHECKPOINT_PREFIX}*") if p.name.split("-")[-1].isdigit()]
    return max(cps, key=lambda p: int(p.name.split("-")[-1])) if cps else None


def lerobot_command(cfg: PolicyConfig, dataset_root: str | Path, output_dir: str | Path, *, repo_id: str,
                    train_episodes: list[int] | None = None, dataset_format: str = V30) -> TrainCommand:
    """``lerobot-train`` on a local LeRobot v3.0 release; resumes from ``checkpoints/last`` when one exists."""
    if dataset_format != V30:
        raise TrainCommandError(f"lerobot-train reads LeRobot {V30} datasets; release {dataset_root} is {dataset_format} "
                                f"(set tiers.lerobot.version={V30}, or tiers.policy.engine=groot for a {V21} release)")
    out = Path(output_dir)
    args = [
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={dataset_root}",
        "--dataset.video_backend=pyav",
        f"--policy.type={cfg.policy_type}",
        f"--policy.device={device_for(cfg)}",
        "--policy.push_to_hub=false",
        f"--steps={cfg.max_steps}",
        f"--batch_size={cfg.batch_size}",
        f"--save_freq={cfg.save_steps}",
        f"--log_freq={cfg.log_steps}",
        f"--num_workers={cfg.num_workers}",
        f"--seed={cfg.seed}",
        f"--output_dir={out}",
        f"--wandb.enable={'true' if cfg.wandb else 'false'}",
    ]
    if cfg.wandb:
        args.append(f"--wandb.project={cfg.wandb_project}")
    if cfg.policy_type in _RESNET_POLICIES:
        args.append("--policy.pretrained_backbone_weights=null")  # no download; trains the backbone from scratch
    if train_episodes is not None:
        args.append(f"--dataset.episodes=[{','.join(str(e) for e in train_episodes)}]")
    resumed = False
    last = out / LEROBOT_CHECKPOINTS / LEROBOT_LAST / LEROBOT_MODEL / LEROBOT_TRAIN_CONFIG
    if cfg.resume and last.exists():
        args += ["--resume=true", f"--config_path={last}"]
        resumed = True
    argv = _executable(cfg, lerobot_train_exe()) + merge_args(args, cfg.trainer_args)
    env = {"HF_HUB_OFFLINE": "1", **({} if cfg.wandb else {"WANDB_MODE": "disabled"}), **cfg.trainer_env}
    return TrainCommand("lerobot", argv, str(out), env, resumed)


MODALITY_CONFIG_MODULE = "robodata_modality_config"  # launch_finetune.py imports it by file stem


def modality_config_source(modality: dict, *, action_horizon: int = 16, embodiment: str = "NEW_EMBODIMENT") -> str:
    """A GR00T N1.6/N1.7 modality config (a Python file for ``--modality-config-path``) from ``meta/modality.json``:
    video, state and action keys in the dataset's order, one ``ActionConfig`` per action part (absolute unless the
    part says ``"absolute": false``), the task annotation as language; registered with ``register_modality_config``."""
    def keys(group: str) -> list[str]:
        return [str(k) for k in (modality.get(group) or {})]

    actions = modality.get("action") or {}
    rep = ["RELATIVE" if isinstance(v, dict) and v.get("absolute") is False else "ABSOLUTE" for v in actions.values()]
    language = [f"annotation.{k}" for k in (modality.get("annotation") or {})]
    action_configs = "".join(
        f"            ActionConfig(rep=ActionRepresentation.{r}, type=ActionType.NON_EEF, format=ActionFormat.DEFAULT),"
        f"  # {k}\n" for k, r in zip(keys("action"), rep, strict=True))
    return f'''"""GR00T modality config generated by robodata from the release's meta/modality.json."""

from gr00t.configs.data.embodiment_configs import register_modality_config
from gr00t.data.embodiment_tags import EmbodimentTag
from gr00t.data.types import ActionConfig, ActionFormat, ActionRepresentation, ActionType, ModalityConfig

robodata_config = {{
    "video": ModalityConfig(delta_indices=[0], modality_keys={keys("video")!r}),
    "state": ModalityConfig(delta_indices=[0], modality_keys={keys("state")!r}),
    "action": ModalityConfig(
        delta_indices=list(range(0, {action_horizon})),
        modality_keys={keys("action")!r},
        action_configs=[
{action_configs}        ],
    ),
    "language": ModalityConfig(delta_indices=[0], modality_keys={language!r}),
}}

register_modality_config(robodata_config, embodiment_tag=EmbodimentTag.{embodiment})
'''


def write_modality_config(dataset_root: str | Path, output_dir: str | Path, *, action_horizon: int,
                          embodiment: str) -> Path:
    """Write :func:`modality_config_source` for the release at ``dataset_root`` into the run folder."""
    import json

    mpath = Path(dataset_root) / MODALITY_PATH
    try:
        modality = json.loads(mpath.read_text())
    except (OSError, ValueError) as err:
        raise TrainCommandError(f"{mpath}: GR00T fine-tuning needs the release's modality.json ({err})") from err
    out = Path(output_dir) / f"{MODALITY_CONFIG_MODULE}.py"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(modality_config_source(modality, action_horizon=action_horizon, embodiment=embodiment))
    return out


def launch_finetune_command(cfg: PolicyConfig, dataset_root: str | Path, output_dir: str | Path) -> TrainCommand:
    """Isaac-GR00T N1.6/N1.7 ``gr00t/experiment/launch_finetune.py`` (tyro flags) with a generated modality config."""
    g = cfg.groot
    embodiment = g.embodiment_tag.upper()
    mc = write_modality_config(dataset_root, output_dir, action_horizon=g.action_horizon, embodiment=embodiment)

    def flag(name: str, on: bool) -> str:
        return f"--{name}" if on else f"--no-{name}"

    args = [
        "--base-model-path", g.base_model(),
        "--dataset-path", str(dataset_root),
        "--embodiment-tag", embodiment,
        "--modality-config-path", str(mc),
        "--output-dir", str(output_dir),
        "--num-gpus", str(cfg.num_gpus),
        "--global-batch-size", str(cfg.batch_size),
        "--max-steps", str(cfg.max_steps),
        "--save-steps", str(cfg.save_steps),
        "--save-total-limit", str(g.save_total_limit),
        "--dataloader-num-workers", str(g.dataloader_num_workers),
        flag("tune-llm", g.tune_llm),
        flag("tune-visual", g.tune_visual),
        flag("tune-projector", g.tune_projector),
        flag("tune-diffusion-model", g.tune_diffusion_model),
        flag("use-wandb", cfg.wandb),
    ]
    if g.learning_rate is not None:
        args += ["--learning-rate", str(g.learning_rate)]
    if g.version == "n1.7" and cfg.wandb:
        args += ["--wandb-project", cfg.wandb_project]
    argv = _executable(cfg, [g.python, g.script_path()]) + args + list(cfg.trainer_args)
    env = {**({"WANDB_PROJECT": cfg.wandb_project} if cfg.wandb else {"WANDB_MODE": "disabled"}), **cfg.trainer_env}
    return TrainCommand("groot", argv, str(output_dir), env, False)


def groot_command(cfg: PolicyConfig, dataset_root: str | Path, output_dir: str | Path, *,
                  dataset_format: str = V21) -> TrainCommand:
    """Isaac-GR00T fine-tuning on a v2.1 release with ``meta/modality.json``: N1.5 ``scripts/gr00t_finetune.py``
    (``--data-config``), or N1.6/N1.7 ``launch_finetune.py`` (``--modality-config-path``), by ``groot.version``."""
    if dataset_format != V21:
        raise TrainCommandError(f"GR00T N1.5 fine-tuning reads LeRobot {V21} with {MODALITY_PATH}; release "
                                f"{dataset_root} is {dataset_format} (set tiers.lerobot.version={V21})")
    if cfg.num_gpus < 1:
        raise TrainCommandError("GR00T fine-tuning needs at least one GPU: set tiers.policy.num_gpus >= 1")
    g = cfg.groot
    if g.version != "n1.5":
        return launch_finetune_command(cfg, dataset_root, output_dir)

    def flag(name: str, on: bool) -> str:
        return f"--{name}" if on else f"--no-{name}"

    args = [
        "--dataset-path", str(dataset_root),
        "--output-dir", str(output_dir),
        "--data-config", g.data_config,
        "--embodiment-tag", g.embodiment_tag,
        "--batch-size", str(cfg.batch_size),
        "--max-steps", str(cfg.max_steps),
        "--num-gpus", str(cfg.num_gpus),
        "--save-steps", str(cfg.save_steps),
        "--base-model-path", g.base_model(),
        flag("tune-llm", g.tune_llm),
        flag("tune-visual", g.tune_visual),
        flag("tune-projector", g.tune_projector),
        flag("tune-diffusion-model", g.tune_diffusion_model),
        "--lora-rank", str(g.lora_rank),
        "--dataloader-num-workers", str(g.dataloader_num_workers),
        "--video-backend", g.video_backend,
        "--report-to", "wandb" if cfg.wandb else "tensorboard",
    ]
    if g.learning_rate is not None:
        args += ["--learning-rate", str(g.learning_rate)]
    resumed = bool(cfg.resume and groot_last_checkpoint(output_dir))
    if resumed:
        args.append("--resume")
    argv = _executable(cfg, [g.python, g.script_path()]) + args + list(cfg.trainer_args)
    env = {**({"WANDB_PROJECT": cfg.wandb_project} if cfg.wandb else {"WANDB_MODE": "disabled"}), **cfg.trainer_env}
    return TrainCommand("groot", argv, str(output_dir), env, resumed)


def build_command(cfg: PolicyConfig, dataset_root: str | Path, output_dir: str | Path, *, repo_id: str,
                  dataset_format: str, train_episodes: list[int] | None = None) -> TrainCommand:
    if cfg.engine == "groot":
        return groot_command(cfg, dataset_root, output_dir, dataset_format=dataset_format)
    return lerobot_command(cfg, dataset_root, output_dir, repo_id=repo_id, train_episodes=train_episodes,
                           dataset_format=dataset_format)
