"""A stand-in for Isaac-GR00T N1.6/N1.7 ``gr00t/experiment/launch_finetune.py``: the same tyro command line
(``FinetuneConfig``), the modality config loaded as the real script loads it, no model.

Flags are ``FinetuneConfig``'s fields in tyro's spelling (``--base-model-path``, ``--dataset-path``,
``--embodiment-tag`` required; booleans as ``--tune-llm`` / ``--no-tune-llm``); an unknown flag (N1.5's
``--data-config``, a misspelling) exits 2 with argparse's message, as tyro does. The ``--modality-config-path``
file is imported with small stand-ins for the ``gr00t`` modules it uses; it must register a config for the
embodiment, whose video, state and action keys exist in the dataset's ``meta/modality.json`` (and one
``ActionConfig`` per action key, the language key an annotation of the dataset). Then it trains like
:mod:`robodata.train.standin` (``checkpoint-<step>/``, HF Trainer log lines).
"""

from __future__ import annotations

import argparse
import enum
import importlib
import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robodata.lerobot.layout import MODALITY_PATH
from robodata.train.standin import check_dataset, train

EMBODIMENT_TAGS = ("NEW_EMBODIMENT", "GR1", "UNITREE_G1", "LIBERO_PANDA", "OXE_WIDOWX", "OXE_GOOGLE", "OXE_DROID",
                   "ROBOCASA_PANDA_OMRON", "BEHAVIOR_R1_PRO", "UNITREE_G1_SONIC")


def _parser(version: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"launch_finetune.py {version} (robodata stand-in)")
    p.add_argument("--base-model-path", required=True)
    p.add_argument("--dataset-path", required=True)
    p.add_argument("--embodiment-tag", required=True, type=str.upper, choices=EMBODIMENT_TAGS)
    p.add_argument("--modality-config-path", default=None)
    for name, default in (("tune-llm", False), ("tune-visual", False), ("tune-projector", True),
                          ("tune-diffusion-model", True), ("use-wandb", False)):
        p.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=default)
    p.add_argument("--state-dropout-prob", type=float, default=0.0)
    p.add_argument("--random-rotation-angle", type=int, default=None)
    p.add_argument("--color-jitter-params", nargs="+", default=None)
    p.add_argument("--global-batch-size", type=int, default=64)
    p.add_argument("--dataloader-num-workers", type=int, default=2)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--gradient-accumulation-steps", type=int, default=1)
    p.add_argument("--output-dir", default="./outputs")
    p.add_argument("--save-steps", type=int, default=1000)
    p.add_argument("--save-total-limit", type=int, default=5)
    p.add_argument("--num-gpus", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=10000)
    p.add_argument("--weight-decay", type=float, default=1e-5)
    p.add_argument("--warmup-ratio", type=float, default=0.05)
    p.add_argument("--shard-size", type=int, default=2**10)
    p.add_argument("--episode-sampling-rate", type=float, default=0.1)
    p.add_argument("--num-shards-per-epoch", type=int, default=int(1e5))
    if version == "n1.6":
        p.add_argument("--video-backend", default="torchcodec", choices=("torchcodec", "decord", "ffmpeg", "opencv"))
        p.add_argument("--override-pretraining-statistics", action=argparse.BooleanOptionalAction, default=True)
    else:
        p.add_argument("--extra-augmentation-config", default=None)
        p.add_argument("--experiment-name", default=None)
        p.add_argument("--wandb-project", default="finetune-gr00t-n1d7")
        p.add_argument("--save-only-model", action=argparse.BooleanOptionalAction, default=False)
    return p


@dataclass
class ModalityConfig:
    delta_indices: list[int]
    modality_keys: list[str]
    action_configs: list[Any] | None = None
    sin_cos_embedding_keys: list[str] | None = None
    mean_std_embedding_keys: list[str] | None = None


@dataclass
class ActionConfig:
    rep: Any
    type: Any
    format: Any
    state_key: str | None = None


REGISTERED: dict[str, dict[str, ModalityConfig]] = {}


def _install_gr00t_modules() -> None:
    """Just enough of ``gr00t`` for a modality config file to import and register."""
    def register_modality_config(config: dict, embodiment_tag: Any = None) -> None:
        REGISTERED[getattr(embodiment_tag, "name", str(embodiment_tag))] = config

    tags = enum.Enum("EmbodimentTag", {t: t.lower() for t in EMBODIMENT_TAGS})  # type: ignore[misc]
    mods: dict[str, dict[str, Any]] = {
        "gr00t": {}, "gr00t.configs": {}, "gr00t.configs.data": {}, "gr00t.data": {},
        "gr00t.configs.data.embodiment_configs": {"register_modality_config": register_modality_config},
        "gr00t.data.embodiment_tags": {"EmbodimentTag": tags},
        "gr00t.data.types": {
            "ModalityConfig": ModalityConfig, "ActionConfig": ActionConfig,
            "ActionRepresentation": enum.Enum("ActionRepresentation", "RELATIVE DELTA ABSOLUTE"),
            "ActionType": enum.Enum("ActionType", "EEF NON_EEF"),
            "ActionFormat": enum.Enum("ActionFormat", "DEFAULT XYZ_ROT6D XYZ_ROTVEC"),
        },
    }
    for name, attrs in mods.items():
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        m.__path__ = []
        sys.modules[name] = m


def modality_config_problems(path: str, tag: str, dataset: str) -> list[str]:
    """Load the config at ``path`` as launch_finetune.py does and compare it with the dataset's modality.json."""
    p = Path(path)
    if not (p.exists() and p.suffix == ".py"):
        return [f"FileNotFoundError: Modality config path does not exist: {path}"]
    _install_gr00t_modules()
    REGISTERED.clear()
    sys.path.append(str(p.parent))
    try:
        sys.modules.pop(p.stem, None)
        importlib.import_module(p.stem)
    except Exception as err:  # noqa: BLE001 - the config's own error, reported as the real script would crash
        return [f"{path}: {type(err).__name__}: {err}"]
    finally:
        sys.path.remove(str(p.parent))
    cfg = REGISTERED.get(tag)
    if cfg is None:
        return [f"{path}: registers no modality config for {tag} (registered: {sorted(REGISTERED)})"]
    modality = json.loads((Path(dataset) / MODALITY_PATH).read_text())
    out = [f"{path}: no {k!r} modality" for k in ("video", "state", "action", "language") if k not in cfg]
    for group in ("video", "state", "action"):
        if group in cfg:
            missing = [k for k in cfg[group].modality_keys if k not in (modality.get(group) or {})]
            out += [f"{path}: {group} key {k!r} is not in {MODALITY_PATH}" for k in missing]
    act = cfg.get("action")
    if act is not None and len(act.action_configs or []) != len(act.modality_keys):
        out.append(f"{path}: {len(act.action_configs or [])} action_configs for {len(act.modality_keys)} action keys")
    if "language" in cfg:
        known = {f"annotation.{k}" for k in (modality.get("annotation") or {})}
        out += [f"{path}: language key {k!r} is not an annotation of the dataset"
                for k in cfg["language"].modality_keys if k not in known]
    return out


def main(argv: list[str] | None = None, version: str = "n1.6") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("--groot-version=n1.6", "--groot-version=n1.7"):  # selects which FinetuneConfig
        version, argv = argv[0].split("=")[1], argv[1:]
    a = _parser(version).parse_args(argv)
    problem = check_dataset(a.dataset_path)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    if a.modality_config_path is None and a.embodiment_tag == "NEW_EMBODIMENT":
        print("NEW_EMBODIMENT needs --modality-config-path (no pre-registered config)", file=sys.stderr)
        return 1
    if a.modality_config_path is not None:
        problems = modality_config_problems(a.modality_config_path, a.embodiment_tag, a.dataset_path)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
        print(f"Loaded modality config: {a.modality_config_path}", flush=True)
    return train(Path(a.output_dir), max_steps=a.max_steps, save_steps=a.save_steps, batch_size=a.global_batch_size,
                 learning_rate=a.learning_rate, resume=False, configuration=vars(a),
                 model_type="gr00t_n1d6" if version == "n1.6" else "gr00t_n1d7")



if __name__ == "__main__":
    sys.exit(main())
