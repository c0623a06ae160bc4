"""Settings of the video corpus scan: the scene-cut detector, the quality filters and the near-duplicate hashes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class VideoCorpusConfig(BaseModel):
    """How clips are split into shots, which shots are kept, and when two shots are the same scene."""

    model_config = ConfigDict(extra="forbid")

    # decoding
    analysis_width: int = Field(64, ge=32, le=1024, description="frames are analysed downscaled to this width "
                                                                 "(aspect kept): cuts, motion, black, static")
    hash_width: int = Field(128, ge=32, le=1024, description="frames are hashed downscaled to this width")
    blur_width: int = Field(320, ge=32, description="frames are judged for blur at most this wide")
    decode_threads: int = Field(0, ge=0, description="decoder threads per clip (0: FFmpeg's choice)")
    # scene cuts (PySceneDetect's AdaptiveDetector, rewritten: it is not installable here)
    cut_ratio: float = Field(3.0, gt=1, description="a cut: the frame's content change is at least this many times "
                                                    "the mean change of its neighbours")
    cut_min_content: float = Field(15.0, ge=0, description="and at least this content change (0-255: mean HSV pixel "
                                                           "change and colour-histogram change, averaged)")
    cut_window: int = Field(3, ge=1, description="neighbours each side the adaptive threshold averages")
    min_shot_frames: int = Field(15, ge=1, description="a cut closer than this to the previous one is ignored")
    # quality filters
    min_shot_seconds: float = Field(1.0, ge=0, description="shots shorter than this are too_short")
    min_width: int = Field(128, ge=1, description="clips narrower than this are low_resolution")
    min_height: int = Field(96, ge=1, description="clips lower than this are low_resolution")
    black_luma: float = Field(16.0, ge=0, le=255, description="a frame darker than this mean luma (0-255) is black")
    black_fraction: float = Field(0.9, gt=0, le=1, description="share of black frames that makes a shot black")
    static_gap_seconds: float = Field(0.5, gt=0, description="frames this far apart are compared for motion")
    static_threshold: float = Field(3.0, ge=0, description="luma change (0-255) between frames static_gap_seconds "
                                                           "apart that static_area of the picture must exceed "
                                                           "(on average over the shot) for it not to be static")
    static_area: float = Field(0.01, gt=0, lt=1, description="share of the picture that must move: a robot arm "
                                                             "in a still scene is not static")
    blur_threshold: float = Field(0.55, gt=0, lt=1, description="median no-reference blur (Crete et al. 2007: "
                                                                "0 sharp, 1 flat) above which a shot is blurred")
    shake_threshold: float = Field(0.012, gt=0, description="RMS jitter of the global motion (phase correlation, "
                                                            "fraction of the frame width per frame, after a moving "
                                                            "average) above which a shot is shaky")
    shake_window: int = Field(5, ge=3, description="frames in the moving average that separates a pan from shake")
    # near-duplicate hashes
    hash_fps: float = Field(3.0, gt=0, description="frames hashed per second of video")
    hash_slots: int = Field(8, ge=1, le=64, description="frames per shot kept for dedup, at fixed normalised times")
    hash_scales: tuple[float, ...] = Field((1.0, 0.9, 0.8), description="centre crops hashed per frame (fractions "
                                                                        "of width and height): crops match")
    hash_radius: int = Field(8, ge=0, le=64, description="Hamming bits two frame hashes may differ by")
    max_mean_distance: float = Field(6.0, ge=0, le=64, description="and the slots' mean best distance must be at "
                                     "most this: re-encodes, crops and rescales stay under 6 bits, while different "
                                     "takes of one fixed-camera scene (a robot cell) come out at 7 or more")
    match_fraction: float = Field(0.75, gt=0, le=1, description="share of a shot's slots that must match")
    slot_shift: int = Field(1, ge=0, description="slots a match may be shifted by (a trimmed re-upload)")
    max_duration_ratio: float = Field(1.5, ge=1, description="longer / shorter duration above which two shots "
                                                             "are not the same scene")
    band_bits: int = Field(24, ge=4, le=64, description="bits per LSH band (bit sampling of the 64-bit hashes)")
    bands: int = Field(6, ge=1, description="LSH bands per frame hash")
    seed: int = Field(0, description="seed of the LSH bit samples (part of an index: keep it)")

    @field_validator("hash_scales")
    @classmethod
    def _scales(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or any(not 0.2 <= s <= 1.0 for s in v):
            raise ValueError("hash_scales: one or more centre-crop fractions in [0.2, 1]")
        return tuple(sorted(set(v), reverse=True))
