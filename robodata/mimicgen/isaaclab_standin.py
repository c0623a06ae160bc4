"""Stands in for Isaac Lab Mimic's ``annotate_demos.py`` and ``generate_dataset.py`` (no Isaac Sim, no GPU).

``python -m robodata.mimicgen.isaaclab_standin [annotate_demos.py|generate_dataset.py] ARGS`` (default: generate)
parses ARGS with the real scripts' argument sets (their own flags plus ``AppLauncher``'s: an unknown or
misspelled flag exits 2 with argparse's message, as the real scripts do), checks the input file the step needs and
fails loudly otherwise, then writes what the step writes:

- ``annotate_demos.py``: source demos **without** ``obs/datagen_info`` (each with ``actions`` and
  ``initial_state``) -> the same demos with ``obs/datagen_info`` (object/eef/target poses, subtask term signals);
- ``generate_dataset.py``: **annotated** demos (``obs/datagen_info/subtask_term_signals`` in every demo) -> an
  Isaac Lab-layout HDF5 of ``--generation_num_trials`` short demos.

The task must be one Isaac Lab registers; a Pink-IK task without ``--enable_pinocchio`` gets a warning (Isaac Lab
2.x needs it to import pinocchio before Isaac Sim starts; robodata always passes it for those tasks). Quaternions are written
``x, y, z, w``, as Isaac Lab 3.0 does. Like Isaac Lab Mimic it records no per-subtask source provenance.
``--datagen_poses`` (stand-in only) also writes ``target_eef_pose`` (a smooth path) and ``eef_pose`` tracking it
one frame behind; ``--frames`` (stand-in only) sets the generated demo length."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import h5py
import numpy as np

from robodata.formats.isaaclab_layout import (
    ACTIONS,
    DATA_GROUP,
    DATAGEN_GROUP,
    EEF_POSE,
    ENV_ARGS_ATTR,
    ENV_KWARGS_KEY,
    ENV_NAME_KEY,
    ENV_TYPE,
    ENV_TYPE_KEY,
    INITIAL_STATE,
    NUM_SAMPLES_ATTR,
    OBJECT_POSE,
    OBS_GROUP,
    SUBTASK_TERM_SIGNALS,
    SUCCESS_ATTR,
    TARGET_EEF_POSE,
    TOTAL_ATTR,
    datagen_path,
    demo_name,
    obs_path,
)


def _add_launcher_args(p: argparse.ArgumentParser) -> None:
    """``AppLauncher.add_app_launcher_args``: the simulator's own flags."""
    p.add_argument("--headless", action="store_true", default=False)
    p.add_argument("--livestream", type=int, default=-1, choices={-1, 0, 1, 2})
    p.add_argument("--enable_cameras", action="store_true", default=False)
    p.add_argument("--xr", action="store_true", default=False)
    p.add_argument("--device", type=str, default="cuda:0")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--info", action="store_true")
    p.add_argument("--experience", type=str, default="")
    p.add_argument("--rendering_mode", type=str, choices={"performance", "balanced", "quality"})
    p.add_argument("--kit_args", type=str, default="")


def generate_parser() -> argparse.ArgumentParser:
    """``generate_dataset.py``'s arguments."""
    p = argparse.ArgumentParser(prog="generate_dataset.py (robodata stand-in)",
                                description="Generate demonstrations for Isaac Lab environments.")
    p.add_argument("--task", type=str, default=None)
    p.add_argument("--generation_num_trials", type=int, default=None)
    p.add_argument("--num_envs", type=int, default=1)
    p.add_argument("--input_file", type=str, default=None, required=True)
    p.add_argument("--output_file", type=str, default="./datasets/output_dataset.hdf5")
    p.add_argument("--pause_subtask", action="store_true")
    p.add_argument("--enable_pinocchio", action="store_true", default=False)
    p.add_argument("--use_skillgen", action="store_true", default=False)
    _add_launcher_args(p)
    p.add_argument("--frames", type=int, default=20, help="(stand-in only) frames per generated demo")
    p.add_argument("--datagen_poses", action="store_true", help="(stand-in only) write target_eef_pose and eef_pose")
    return p


def annotate_parser() -> argparse.ArgumentParser:
    """``annotate_demos.py``'s arguments."""
    p = argparse.ArgumentParser(prog="annotate_demos.py (robodata stand-in)",
                                description="Annotate demonstrations for Isaac Lab environments.")
    p.add_argument("--task", type=str, default=None)
    p.add_argument("--input_file", type=str, default="./datasets/dataset.hdf5")
    p.add_argument("--output_file", type=str, default="./datasets/dataset_annotated.hdf5")
    p.add_argument("--auto", action="store_true", default=False)
    p.add_argument("--annotate_subtask_start_signals", action="store_true", default=False)
    p.add_argument("--external_callback", default=None)
    p.add_argument("--enable_pinocchio", action="store_true", default=False)
    _add_launcher_args(p)
    return p


def _fail(msg: str) -> int:
    print(f"[stand-in] error: {msg}", file=sys.stderr)
    return 1


def _check_task(task: str | None, pinocchio: bool, input_file: str) -> str | None:
    """The task's problem (unregistered, Pink IK without pinocchio), or None."""
    from robodata.mimicgen.isaaclab import MIMIC_TASKS

    name = (task or "").split(":")[-1]
    if not name:
        return f"no --task given and none recorded in {input_file}"
    if name not in MIMIC_TASKS:
        return f"gymnasium.error.NameNotFound: no registered env {name!r} (Isaac Lab Mimic tasks: {sorted(MIMIC_TASKS)})"
    if MIMIC_TASKS[name].pinocchio and not pinocchio:  # 3.0's generate_dataset.py imports it itself: a warning
        print(f"[stand-in] warning: {name} uses Pink IK; Isaac Lab 2.x needs --enable_pinocchio", file=sys.stderr)
    return None


def _demos(f: h5py.File, path: str) -> list[h5py.Group] | str:
    if DATA_GROUP not in f:
        return f"{path}: not an Isaac Lab dataset (no /{DATA_GROUP})"
    demos = [f[DATA_GROUP][k] for k in sorted(f[DATA_GROUP]) if isinstance(f[DATA_GROUP][k], h5py.Group)]
    return demos or f"{path}: no demos under /{DATA_GROUP}"


def _hdf5_path(path: str) -> Path:
    # As Isaac Lab's HDF5DatasetFileHandler.create does: an output path without ".hdf5" gets it appended.
    return Path(path if path.endswith(".hdf5") else path + ".hdf5")


def annotate(argv: list[str]) -> int:
    p = annotate_parser()
    args, rest = p.parse_known_args(argv)
    unknown = [a for a in rest if "=" not in a]  # key=value: Hydra task-config overrides, as the real script allows
    if unknown:
        p.error(f"unrecognized arguments: {' '.join(unknown)}")
    if not args.auto:
        return _fail("manual annotation needs a GUI and a person at the keyboard: pass --auto (headless)")
    if not Path(args.input_file).exists():
        return _fail(f"FileNotFoundError: The input dataset file {args.input_file} does not exist.")
    problem = _check_task(args.task, args.enable_pinocchio, args.input_file)
    if problem:
        return _fail(problem)
    out = _hdf5_path(args.output_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(args.input_file, "r") as src:
        demos = _demos(src, args.input_file)
        if isinstance(demos, str):
            return _fail(demos)
        for d in demos:
            for need in (ACTIONS, INITIAL_STATE):
                if need not in d:
                    return _fail(f"{args.input_file}: {d.name} has no {need!r} to replay (annotate_demos.py replays "
                                 "each demo from its initial state)")
            if f"{OBS_GROUP}/{DATAGEN_GROUP}" in d:
                return _fail(f"{args.input_file}: {d.name} is annotated already (it has {OBS_GROUP}/{DATAGEN_GROUP}); "
                             "annotate_demos.py takes recorded source demos")
        with h5py.File(out, "w") as dst:
            data = dst.create_group(DATA_GROUP)
            for k, v in src[DATA_GROUP].attrs.items():
                data.attrs[k] = v
            data.attrs[ENV_ARGS_ATTR] = json.dumps({ENV_NAME_KEY: args.task.split(":")[-1], ENV_TYPE_KEY: ENV_TYPE,
                                                    ENV_KWARGS_KEY: {}})
            total = 0
            for d in demos:
                name = d.name.rsplit("/", 1)[-1]
                src.copy(d, data, name=name)
                g = data[name]
                n = len(g[ACTIONS])
                eye = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
                g.create_dataset(datagen_path(OBJECT_POSE, "object"), data=eye)
                g.create_dataset(datagen_path(EEF_POSE, "right"), data=eye)
                g.create_dataset(datagen_path(TARGET_EEF_POSE, "right"), data=eye)
                g.create_dataset(datagen_path(SUBTASK_TERM_SIGNALS, "grasp"), data=np.arange(n) >= n // 2)
                g.attrs[SUCCESS_ATTR] = True
                g.attrs[NUM_SAMPLES_ATTR] = n
                total += n
            data.attrs[TOTAL_ATTR] = total
    print(f"Exported {len(demos)} (out of {len(demos)}) annotated episodes.")
    print(f"Successful task completions: {len(demos)}")
    return 0


def generate(argv: list[str]) -> int:
    args = generate_parser().parse_args(argv)  # an unknown flag: argparse's message, exit 2
    if not Path(args.input_file).exists():
        return _fail(f"FileNotFoundError: {args.input_file} does not exist")
    problem = _check_task(args.task, args.enable_pinocchio, args.input_file)
    if problem:
        return _fail(problem)
    with h5py.File(args.input_file, "r") as f:
        demos = _demos(f, args.input_file)
        if isinstance(demos, str):
            return _fail(demos)
        unannotated = [d.name for d in demos if datagen_path(SUBTASK_TERM_SIGNALS) not in d]
        if unannotated:
            return _fail(f"{args.input_file}: {len(unannotated)} source demos are not annotated (no "
                         f"{datagen_path(SUBTASK_TERM_SIGNALS)}, first {unannotated[0]}); run annotate_demos.py first")
        signal_names = sorted(demos[0][datagen_path(SUBTASK_TERM_SIGNALS)])
    trials = args.generation_num_trials if args.generation_num_trials is not None else 10
    rng = np.random.default_rng(0)
    out = _hdf5_path(args.output_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(out, "w") as f:
        data = f.create_group(DATA_GROUP)
        data.attrs[ENV_ARGS_ATTR] = json.dumps({ENV_NAME_KEY: args.task, ENV_TYPE_KEY: ENV_TYPE, ENV_KWARGS_KEY: {}})
        total = 0
        for i in range(trials):
            g = data.create_group(demo_name(i))
            n = args.frames
            g.create_dataset(ACTIONS, data=rng.normal(size=(n, 7)).astype(np.float32))
            g.create_dataset(obs_path("eef_pos"), data=np.cumsum(rng.normal(0, 0.01, (n, 3)), 0).astype(np.float32))
            quat = np.tile(np.array([0.0, 0.0, 0.0, 1.0], np.float32), (n, 1))  # x, y, z, w (Isaac Lab 3.0)
            g.create_dataset(obs_path("eef_quat"), data=quat)
            if args.enable_cameras:
                g.create_dataset(obs_path("robot_pov_cam"), data=rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8))
            g.create_dataset(datagen_path(OBJECT_POSE, "nut"), data=np.tile(np.eye(4, dtype=np.float32), (n, 1, 1)))
            if args.datagen_poses:
                target = _path(n, rng)
                g.create_dataset(datagen_path(TARGET_EEF_POSE, "right"), data=target)
                g.create_dataset(datagen_path(EEF_POSE, "right"), data=np.concatenate([target[:1], target[:-1]]))
                for k, sname in enumerate(signal_names):
                    rise = (k + 1) * n // (len(signal_names) + 1)
                    g.create_dataset(datagen_path(SUBTASK_TERM_SIGNALS, sname), data=np.arange(n) >= rise)
            else:
                g.create_dataset(datagen_path(EEF_POSE, "right"), data=np.tile(np.eye(4, dtype=np.float32), (n, 1, 1)))
            g.attrs[NUM_SAMPLES_ATTR] = n
            g.attrs[SUCCESS_ATTR] = True
            total += n
        data.attrs[TOTAL_ATTR] = total
    print(f"[stand-in] {trials}/{trials} demos generated for {args.task} ({args.num_envs} envs) -> {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith(".py"):
        script, argv = Path(argv[0]).name, argv[1:]
    else:
        script = "generate_dataset.py"
    if script == "annotate_demos.py":
        return annotate(argv)
    if script == "generate_dataset.py":
        return generate(argv)
    print(f"[stand-in] no such Isaac Lab Mimic script: {script} (annotate_demos.py, generate_dataset.py)",
          file=sys.stderr)
    return 2


def _path(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, 4, 4)`` float32 poses along a smooth path: 1 cm steps, a slow turn about z."""
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, 3] = np.array([0.4, 0.0, 0.3]) + np.cumsum(rng.normal(0, 0.01, (n, 3)), 0)
    a = np.linspace(0.0, 0.5, n)
    T[:, 0, 0], T[:, 0, 1], T[:, 1, 0], T[:, 1, 1] = np.cos(a), -np.sin(a), np.sin(a), np.cos(a)
    return T.astype(np.float32)


if __name__ == "__main__":
    raise SystemExit(main())
