"""GPU memory: how much is free, a batch size that fits, and a batched runner that halves its batch on OOM.

:func:`pick_batch_size` sizes a batch from free memory before the work starts; :class:`AdaptiveBatcher` (and
:func:`run_batched`) runs the work in batches and, when one runs out of CUDA memory, empties torch's cache,
halves the batch and retries it, down to 1; at 1 it raises :class:`GpuMemoryError`. The batch sizes it went
through are kept, so that a report can say which one the work used. On CPU nothing here raises OOM: a fixed
batch is used as given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from robodata.errors import RobodataError

T = TypeVar("T")
R = TypeVar("R")
MiB = 1 << 20


class GpuMemoryError(RobodataError):
    """GPU work does not fit in memory even one item at a time; the message names the work and the memory."""


@dataclass(frozen=True)
class MemoryInfo:
    """Bytes free for new tensors (the driver's free memory plus torch's cached, unused blocks) and in total."""

    free: int
    total: int

    def __str__(self) -> str:
        return f"{self.free / MiB:.0f} of {self.total / MiB:.0f} MiB free"


def memory_info(device: Any = None) -> MemoryInfo | None:
    """Free and total memory of a CUDA ``device`` (default: the current one); None on CPU or without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    if device is not None and torch.device(device).type != "cuda":
        return None
    free, total = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # torch reuses these first
    return MemoryInfo(int(free + max(0, cached)), int(total))


def pick_batch_size(per_item_bytes: int, free_bytes: int | None, *, max_batch: int, safety: float = 0.5) -> int:
    """The largest batch whose ``per_item_bytes * batch`` fits in ``safety * free_bytes``, within [1, max_batch].

    ``free_bytes`` None (no GPU) gives ``max_batch``. A batch of 1 is the floor even when one item does not fit:
    the adaptive runner then reports the OOM clearly rather than this function guessing.
    """
    if per_item_bytes <= 0:
        raise ValueError(f"per_item_bytes must be positive, got {per_item_bytes}")
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    if not 0 < safety <= 1:
        raise ValueError(f"safety must be in (0, 1], got {safety}")
    if free_bytes is None:
        return max_batch
    return max(1, min(max_batch, int(max(0, free_bytes) * safety) // per_item_bytes))


def is_oom(err: BaseException) -> bool:
    """A CUDA out-of-memory error: ``torch.cuda.OutOfMemoryError`` or the older ``RuntimeError`` form."""
    import torch

    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "CUDA out of memory" in str(err)


def empty_cache() -> None:
    """Give torch's cached CUDA blocks back (a no-op without CUDA)."""
    import gc

    import torch

    gc.collect()  # tensors of the failed batch may still sit in reference cycles (tracebacks)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass
class AdaptiveBatcher(Generic[T, R]):
    """Runs ``fn`` over consecutive slices of a sequence, halving the slice on CUDA OOM (see module docstring).

    The batch size survives between :meth:`run` calls: once a clip's batch had to shrink, later batches of the
    same work start at the smaller size instead of running out of memory again.
    """

    batch_size: int
    what: str = "GPU work"
    device: Any = None
    # The batch size at the start, then after each OOM (half of the batch that failed: a short last batch of 5
    # halves to 2), in order.
    tried: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        self.tried = self.tried or [self.batch_size]

    @property
    def oom_retries(self) -> int:
        return len(self.tried) - 1

    def run(self, fn: Callable[[Sequence[T]], R], items: Sequence[T]) -> list[R]:
        """``[fn(items[s:e]) for each batch]``; a batch that runs out of CUDA memory is retried at half the size."""
        out: list[R] = []
        start, n = 0, len(items)
        while start < n:
            size = min(self.batch_size, n - start)
            try:
                out.append(fn(items[start:start + size]))
            except RuntimeError as err:  # torch.cuda.OutOfMemoryError is one
                if not is_oom(err):
                    raise
                if size == 1:
                    info = memory_info(self.device)
                    raise GpuMemoryError(
                        f"{self.what}: out of GPU memory even at batch size 1 (tried {self.tried}"
                        f"{'; ' + str(info) if info else ''}): {str(err).splitlines()[0][:200]}"
                    ) from err
            else:
                start += size
                continue
            # Outside the except block, so that the failed batch's tensors (held by the traceback) are freed.
            empty_cache()
            self.batch_size = max(1, size // 2)
            self.tried.append(self.batch_size)
        return out


@dataclass
class BatchedRun(Generic[R]):
    """What :func:`run_batched` did: one result per batch, the batch size it ended with, every size it tried."""

    results: list[R]
    batch_size: int
    tried: list[int]


def run_batched[T, R](fn: Callable[[Sequence[T]], R], items: Sequence[T], batch_size: int, *,
                      what: str = "GPU work", device: Any = None) -> BatchedRun[R]:
    """Run ``fn`` over ``items`` in batches of ``batch_size``, halving on CUDA OOM down to 1 (then
    :class:`GpuMemoryError`)."""
    batcher: AdaptiveBatcher[T, R] = AdaptiveBatcher(batch_size, what=what, device=device)
    results = batcher.run(fn, items)
    return BatchedRun(results, batcher.batch_size, list(batcher.tried))
