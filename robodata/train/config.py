"""The policy tier's settings (``tiers.policy``): which engine trains what, where it runs, how it is tracked."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from robodata.stages.engines import PodSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


GROOT_SCRIPTS = {"n1.5": "scripts/gr00t_finetune.py", "n1.6": "gr00t/experiment/launch_finetune.py",
                 "n1.7": "gr00t/experiment/launch_finetune.py"}
GROOT_BASE_MODELS = {"n1.5": "nvidia/GR00T-N1.5-3B", "n1.6": "nvidia/GR00T-N1.6-3B", "n1.7": "nvidia/GR00T-N1.7-3B"}


class GrootConfig(_Strict):
    """Isaac-GR00T fine-tuning (engine ``groot``) on the v2.1 release.

    ``version`` picks the trainer: ``n1.5`` runs ``scripts/gr00t_finetune.py --data-config``; ``n1.6`` / ``n1.7``
    run ``gr00t/experiment/launch_finetune.py --modality-config-path`` with a modality config robodata generates
    from the release's features (``register_modality_config``, embodiment ``NEW_EMBODIMENT``)."""

    version: Literal["n1.5", "n1.6", "n1.7"] = "n1.5"
    script: str | None = Field(None, description="default per version (gr00t_finetune.py / launch_finetune.py)")
    python: str = "python"
    data_config: str = "fourier_gr1_arms_only"  # n1.5 only
    embodiment_tag: str = "new_embodiment"
    base_model_path: str | None = Field(None, description="default per version: nvidia/GR00T-N1.{5,6,7}-3B")
    action_horizon: int = Field(16, ge=1, description="n1.6/n1.7: action delta indices 0..H-1 in the modality config")
    save_total_limit: int = Field(5, ge=1)
    tune_llm: bool = False
    tune_visual: bool = True
    tune_projector: bool = True
    tune_diffusion_model: bool = True
    lora_rank: int = Field(0, ge=0)
    learning_rate: float | None = Field(None, gt=0)
    video_backend: str = "torchvision_av"
    dataloader_num_workers: int = Field(8, ge=0)

    def script_path(self) -> str:
        return self.script or GROOT_SCRIPTS[self.version]

    def base_model(self) -> str:
        return self.base_model_path or GROOT_BASE_MODELS[self.version]


class KubernetesConfig(PodSettings):
    """Launch the trainer as a Kubernetes pod through ``PipesK8sClient`` (launcher ``k8s``): the pod settings every
    production engine shares (the store's PVC ``volume_claim`` at ``mount_path``, node selector, tolerations,
    ``/dev/shm``) plus the image and namespace. The pod's GPUs are ``tiers.policy.num_gpus``."""

    image: str = Field("gr00t:latest", description="Isaac-GR00T image, prefixed with your registry")
    namespace: str = "robodata"
    gpus: int = Field(1, ge=0, exclude=True, description="not a setting here: the pod gets tiers.policy.num_gpus")

    @model_validator(mode="after")
    def _one_gpu_count(self) -> KubernetesConfig:
        if "gpus" in self.model_fields_set:
            raise ValueError("tiers.policy.k8s.gpus is not a setting: the trainer pod gets tiers.policy.num_gpus GPUs")
        return self


class RayJobConfig(_Strict):
    """Submit the trainer as a Ray job on a GPU cluster (launcher ``ray``)."""

    address: str = "http://ray-head:8265"
    working_dir: str | None = None


class TrackingConfig(_Strict):
    """MLflow: embedded SQLite under the project home unless ``tracking_uri`` / ``$MLFLOW_TRACKING_URI`` says otherwise."""

    tracking_uri: str | None = None
    experiment: str = "robodata-policy"
    registered_model: str = "robodata-policy"


class PolicyConfig(_Strict):
    """``tiers.policy``: fine-tuning a policy on a ``lerobot_dataset`` release.

    ``max_steps``/``steps`` and ``batch_size`` are the workflow's knobs (``--set tiers.policy.max_steps=20000``);
    ``trainer_args`` passes anything else straight to the trainer (``--policy.dim_model=256``).
    """

    engine: Literal["lerobot", "groot"] = "lerobot"
    launcher: Literal["subprocess", "k8s", "ray"] = "subprocess"
    policy_type: str = "act"
    release: str = "latest"
    max_steps: int = Field(200, ge=1)
    batch_size: int = Field(4, ge=1)
    save_steps: int = Field(100, ge=1)
    log_steps: int = Field(10, ge=1)
    num_workers: int = Field(0, ge=0)
    num_gpus: int = Field(0, ge=0)
    device: Literal["cpu", "cuda", "auto"] = "auto"
    seed: int = 1000
    resume: bool = True
    retrain: bool = Field(False, description="train again even if this release and config already have a checkpoint")
    wandb: bool = False
    wandb_project: str = "robodata"
    trainer_executable: str | None = Field(None, description="the trainer command (default: lerobot-train / python gr00t_finetune.py)")
    trainer_args: list[str] = []
    trainer_env: dict[str, str] = {}
    # Offline evaluation: the held-out episodes and simulator rollouts.
    holdout_fraction: float = Field(0.25, ge=0, lt=1)
    eval_max_frames: int = Field(400, ge=1)
    rollouts: int = Field(3, ge=0)
    rollout_steps: int = Field(60, ge=1)
    promote_metric: str = "eval_action_mse"
    groot: GrootConfig = GrootConfig()
    k8s: KubernetesConfig = KubernetesConfig()
    ray: RayJobConfig = RayJobConfig()
    tracking: TrackingConfig = TrackingConfig()

    def signature(self) -> dict[str, Any]:
        """The settings that change what gets trained (a run's identity; not where it runs or how it is tracked)."""
        keep = self.model_dump(exclude={"launcher", "release", "resume", "retrain", "wandb", "wandb_project",
                                        "trainer_executable", "trainer_env", "eval_max_frames", "rollouts",
                                        "rollout_steps", "promote_metric", "k8s", "ray", "tracking", "num_workers"})
        if self.engine != "groot":
            keep.pop("groot")
        return keep
