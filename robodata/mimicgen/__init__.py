"""MimicGen-style synthetic demo generation: subtask annotation, object-centric transfer, validation in simulation.

Kept light (the project config imports it): the math, the generator and the checks live in their modules
(``poses``, ``annotate``, ``source``, ``selection``, ``generate``, ``validate``, ``isaaclab``).
"""

from robodata.mimicgen.config import DataGenConfig, IsaacLabMimicConfig, SubtaskConfig, SyntheticDemosConfig
from robodata.mimicgen.errors import MimicGenError

__all__ = ["DataGenConfig", "IsaacLabMimicConfig", "MimicGenError", "SubtaskConfig", "SyntheticDemosConfig"]
