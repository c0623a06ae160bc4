"""The local engine: domain randomisation of a clip (OpenCV on CPU, torch on CUDA), deterministic per seed.

One :class:`AugmentParams` is drawn per (seed, demo, variant) and applied to every frame of every camera of that
demo: the same light, colours, textures, blur and compression level throughout, so a clip does not flicker and the
cameras agree. Only sensor noise is drawn per frame (seeded by the frame index), as a real sensor's would be.

Per frame, in order: background/floor replaced by a procedural texture and the table re-textured with its shading
kept (through the segmentation mask, when there is one); colour (white balance, hue, saturation, contrast,
brightness) as one 3x3 matrix; a directional light falloff; Gaussian blur; sensor noise; a real JPEG round trip
at the drawn quality (compression artifacts). The CPU path runs the same steps with OpenCV on uint8/float32 HWC
frames (:meth:`LocalAugmenter._frame_cpu`: 3x faster than torch on CPU, output within a grey level of it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from robodata.augment.config import LocalEngineConfig
from robodata.augment.controls import CLASSES


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



# Bytes one 480x640-class frame needs on the GPU per pixel while it is augmented: about six live float32 RGB
# images (input, texture blend, matmul output, blur pads, noise) plus the uint8 frame, class map and masks.
_GPU_BYTES_PER_PIXEL = 6 * 3 * 4 + 3 + 8
_NOISE_PAD = 64  # the clip's noise field is this much larger than a frame: frames add windows of it
_TABLE_MAX = 1.25  # the table texture's largest factor (0.6 * 0.9 + 0.4) / 0.8, rounded up: its uint8 scale


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Torch's intra-op threads set to ``n`` for the block (None: unchanged), restored after.

    The clip's encoder and decoder threads need cores too: on a small machine torch's default (every core)
    makes them fight, and a Ray task given one CPU should use one. OpenCV's threads (the CPU path) follow."""
    if n is None:
        yield
        return
    import cv2
    import torch

    old, old_cv = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
        cv2.setNumThreads(old_cv)


class LocalAugmenter:
    """Applies :class:`AugmentParams` to frames of one clip (textures and kernels are built once).

    Frames go in batches of :attr:`batch_size`: on CUDA through torch, the batch picked from free memory
    (:mod:`robodata.gpu_memory`, halved on OOM); on CPU the fixed ``cpu_batch``, each frame through OpenCV into
    work images kept between frames. Every step is per frame, so the output does not depend on the batching.
    """

    def __init__(self, cfg: LocalEngineConfig, params: AugmentParams, hw: tuple[int, int], camera_salt: int = 0):
        import torch

        from robodata.gpu_memory import AdaptiveBatcher, memory_info, pick_batch_size

        self.cfg, self.p = cfg, params
        self.device = torch.device(resolve_device(cfg.device))
        h, w = hw
        self.hw = hw
        dev, f32 = self.device, torch.float32
        # Everything works on the 0-255 scale (no division per pixel); textures and tables are scaled once here.
        self.bg = torch.from_numpy(_texture(params, h, w, 1 + 2 * camera_salt)).to(dev) * 255
        table = torch.from_numpy(_texture(params, h, w, 2 + 2 * camera_salt)).to(dev)
        table = 0.6 * torch.tensor(params.table_color, dtype=f32, device=dev)[:, None, None] + 0.4 * table
        self.table = table / 0.8  # x lum (0-255): the table texture shaded by the scene's own light
        self.lum = torch.tensor([[0.299, 0.587, 0.114]], dtype=f32, device=dev)
        self.color = torch.from_numpy(_color_matrix(params)).to(dev)
        self.offset = float(0.5 * (1 - params.contrast) * params.gain) * 255
        ang = math.radians(params.light_dir_deg)
        yy = torch.linspace(-1, 1, h, device=dev)[:, None]
        xx = torch.linspace(-1, 1, w, device=dev)[None, :]
        self.light = (1 + params.light_strength * (math.cos(ang) * xx + math.sin(ang) * yy) / 1.4142).clamp(0.3, 2)
        self.blur = None
        self._blur_edge = torch.empty(0)
        sigma = params.blur_sigma * h / 480  # the configured sigma is for 480-line images
        if sigma >= 0.3:
            r = max(1, int(math.ceil(3 * sigma)))
            k = torch.exp(-((torch.arange(-r, r + 1, dtype=f32) / sigma) ** 2) / 2)
            k = k / k.sum()
            self.blur = k.to(dev)
            inside = torch.cumsum(k, 0)[r:2 * r]  # the weight that falls inside at 0..r-1 pixels from a border
            self._blur_edge = (1 / inside).to(dev)
        self.quality = max(1, min(100, params.jpeg_quality))
        if dev.type == "cpu":
            self._init_cpu()
        self.memory = memory_info(dev) if dev.type == "cuda" else None
        if self.memory is not None:
            batch = pick_batch_size(h * w * _GPU_BYTES_PER_PIXEL, self.memory.free, max_batch=cfg.gpu_max_batch,
                                    safety=cfg.gpu_memory_fraction)
        else:
            batch = cfg.cpu_batch
        self._bufs: dict[str, Any] | None = None
        self._noise: Any = None
        self._noise_hwc: np.ndarray | None = None
        self.batcher: AdaptiveBatcher = AdaptiveBatcher(batch, what=f"local augmentation of {h}x{w} frames",
                                                        device=dev)

    @property
    def batch_size(self) -> int:
        """The torch batch in use (on CUDA: after any halving on OOM)."""
        return self.batcher.batch_size

    def report(self) -> dict[str, Any]:
        """Where and how the frames were batched (goes into the clip report)."""
        out: dict[str, Any] = {"device": self.device.type, "batch_size": self.batch_size,
                               "batch_sizes_tried": list(self.batcher.tried)}
        if self.memory is not None:
            out["gpu_free_mib"] = round(self.memory.free / 2**20)
        return out

    def apply(self, frames: np.ndarray, seg: np.ndarray | None, first_index: int = 0) -> np.ndarray:
        """Augment ``(n, H, W, 3)`` uint8 frames (``seg``: ``(n, H, W)`` classes or None); frame ``i`` of the batch
        is frame ``first_index + i`` of the clip (its noise is seeded by that index)."""
        frames = np.ascontiguousarray(frames)
        if seg is not None:
            seg = np.ascontiguousarray(seg)
        if len(frames) == 0:
            return frames.copy()

        def work(r: Sequence[int]) -> np.ndarray:
            s, e = r[0], r[-1] + 1
            return self._apply(frames[s:e], None if seg is None else seg[s:e], first_index + s)

        return np.concatenate(self.batcher.run(work, range(len(frames))))

    def _buffers(self, n: int) -> dict[str, Any]:
        """Work tensors for ``n`` frames, kept between batches: on CPU a fresh multi-MB tensor per step costs
        more in page faults than the arithmetic on it."""
        import torch

        if self._bufs is None or self._bufs["x"].shape[0] < n:
            h, w = self.hw
            dev, f32, u8 = self.device, torch.float32, torch.uint8
            self._bufs = {"x": torch.empty((n, 3, h, w), dtype=f32, device=dev),
                          "t": torch.empty((n, 3, h, w), dtype=f32, device=dev),
                          "lum": torch.empty((n, 1, h, w), dtype=f32, device=dev),
                          "w": torch.empty((n, 1, h, w), dtype=f32, device=dev),
                          "m": torch.empty((n, 1, h, w), dtype=torch.bool, device=dev),
                          "u8": torch.empty((n, 3, h, w), dtype=u8, device=dev)}
        return {k: v[:n] for k, v in self._bufs.items()}

    def _apply(self, frames: np.ndarray, seg: np.ndarray | None, first_index: int) -> np.ndarray:
        if self.device.type == "cpu":
            out = np.empty(frames.shape, np.uint8)
            for i in range(len(frames)):
                out[i] = self._frame_cpu(frames[i], None if seg is None else seg[i], first_index + i)
            return out
        return self._apply_torch(frames, seg, first_index)

    def _init_cpu(self) -> None:
        """Constants and work images of the CPU path, HWC as OpenCV takes them (see :meth:`_frame_cpu`)."""
        h, w = self.hw
        hwc = lambda t: np.ascontiguousarray(t.permute(1, 2, 0).numpy())  # noqa: E731
        self._bg_u8 = np.clip(hwc(self.bg) + 0.5, 0, 255).astype(np.uint8)
        self._table_u8 = np.clip(hwc(self.table) * (255 / _TABLE_MAX) + 0.5, 0, 255).astype(np.uint8)
        # Colour matrix and offset as one 3x4 affine map, its output rows reversed: OpenCV's JPEG encoder takes BGR.
        affine = np.concatenate([self.color.numpy(), np.full((3, 1), self.offset, np.float32)], 1)[::-1]
        self._affine = np.ascontiguousarray(affine, dtype=np.float32)
        self._light3 = np.ascontiguousarray(np.repeat(self.light.numpy()[..., None], 3, axis=2), dtype=np.float32)
        self._kernel = None if self.blur is None else self.blur.numpy().reshape(-1, 1)
        self._work_u8 = np.empty((h, w, 3), np.uint8)
        self._f32 = np.empty((h, w, 3), np.float32), np.empty((h, w, 3), np.float32)
        self._out_u8 = np.empty((h, w, 3), np.uint8)

    def _frame_cpu(self, frame: np.ndarray, seg: np.ndarray | None, index: int) -> np.ndarray:
        """One ``(H, W, 3)`` uint8 frame on the CPU with OpenCV: the steps of the torch path, each one SIMD pass
        over the uint8 or float32 HWC image into a preallocated buffer (torch on CPU took 3x longer: CHW float
        copies, a channels-last conversion for the blur, torchvision's JPEG relayout).

        Differences from the torch path, all below a grey level before the noise and JPEG steps: textures are
        quantised to uint8; the blur runs first (on the masked frame, straight into float32): it commutes with
        the affine colour map exactly and with the smooth light falloff to first order; the blur's border
        reflects (OpenCV's default) where the torch path renormalises."""
        import cv2

        cfg, src = self.cfg, frame
        if seg is not None and (cfg.background or cfg.table):
            src = self._work_u8
            np.copyto(src, frame)
            if cfg.background:
                cv2.copyTo(self._bg_u8, ((seg == CLASSES["background"]) | (seg == CLASSES["floor"])).view(np.uint8),
                           src)
            table = (seg == CLASSES["table"]).view(np.uint8)
            rows = np.flatnonzero(table.any(1)) if cfg.table else np.empty(0, np.intp)
            if len(rows):  # the table texture shaded by the frame's own luminance, over the table's rows only
                r = slice(rows[0], rows[-1] + 1)
                lum = cv2.cvtColor(cv2.cvtColor(frame[r], cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
                cv2.copyTo(cv2.multiply(self._table_u8[r], lum, scale=_TABLE_MAX / 255), table[r], src[r])
        f, g = self._f32
        if self._kernel is not None:
            cv2.sepFilter2D(src, cv2.CV_32F, self._kernel, self._kernel, dst=f, borderType=cv2.BORDER_REFLECT_101)
        else:
            np.copyto(f, src, casting="unsafe")
        cv2.transform(f, self._affine, dst=g)  # colour (BGR out)
        cv2.multiply(g, self._light3, dst=g)
        if self.p.noise_std > 0:
            win, alpha = self._noise_window(index)
            cv2.scaleAdd(win, alpha, g, dst=g)
        np.maximum(g, 0, out=g)
        cv2.convertScaleAbs(g, dst=self._out_u8)  # rounds and saturates (values are >= 0 here)
        ok, data = cv2.imencode(".jpg", self._out_u8, [cv2.IMWRITE_JPEG_QUALITY, self.quality,
                                                       cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                                                       cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420])
        out = cv2.imdecode(data, cv2.IMREAD_COLOR_RGB) if ok else None
        if out is None:
            from robodata.augment.errors import AugmentError

            raise AugmentError(f"local augmentation: the JPEG round trip of frame {index} failed in OpenCV")
        return out

    def _noise_window(self, index: int) -> tuple[np.ndarray, float]:
        """The CPU path's noise for frame ``index``: an HWC view into the clip's noise field and its signed scale
        (the same field, offsets and signs as :meth:`_add_noise`)."""
        import torch

        h, w = self.hw
        if self._noise_hwc is None:
            g = torch.Generator(device="cpu").manual_seed(self.p.seed % (2**63))
            field = torch.randn((3, h + _NOISE_PAD, w + _NOISE_PAD), generator=g)
            self._noise_hwc = np.ascontiguousarray(field.permute(1, 2, 0).numpy()[..., ::-1])  # BGR, like the frame
        dy, dx, sign = np.random.default_rng([self.p.seed, index]).integers(0, [_NOISE_PAD, _NOISE_PAD, 2])
        return self._noise_hwc[dy:dy + h, dx:dx + w], self.p.noise_std * (1 - 2 * int(sign))

    def _apply_torch(self, frames: np.ndarray, seg: np.ndarray | None, first_index: int) -> np.ndarray:
        import torch

        with torch.no_grad():
            n = len(frames)
            b = self._buffers(n)
            x, t = b["x"], b["t"]
            x.copy_(torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2))  # (n, 3, H, W) float, 0-255
            if seg is not None and (self.cfg.background or self.cfg.table):
                s = torch.from_numpy(seg).to(self.device)[:, None]
                m, wgt = b["m"], b["w"]
                if self.cfg.background:
                    torch.eq(s, CLASSES["background"], out=m).logical_or_(s == CLASSES["floor"])
                    x.lerp_(self.bg.expand_as(x), wgt.copy_(m))  # a 0/1 weight: an exact, fast select
                if self.cfg.table:
                    lum = torch.matmul(self.lum, x.view(n, 3, -1), out=b["lum"].view(n, 1, -1)).view(n, 1, *self.hw)
                    torch.mul(self.table, lum, out=t).clamp_(0, 255)
                    x.lerp_(t, wgt.copy_(torch.eq(s, CLASSES["table"], out=m)))
            x = torch.matmul(self.color, x.view(n, 3, -1), out=t.view(n, 3, -1)).view_as(x)  # colour: 3x3 per pixel
            x.add_(self.offset).mul_(self.light)
            if self.blur is not None:
                x = self._blur(x)
            if self.p.noise_std > 0:
                self._add_noise(x, first_index)
            u8 = b["u8"].copy_(x.add_(0.5).clamp_(0, 255))  # the cast truncates: +0.5 rounds
            return self._jpeg(u8)

    def _blur(self, x):
        """Separable Gaussian as two depthwise convolutions in channels-last layout (torch's fast path on CPU),
        zero-padded by the convolution itself; the frame's border is then renormalised by the kernel weight that
        fell inside the image (no extra padded copy of the frame)."""
        import torch
        import torch.nn.functional as F

        k = self.blur
        assert k is not None  # _blur runs only when a blur kernel was drawn
        r = (len(k) - 1) // 2
        y = x.contiguous(memory_format=torch.channels_last)
        y = F.conv2d(y, k.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3, padding=(0, r))
        y = F.conv2d(y, k.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3, padding=(r, 0)).contiguous()
        edge = self._blur_edge  # 1 / the kernel weight inside the image, for the r pixels next to each border
        if edge.shape[0] and 2 * r <= min(self.hw):
            y[..., :, :r].mul_(edge)
            y[..., :, -r:].mul_(edge.flip(0))
            y[..., :r, :].mul_(edge[:, None])
            y[..., -r:, :].mul_(edge.flip(0)[:, None])
        return y

    def _add_noise(self, x, first_index: int) -> None:
        """Sensor noise in place: frame ``i`` of the clip adds a window of the clip's noise field at an offset
        (and sign) drawn from its own seed, whatever the batching.

        Our own scheme, not per-frame ``randn``: drawing 3xHxW normals per frame was the largest single cost of
        the engine on CPU. A window of one i.i.d. field is i.i.d. in space, and two frames share their noise only
        when they draw the same offset and sign (1 pair in 2 * _NOISE_PAD**2)."""
        import torch

        h, w = self.hw
        if self._noise is None:
            g = torch.Generator(device=self.device).manual_seed(self.p.seed % (2**63))
            self._noise = torch.randn((3, h + _NOISE_PAD, w + _NOISE_PAD), generator=g, device=self.device)
        for i in range(x.shape[0]):
            dy, dx, sign = np.random.default_rng([self.p.seed, first_index + i]).integers(
                0, [_NOISE_PAD, _NOISE_PAD, 2])
            x[i].add_(self._noise[:, dy:dy + h, dx:dx + w], alpha=self.p.noise_std * (1 - 2 * int(sign)))

    def _jpeg(self, x) -> np.ndarray:
        """A real JPEG round trip at this variant's quality (libjpeg-turbo through torchvision, on the CPU):
        8x8 DCT blocking, quantisation with the standard tables and 4:2:0 chroma, as a camera's encoder does.
        ``x`` is ``(n, 3, H, W)`` uint8; returns ``(n, H, W, 3)`` uint8."""
        from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

        data = encode_jpeg(list(x.cpu()), quality=self.quality)
        out = np.empty((x.shape[0], *self.hw, 3), np.uint8)
        for i, img in enumerate(decode_jpeg(data, mode=ImageReadMode.RGB)):
            out[i] = img.permute(1, 2, 0).numpy()
        return out
