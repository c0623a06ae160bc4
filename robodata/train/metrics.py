"""Training metrics read from a trainer's log: lerobot-train's tracker lines and HF Trainer's (GR00T's) dicts."""

from __future__ import annotations

import ast
import math
import re
from dataclasses import asdict, dataclass, field

_LEROBOT_LINE = re.compile(r"step:(?P<step>[\d.]+[KMBTQ]?) smpl:\S+ ep:\S+ epch:(?P<epoch>[\d.]+) (?P<rest>.*)$")
_TOKEN = re.compile(r"([\w/]+):(-?[\d.]+(?:e[-+]?\d+)?)")
_HF_DICT = re.compile(r"(\{'(?:loss|train_runtime)'.*\})\s*$")
_SUFFIX = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12, "Q": 1e15}
_LEROBOT_NAMES = {"grdn": "grad_norm", "updt_s": "update_s", "data_s": "dataloading_s", "smpl/s": "samples_per_s", "smp/s": "samples_per_s"}


@dataclass
class MetricPoint:
    step: int
    loss: float
    values: dict[str, float] = field(default_factory=dict)
    t: float = 0.0  # seconds since the trainer started


def _big_number(s: str) -> tuple[float, bool]:
    """``"1K"`` -> (1000, False): lerobot rounds step counts above 999, so the value is not exact."""
    if s and s[-1] in _SUFFIX:
        return float(s[:-1]) * _SUFFIX[s[-1]], False
    return float(s), True


class MetricsParser:
    """Feed it log lines; it keeps the loss curve (one point per logged step).

    lerobot-train logs ``step:200 smpl:800 ep:4 epch:0.73 loss:0.512 grdn:... lr:... updt_s:... data_s:...``
    every ``log_freq`` steps (step counts above 999 are rounded to ``1K``: exact steps then come from
    ``log_freq``). HF Trainer (GR00T) prints ``{'loss': 0.51, 'grad_norm': ..., 'learning_rate': ..., 'epoch': ...}``
    every ``logging_steps`` and a ``{'train_runtime': ...}`` summary at the end.
    """

    def __init__(self, engine: str, log_steps: int, start_step: int = 0):
        self.engine = engine
        self.log_steps = log_steps
        self.points: list[MetricPoint] = []
        self.summary: dict[str, float] = {}
        self._start = start_step

    def feed(self, line: str, t: float = 0.0) -> MetricPoint | None:
        if self.engine == "lerobot":
            return self._lerobot(line, t)
        return self._hf(line, t)

    def _next_step(self) -> int:
        return (self.points[-1].step if self.points else self._start) + self.log_steps

    def _lerobot(self, line: str, t: float) -> MetricPoint | None:
        m = _LEROBOT_LINE.search(line)
        if not m:
            return None
        step, exact = _big_number(m["step"])
        vals = {_LEROBOT_NAMES.get(k, k): float(v) for k, v in _TOKEN.findall(m["rest"])}
        if "loss" not in vals:
            return None
        vals["epoch"] = float(m["epoch"])
        p = MetricPoint(int(step) if exact else self._next_step(), vals.pop("loss"), vals, t)
        self.points.append(p)
        return p

    def _hf(self, line: str, t: float) -> MetricPoint | None:
        m = _HF_DICT.search(line)
        if not m:
            return None
        try:
            d = ast.literal_eval(m[1])
        except (ValueError, SyntaxError):
            return None
        vals = {k: float(v) for k, v in d.items() if isinstance(v, (int, float))}
        if "train_runtime" in vals:
            self.summary = vals
            return None
        p = MetricPoint(int(vals.pop("step", self._next_step())), vals.pop("loss"), vals, t)
        self.points.append(p)
        return p

    # ---- what a run reports -------------------------------------------------------------------------
    @property
    def final_loss(self) -> float | None:
        return self.points[-1].loss if self.points else None

    @property
    def best_loss(self) -> float | None:
        finite = [p.loss for p in self.points if math.isfinite(p.loss)]
        return min(finite) if finite else None

    @property
    def last_step(self) -> int:
        return self.points[-1].step if self.points else self._start

    def samples_per_s(self, batch_size: int) -> float | None:
        """Throughput between the first and the last logged step (start-up and dataset loading excluded)."""
        if self.summary.get("train_samples_per_second"):
            return self.summary["train_samples_per_second"]
        own = [p.values["samples_per_s"] for p in self.points if p.values.get("samples_per_s")]
        if own:  # lerobot's own figure: batch / (update + data loading) time, averaged over the log window
            return sum(own) / len(own)
        if len(self.points) >= 2 and self.points[-1].t > self.points[0].t:
            a, b = self.points[0], self.points[-1]
            return (b.step - a.step) * batch_size / (b.t - a.t)
        return None

    def curve(self) -> list[dict]:
        return [asdict(p) for p in self.points]
