"""Stages: the unit of work both runners drive (typed config, inputs, output, validators, publish)."""

from robodata.stages.base import (
    CheckResult,
    Finding,
    OutputValidator,
    Stage,
    StageFailed,
    StageOutcome,
    run_validators,
    stage_and_publish,
)

__all__ = [
    "CheckResult",
    "Finding",
    "OutputValidator",
    "Stage",
    "StageFailed",
    "StageOutcome",
    "run_validators",
    "stage_and_publish",
]
