"""The Isaac Lab / robomimic HDF5 episode-store layout, written down once: group, dataset and attribute names.

::

    /data                       attrs: total, env_args (JSON: env_name, type, env_kwargs, robodata)
    /data/demo_N                attrs: num_samples, success, seed, ...
        actions, processed_actions, states, initial_state, timestamps
        obs/<feature>
        obs/datagen_info/{object_pose, eef_pose, target_eef_pose, subtask_term_signals}/<name>

Readers and writers of the store (:mod:`robodata.formats.isaaclab`), and every tier that opens an ``h5py``
group itself, take the names and paths from here.
"""

from __future__ import annotations

import re

# Groups.
DATA_GROUP = "data"  # /data: all demos
OBS_GROUP = "obs"  # /data/demo_N/obs: one dataset per observation
DATAGEN_GROUP = "datagen_info"  # /data/demo_N/obs/datagen_info: Isaac Lab Mimic's annotations
DATAGEN_INFO = DATAGEN_GROUP

# Demo groups: demo_0, demo_1, ...
DEMO_PREFIX = "demo_"
DEMO_NAME = DEMO_PREFIX + "{index}"
DEMO_RE = re.compile(r"^demo_(\d+)$")

# Datasets of a demo.
ACTIONS = "actions"  # (T, A) float32
PROCESSED_ACTIONS = "processed_actions"  # (T, A) float32
STATES = "states"  # (T, S) float32
INITIAL_STATE = "initial_state"  # (S,) float32, states[0]
TIMESTAMPS = "timestamps"  # (T,) float64 seconds [robodata extension]

# Kinds under obs/datagen_info (each a group of named datasets).
OBJECT_POSE = "object_pose"  # <object>: (T, 4, 4) float32
EEF_POSE = "eef_pose"  # <eef>: (T, 4, 4) float32
TARGET_EEF_POSE = "target_eef_pose"  # <eef>: (T, 4, 4) float32
SUBTASK_TERM_SIGNALS = "subtask_term_signals"  # <name>: (T,) bool
SUBTASK_START_SIGNALS = "subtask_start_signals"  # <name>: (T,) bool (Isaac Lab's SkillGen)
GRIPPER_ACTION = "gripper_action"  # <eef>: (T, G) float32, the gripper command (Isaac Lab Mimic records it)
DATAGEN_KINDS = (OBJECT_POSE, EEF_POSE, TARGET_EEF_POSE, SUBTASK_TERM_SIGNALS, SUBTASK_START_SIGNALS, GRIPPER_ACTION)
DATAGEN_SIGNALS = (SUBTASK_TERM_SIGNALS, SUBTASK_START_SIGNALS)  # the bool kinds

# Attributes.
TOTAL_ATTR = "total"  # on /data: frames in all demos
ENV_ARGS_ATTR = "env_args"  # on /data: JSON
NUM_SAMPLES_ATTR = "num_samples"  # on a demo: its frame count
SUCCESS_ATTR = "success"  # on a demo: bool
SEED_ATTR = "seed"  # on a demo

# Keys of the env_args JSON.
ENV_NAME_KEY = "env_name"
ENV_TYPE_KEY = "type"
ENV_KWARGS_KEY = "env_kwargs"
ROBODATA_KEY = "robodata"  # robodata's feature table, fps, task and provenance [extension]
ENV_TYPE = 2  # robomimic's EnvType.GYM_TYPE, what Isaac Lab's recorder writes


def demo_name(index: int) -> str:
    """The group name of demo ``index`` (``demo_<index>``)."""
    return DEMO_NAME.format(index=index)


def demo_path(name: str) -> str:
    """The path of a demo group in the file (``data/<name>``)."""
    return f"{DATA_GROUP}/{name}"


def obs_path(name: str) -> str:
    """The path of an observation dataset inside a demo group (``obs/<name>``)."""
    return f"{OBS_GROUP}/{name}"


def datagen_path(kind: str, name: str | None = None) -> str:
    """The path of a datagen_info group, or of one of its datasets, inside a demo group
    (``obs/datagen_info/<kind>[/<name>]``)."""
    path = f"{OBS_GROUP}/{DATAGEN_GROUP}/{kind}"
    return f"{path}/{name}" if name is not None else path
