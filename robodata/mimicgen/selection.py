"""Source segment selection strategies (MimicGen's ``random`` and ``nearest_neighbor_object``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robodata.mimicgen.config import SubtaskConfig
from robodata.mimicgen.poses import pose_distance


def select_source(
    strategy: SubtaskConfig,
    source_object_poses: Sequence[np.ndarray],
    object_pose_now: np.ndarray,
    rng: np.random.Generator,
) -> int:
    """Index of the source whose segment to replay.

    Args:
        source_object_poses: per source, the ``(4, 4)`` pose of the subtask's reference object at the start of
            that source's segment.
        object_pose_now: the reference object's pose in the new scene.
    """
    n = len(source_object_poses)
    if strategy.selection_strategy == "random":
        return int(rng.integers(n))
    d = pose_distance(np.stack(source_object_poses), object_pose_now[None], strategy.nn_pos_weight,
                      strategy.nn_rot_weight)
    k = min(strategy.nn_k, n)
    nearest = np.argsort(d, kind="stable")[:k]
    return int(nearest[rng.integers(k)])
