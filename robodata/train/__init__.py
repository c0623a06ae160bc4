"""Fine-tuning policies on a LeRobot release: trainer commands, launch, metrics, evaluation, tracking, registry."""

from robodata.train.commands import TrainCommand, build_command, groot_command, lerobot_command
from robodata.train.config import PolicyConfig
from robodata.train.evaluate import EvalReport, evaluate_checkpoint, holdout_split
from robodata.train.finetune import (
    ReleaseRef,
    RunPlan,
    TrainError,
    check_gpus,
    check_release,
    compare_with_promoted,
    plan_run,
    resolve_release,
)
from robodata.train.metrics import MetricsParser
from robodata.train.runner import TrainResult, run_trainer

__all__ = [
    "EvalReport", "MetricsParser", "PolicyConfig", "ReleaseRef", "RunPlan", "TrainCommand", "TrainError",
    "TrainResult", "build_command", "check_gpus", "check_release", "compare_with_promoted", "evaluate_checkpoint",
    "groot_command", "holdout_split", "lerobot_command", "plan_run", "resolve_release", "run_trainer",
]
