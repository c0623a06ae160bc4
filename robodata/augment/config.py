"""The ``tiers.augmented_videos`` config: which cameras, how many variants, which engine and its settings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from robodata.stages.engines import PodSettings

CONTROL_KINDS = ("depth", "seg", "edge", "vis")



Control = Literal["depth", "seg", "edge"]
CONTROLS: tuple[Control, ...] = ("depth", "seg", "edge")

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LocalEngineConfig(_Strict):
    """Domain randomisation in torch; each knob is the range a variant draws from (once per clip)."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    brightness: float = Field(0.35, ge=0, le=1, description="max relative change of overall light")
    contrast: float = Field(0.3, ge=0, le=1)
    saturation: float = Field(0.4, ge=0, le=1)
    hue_deg: float = Field(20.0, ge=0, le=180)
    white_balance: float = Field(0.15, ge=0, le=1, description="max per-channel gain change")
    light_gradient: float = Field(0.35, ge=0, le=1, description="strength of a directional light falloff")
    background: bool = Field(True, description="replace background/floor pixels with a procedural texture")
    table: bool = Field(True, description="re-texture the table (shading kept)")
    noise_std: float = Field(6.0, ge=0, le=50, description="max sensor noise, in 0-255 grey levels")
    blur_sigma: float = Field(1.5, ge=0, le=8, description="max Gaussian blur sigma, in pixels of a 480-line image")
    jpeg_quality: tuple[int, int] = Field((35, 95), description="JPEG quality range (1-100) for compression artifacts")
    batch_frames: int = Field(32, ge=1, description="frames read from the store and fed to the encoders at a time")
    cpu_batch: int = Field(2, ge=1, description="frames per batch on CPU (each goes through OpenCV frame by frame)")
    gpu_max_batch: int = Field(64, ge=1, description="most frames per torch batch on CUDA (picked from free memory)")
    gpu_memory_fraction: float = Field(0.5, gt=0, le=1, description="share of free GPU memory a batch may use")
    torch_threads: int | None = Field(
        1, ge=1, description="torch and OpenCV threads while a clip is augmented (the encoders have their own); null: unchanged"
    )


class CosmosConfig(_Strict):
    """Cosmos Transfer 2.5: the command that runs ``examples/inference.py`` and what goes in each clip's spec."""

    command: list[str] = Field(
        default_factory=lambda: ["python", "examples/inference.py"],
        description="argv before '-i SPEC -o OUTDIR' (e.g. torchrun ... examples/inference.py, or a stand-in)",
    )
    cwd: str | None = Field(None, description="the cosmos-transfer2.5 checkout (working directory of the command)")
    extra_args: list[str] = Field(default_factory=list, description="e.g. ['--disable-guardrails']")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment for the command")
    launcher: Literal["subprocess", "k8s"] = "subprocess"
    image: str = Field("", description="container image for the k8s launcher")
    namespace: str = "default"
    k8s: PodSettings = Field(default_factory=PodSettings, description="the pod: shared volume, GPUs, node selector")
    prompt: str = "a robot arm picks up a cube on a wooden table in a bright, realistic lab"
    negative_prompt: str | None = None
    guidance: float = Field(3.0, ge=0)
    num_steps: int | None = Field(None, ge=1)
    controls: dict[str, float] = Field(
        default_factory=lambda: {"depth": 0.5, "edge": 1.0, "seg": 0.5},
        description="control kind (depth, seg, edge, vis) -> control_weight",
    )
    timeout_s: float = Field(3600, gt=0)


class AugmentedVideosConfig(_Strict):
    """The ``augmented_videos`` tier: K variants per demo with one engine, plus the MP4s and control videos."""

    enabled: bool = Field(True, description="false: no augmented_videos tier (the next tier follows the one before)")
    engine: Literal["local", "cosmos"] = "local"
    variants: int = Field(1, ge=1, le=64, description="K augmented variants per demo")
    cameras: list[str] | Literal["all"] = "all"
    seed: int = 0
    codec: Literal["libx264", "libsvtav1", "h264_nvenc", "auto"] = "libx264"
    crf: int = Field(18, ge=0, le=63)
    controls: list[Control] = Field(default_factory=lambda: list(CONTROLS))
    max_demos: int | None = Field(None, ge=1, description="augment only the first N demos (originals are all kept)")
    min_distance: float = Field(4.0, ge=0, description="check: mean |variant - source| (0-255) must exceed this")
    max_masked_residual: float = Field(
        20.0, ge=0, description="check: robot/object pixels after a global gain/offset fit must stay within this"
    )
    local: LocalEngineConfig = LocalEngineConfig()
    cosmos: CosmosConfig = CosmosConfig()
