"""The local engine: domain randomisation of a clip in torch (CPU, or CUDA when present), deterministic per seed.

One :class:`AugmentParams` is drawn per (seed, demo, variant) and applied to every frame of every camera of that
demo: the same light, colours, textures, blur and compression level throughout, so a clip does not flicker and the
cameras agree. Only sensor noise is drawn per frame (seeded by the frame index), as a real sensor's would be.

Per frame, in order: background/floor replaced by a procedural texture and the table re-textured with its shading
kept (through the segmentation mask, when there is one); colour (white balance, hue, saturation, contrast,
brightness) as one 3x3 matrix; a directional light falloff; Gaussian blur; sensor noise; JPEG-style 8x8 DCT
quantisation (compression artifacts).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from robodata.augment.config import LocalEngineConfig
from robodata.augment.controls import CLASSES

# The JPEG standard's quantisation tables (ITU T.81, Annex K).
_Q_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.float32).reshape(8, 8)  # fmt: skip
_Q_CHROMA = np.full((8, 8), 99, np.float32)
_Q_CHROMA[:4, :4] = np.array([17, 18, 24, 47, 18, 21, 26, 66, 24, 26, 56, 99, 47, 66, 99, 99]).reshape(4, 4)


@dataclass(frozen=True)
class AugmentParams:
    """One variant's random draw (JSON-able: it goes into the demo's provenance)."""

    seed: int
    gain: float
    contrast: float
    saturation: float
    hue_deg: float
    white_balance: tuple[float, float, float]
    light_dir_deg: float
    light_strength: float
    background_colors: tuple[tuple[float, float, float], tuple[float, float, float]]
    background_scale: int
    table_color: tuple[float, float, float]
    texture_seed: int
    noise_std: float
    blur_sigma: float
    jpeg_quality: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def variant_seed(seed: int, demo: str, variant: int) -> int:
    """A stable seed per (project seed, demo, variant): the same inputs give the same variant everywhere."""
    digits = int("".join(c for c in demo if c.isdigit()) or 0)
    return int(np.random.SeedSequence([seed, digits, variant]).generate_state(1)[0])


def draw_params(cfg: LocalEngineConfig, seed: int) -> AugmentParams:
    rng = np.random.default_rng(seed)
    u = lambda r: float(rng.uniform(-r, r))  # noqa: E731
    colors = rng.uniform(0.05, 0.95, size=(2, 3))
    lo, hi = cfg.jpeg_quality
    return AugmentParams(
        seed=seed,
        gain=1.0 + u(cfg.brightness),
        contrast=1.0 + u(cfg.contrast),
        saturation=1.0 + u(cfg.saturation),
        hue_deg=u(cfg.hue_deg),
        white_balance=tuple(1.0 + u(cfg.white_balance) for _ in range(3)),  # type: ignore[arg-type]
        light_dir_deg=float(rng.uniform(0, 360)),
        light_strength=float(rng.uniform(0, cfg.light_gradient)),
        background_colors=(tuple(map(float, colors[0])), tuple(map(float, colors[1]))),  # type: ignore[arg-type]
        background_scale=int(rng.integers(3, 12)),
        table_color=tuple(map(float, rng.uniform(0.25, 0.9, size=3))),  # type: ignore[arg-type]
        texture_seed=int(rng.integers(0, 2**31 - 1)),
        noise_std=float(rng.uniform(0, cfg.noise_std)),
        blur_sigma=float(rng.uniform(0, cfg.blur_sigma)),
        jpeg_quality=int(rng.integers(min(lo, hi), max(lo, hi) + 1)),
    )


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        from robodata.augment.errors import AugmentError

        raise AugmentError("tiers.augmented_videos.local.device is 'cuda' but torch sees no CUDA device")
    return device


def _texture(params: AugmentParams, h: int, w: int, salt: int) -> np.ndarray:
    """A procedural texture ``(3, H, W)`` in [0, 1]: two colours mixed by smooth noise, plus fine grain."""
    rng = np.random.default_rng([params.texture_seed, salt])
    s = params.background_scale
    coarse = rng.random((s + 1, s + 1)).astype(np.float32)
    yi = np.linspace(0, s, h, dtype=np.float32)
    xi = np.linspace(0, s, w, dtype=np.float32)
    y0, x0 = np.minimum(yi.astype(int), s - 1), np.minimum(xi.astype(int), s - 1)
    fy, fx = (yi - y0)[:, None], (xi - x0)[None, :]
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
    c = coarse
    m = (c[y0][:, x0] * (1 - fx) + c[y0][:, x0 + 1] * fx) * (1 - fy) + (c[y0 + 1][:, x0] * (1 - fx) + c[y0 + 1][:, x0 + 1] * fx) * fy
    a, b = np.asarray(params.background_colors, np.float32)
    tex = a[:, None, None] * (1 - m) + b[:, None, None] * m
    tex += (rng.random((1, h, w), dtype=np.float32) - 0.5) * 0.06
    return np.clip(tex, 0, 1).astype(np.float32)


def _color_matrix(p: AugmentParams) -> np.ndarray:
    """White balance, hue rotation (about the grey axis), saturation and contrast gain as one 3x3 matrix."""
    wb = np.diag(p.white_balance).astype(np.float64)
    t = math.radians(p.hue_deg)
    k = np.ones((3, 3)) / 3.0
    c, s = math.cos(t), math.sin(t)
    cross = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]]) / math.sqrt(3)
    hue = c * np.eye(3) + (1 - c) * k + s * cross
    lum = np.array([0.299, 0.587, 0.114])
    sat = p.saturation * np.eye(3) + (1 - p.saturation) * np.outer(np.ones(3), lum)
    return (p.gain * p.contrast * (sat @ hue @ wb)).astype(np.float32)


def _dct_matrix() -> np.ndarray:
    n = 8
    m = np.array([[math.cos((2 * x + 1) * u * math.pi / 16) for x in range(n)] for u in range(n)])
    m[0] *= math.sqrt(1 / n)
    m[1:] *= math.sqrt(2 / n)
    return m.astype(np.float32)


def _quality_scale(q: int) -> float:
    q = max(1, min(100, q))
    return (5000 / q if q < 50 else 200 - 2 * q) / 100.0


class LocalAugmenter:
    """Applies :class:`AugmentParams` to batches of frames of one clip (textures and kernels are built once)."""

    def __init__(self, cfg: LocalEngineConfig, params: AugmentParams, hw: tuple[int, int], camera_salt: int = 0):
        import torch

        self.cfg, self.p = cfg, params
        self.device = torch.device(resolve_device(cfg.device))
        h, w = hw
        self.hw = hw
        dev, f32 = self.device, torch.float32
        self.bg = torch.from_numpy(_texture(params, h, w, 1 + 2 * camera_salt)).to(dev)
        self.table = torch.from_numpy(_texture(params, h, w, 2 + 2 * camera_salt)).to(dev)
        self.table = 0.6 * torch.tensor(params.table_color, dtype=f32, device=dev)[:, None, None] + 0.4 * self.table
        self.color = torch.from_numpy(_color_matrix(params)).to(dev)
        self.offset = float(0.5 * (1 - params.contrast) * params.gain)
        ang = math.radians(params.light_dir_deg)
        yy = torch.linspace(-1, 1, h, device=dev)[:, None]
        xx = torch.linspace(-1, 1, w, device=dev)[None, :]
        self.light = (1 + params.light_strength * (math.cos(ang) * xx + math.sin(ang) * yy) / 1.4142).clamp(0.3, 2)
        self.blur = None
        sigma = params.blur_sigma * h / 480  # the configured sigma is for 480-line images
        if sigma >= 0.3:
            r = max(1, int(math.ceil(3 * sigma)))
            k = torch.exp(-((torch.arange(-r, r + 1, dtype=f32) / sigma) ** 2) / 2)
            self.blur = (k / k.sum()).to(dev)
        d = _dct_matrix()
        self.dct2 = torch.from_numpy(np.kron(d, d)).to(dev)  # the 2-D 8x8 DCT on flattened blocks
        scale = _quality_scale(params.jpeg_quality)
        q = np.stack([_Q_LUMA, _Q_CHROMA, _Q_CHROMA]) * scale
        self.quant = torch.from_numpy(np.clip(np.floor(q + 0.5), 1, 255) / 255.0).to(dev)  # (3, 8, 8)

    def apply(self, frames: np.ndarray, seg: np.ndarray | None, first_index: int = 0) -> np.ndarray:
        """Augment ``(n, H, W, 3)`` uint8 frames (``seg``: ``(n, H, W)`` classes or None); frame ``i`` of the batch
        is frame ``first_index + i`` of the clip (its noise is seeded by that index)."""
        import torch

        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
            if seg is not None and (self.cfg.background or self.cfg.table):
                s = torch.from_numpy(np.ascontiguousarray(seg)).to(self.device)[:, None]
                if self.cfg.background:
                    bg = (s == CLASSES["background"]) | (s == CLASSES["floor"])
                    x = torch.where(bg, self.bg[None], x)
                if self.cfg.table:
                    lum = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
                    shaded = (self.table[None] * (lum / 0.8)).clamp(0, 1)
                    x = torch.where(s == CLASSES["table"], shaded, x)
            x = torch.einsum("ij,njhw->nihw", self.color, x) + self.offset
            x = x * self.light
            if self.blur is not None:
                x = self._blur(x)
            if self.p.noise_std > 0:
                x = x + self._noise(x.shape, first_index) * (self.p.noise_std / 255.0)
            x = self._jpeg(x.clamp(0, 1))
            return (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    def _blur(self, x):
        """Separable Gaussian as two depthwise convolutions (channels-last: the fast path on CPU)."""
        import torch
        import torch.nn.functional as F

        k = self.blur
        assert k is not None  # _blur runs only when a blur kernel was drawn
        r = (len(k) - 1) // 2
        x = F.pad(x, (r, r, r, r), mode="replicate").contiguous(memory_format=torch.channels_last)
        x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)
        x = F.conv2d(x, k.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)
        return x.contiguous()

    def _noise(self, shape, first_index: int):
        import torch

        out = torch.empty(shape, device=self.device)
        g = torch.Generator(device=self.device)
        for i in range(shape[0]):
            g.manual_seed((self.p.seed * 1_000_003 + first_index + i) % (2**63))
            out[i] = torch.randn(shape[1:], generator=g, device=self.device)
        return out

    def _jpeg(self, x):
        """JPEG's lossy core: YCbCr, 8x8 DCT, quantise with the standard tables at this quality, inverse."""
        import torch
        import torch.nn.functional as F

        n, _, h, w = x.shape
        ph, pw = (-h) % 8, (-w) % 8
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        H, W = h + ph, w + pw
        r, g, b = x[:, 0], x[:, 1], x[:, 2]
        y = 0.299 * r + 0.587 * g + 0.114 * b
        cb = -0.168736 * r - 0.331264 * g + 0.5 * b
        cr = 0.5 * r - 0.418688 * g - 0.081312 * b
        ycc = torch.stack([y - 0.5, cb, cr], 1)  # (n, 3, H, W)
        blocks = ycc.reshape(n, 3, H // 8, 8, W // 8, 8).permute(0, 1, 2, 4, 3, 5).reshape(n, 3, -1, 64)
        coef = blocks @ self.dct2.T  # one GEMM per channel: (blocks, 64) x (64, 64)
        q = self.quant.reshape(1, 3, 1, 64)
        coef = torch.round(coef / q) * q
        blocks = (coef @ self.dct2).reshape(n, 3, H // 8, W // 8, 8, 8)
        ycc = blocks.permute(0, 1, 2, 4, 3, 5).reshape(n, 3, H, W)
        y, cb, cr = ycc[:, 0] + 0.5, ycc[:, 1], ycc[:, 2]
        rgb = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)
        return rgb[:, :, :h, :w]
