"""GPU memory management on CPU: batch sizing arithmetic, the OOM-halving runner and its use by the local engine.

The out-of-memory errors are real ``torch.cuda.OutOfMemoryError`` (and the older ``RuntimeError`` form) raised by
the work function when its batch exceeds a capacity: that is the runner's contract with the work it runs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robodata.augment.clips import process_clip
from robodata.augment.config import AugmentedVideosConfig, LocalEngineConfig
from robodata.augment.local import LocalAugmenter, draw_params
from robodata.errors import RobodataError
from robodata.formats.isaaclab import EpisodeSchema, EpisodeStoreWriter, FeatureSpec
from robodata.gpu_memory import (
    AdaptiveBatcher,
    GpuMemoryError,
    is_oom,
    memory_info,
    pick_batch_size,
    run_batched,
)


def limited(fn, capacity: int, *, old_form: bool = False, calls: list[int] | None = None):
    """``fn`` on a device that holds ``capacity`` items: a larger batch raises CUDA's out-of-memory error."""

    def work(batch):
        if calls is not None:
            calls.append(len(batch))
        if len(batch) > capacity:
            if old_form:
                raise RuntimeError(f"CUDA out of memory. Tried to allocate {len(batch) * 20} MiB (simulated)")
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {len(batch) * 20} MiB")
        return fn(batch)

    return work


def test_pick_batch_size_arithmetic():
    mib = 1 << 20
    assert pick_batch_size(100 * mib, 1000 * mib, max_batch=64, safety=0.5) == 5  # 500 MiB usable / 100 MiB
    assert pick_batch_size(100 * mib, 1000 * mib, max_batch=64, safety=1.0) == 10
    assert pick_batch_size(100 * mib, 1099 * mib, max_batch=64, safety=1.0) == 10  # floors, never rounds up
    assert pick_batch_size(1, 10**12, max_batch=64) == 64  # capped
    assert pick_batch_size(100 * mib, 10 * mib, max_batch=64) == 1  # one item does not fit: 1, the runner decides
    assert pick_batch_size(100 * mib, None, max_batch=16) == 16  # no GPU: the fixed batch
    for bad in (dict(per_item_bytes=0, free_bytes=1, max_batch=1), dict(per_item_bytes=1, free_bytes=1, max_batch=0),
                dict(per_item_bytes=1, free_bytes=1, max_batch=1, safety=0), dict(per_item_bytes=1, free_bytes=1,
                                                                                   max_batch=1, safety=1.5)):
        with pytest.raises(ValueError):
            pick_batch_size(**bad)


def test_runner_halves_on_oom_and_matches_an_unbatched_run():
    items = np.arange(100, dtype=np.float64)
    calls: list[int] = []
    run = run_batched(limited(lambda b: np.sqrt(b) * 3, capacity=5, calls=calls), items, 32, what="sqrt")
    assert run.tried == [32, 16, 8, 4] and run.batch_size == 4
    assert calls[:4] == [32, 16, 8, 4] and all(c <= 4 for c in calls[4:])
    assert np.array_equal(np.concatenate(run.results), np.sqrt(items) * 3)  # identical to one unbatched call
    assert sum(map(len, run.results)) == 100


def test_runner_handles_the_runtime_error_form_and_a_short_last_batch():
    items = list(range(10))
    run = run_batched(limited(lambda b: [v * v for v in b], capacity=3, old_form=True), items, 8)
    assert run.tried == [8, 4, 2]
    assert [v for part in run.results for v in part] == [v * v for v in items]
    # a short batch (5 items, batch size 8) that does not fit is halved from its own size
    run = run_batched(limited(lambda b: list(b), capacity=4), list(range(5)), 8)
    assert run.tried == [8, 2] and [v for part in run.results for v in part] == list(range(5))


def test_runner_raises_one_clear_error_at_batch_1():
    with pytest.raises(GpuMemoryError, match=r"frame work: out of GPU memory even at batch size 1 \(tried \[8, 4, 2, "
                                             r"1\]") as info:
        run_batched(limited(lambda b: b, capacity=0), list(range(20)), 8, what="frame work")
    assert isinstance(info.value, RobodataError) and isinstance(info.value.__cause__, torch.cuda.OutOfMemoryError)


def test_runner_does_not_swallow_other_errors():
    def broken(batch):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_batched(broken, list(range(4)), 2)
    assert is_oom(torch.cuda.OutOfMemoryError("x")) and is_oom(RuntimeError("CUDA out of memory. Tried"))
    assert not is_oom(RuntimeError("shape mismatch")) and not is_oom(MemoryError())


def test_batcher_keeps_the_smaller_batch_between_calls():
    calls: list[int] = []
    b: AdaptiveBatcher = AdaptiveBatcher(16)
    work = limited(lambda x: x, capacity=6, calls=calls)
    b.run(work, list(range(20)))
    assert b.tried == [16, 8, 4] and b.oom_retries == 2
    calls.clear()
    b.run(work, list(range(20)))
    assert calls == [4] * 5  # the next batch of frames starts at the size that fitted: no OOM again


def test_memory_info_is_none_without_cuda():
    if torch.cuda.is_available():
        info = memory_info()
        assert info is not None and 0 < info.free <= info.total
    else:
        assert memory_info() is None and memory_info("cpu") is None


def test_local_engine_batches_through_the_manager():
    """On CPU the engine uses the fixed ``cpu_batch``; its work halves on OOM like any and the output does not
    depend on the batching."""
    rng = np.random.default_rng(0)
    hw = (96, 128)
    frames = rng.integers(0, 255, (11, *hw, 3), dtype=np.uint8)
    seg = np.zeros((11, *hw), np.uint8)
    seg[:, 48:] = 2  # table below, background above
    seg[:, 24:60, 30:60] = 3  # a robot
    cfg = LocalEngineConfig(device="cpu", cpu_batch=8, blur_sigma=8.0)
    params = draw_params(cfg, 7)
    one = LocalAugmenter(cfg.model_copy(update={"cpu_batch": 1}), params, hw)
    assert one.blur is not None and params.noise_std > 0  # every step runs, the blur too
    ref = one.apply(frames, seg, 0)
    assert one.report() == {"device": "cpu", "batch_size": 1, "batch_sizes_tried": [1]}

    aug = LocalAugmenter(cfg, params, hw)
    assert aug.batch_size == 8
    real = aug._apply
    sizes: list[int] = []

    def on_small_device(frames_, seg_, first):  # the engine's work on a device that holds 3 frames
        sizes.append(len(frames_))
        if len(frames_) > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(frames_, seg_, first)

    aug._apply = on_small_device  # type: ignore[method-assign]
    out = aug.apply(frames, seg, 0)
    assert aug.report()["batch_sizes_tried"] == [8, 4, 2] and aug.batch_size == 2
    assert sizes[:3] == [8, 4, 2] and max(sizes[3:]) <= 2
    assert np.array_equal(out, ref)  # same frames whatever the batch


def test_clip_report_names_the_batch_size(tmp_path):
    schema = EpisodeSchema([FeatureSpec("cam", "image", (32, 48, 3), "uint8"), FeatureSpec("q", "state", (2,)),
                            FeatureSpec("a", "action", (2,))], fps=10)
    n = 12
    frames = np.full((n, 32, 48, 3), 90, np.uint8)
    for i in range(n):
        frames[i, 10:20, 2 + i : 12 + i] = 230
    with EpisodeStoreWriter(tmp_path / "real.hdf5", schema, env_name="my_real_robot") as w:
        d = w.begin_episode()
        d.extend(np.arange(n) / 10, {"cam": frames, "q": np.zeros((n, 2)), "a": np.zeros((n, 2))})
        d.close()
    cfg = AugmentedVideosConfig.model_validate({"local": {"device": "cpu", "cpu_batch": 3}})
    rep = process_clip(tmp_path / "real.hdf5", "demo_0", "cam", tmp_path / "out", cfg, [(0, 1), (1, 2)])
    assert rep["augment"] == {k: {"device": "cpu", "batch_size": 3, "batch_sizes_tried": [3]} for k in (0, 1)}


def test_a_trainer_out_of_gpu_memory_gets_one_clear_error(tmp_path):
    """A trainer process that dies of a real ``torch.cuda.OutOfMemoryError``: the result names the batch size."""
    import sys

    from robodata.train.commands import TrainCommand
    from robodata.train.runner import run_trainer

    boom = "import torch; raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')"
    cmd = TrainCommand("lerobot", [sys.executable, "-c", boom], str(tmp_path / "run"))
    res = run_trainer(cmd, log_steps=1, batch_size=48)
    assert not res.ok and res.returncode == 1
    assert res.error.startswith("lerobot trainer ran out of GPU memory at batch size 48 (exit code 1): lower "
                                "tiers.policy.batch_size")
    assert "Tried to allocate 2.00 GiB" in res.error
    crash = TrainCommand("lerobot", [sys.executable, "-c", "raise ValueError('bad flag')"], str(tmp_path / "run2"))
    assert run_trainer(crash, log_steps=1, batch_size=48).error.startswith("lerobot trainer exited with code 1: ")
