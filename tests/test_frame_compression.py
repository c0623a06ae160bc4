"""Camera frames in the canonical episode store: every ``image_compression`` option is lossless, and what it
writes is plain HDF5 (standard filters, per-chunk filter masks) that h5py reads with no plugin."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from robodata.formats.isaaclab import (
    DEFAULT_IMAGE_COMPRESSION,
    IMAGE_COMPRESSIONS,
    EpisodeSchema,
    EpisodeStore,
    EpisodeStoreError,
    EpisodeStoreWriter,
    FeatureSpec,
    read_frames,
)

H, W = 160, 96  # tall enough for auto's row sample (8 slabs of 8 rows)


def frames(n: int = 36, seed: int = 0) -> np.ndarray:
    """Compressible frames (gradients, flat blocks), then noise (deflate cannot shrink it), then compressible."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    out = np.empty((n, H, W, 3), np.uint8)
    third = n // 3
    for k in range(n):
        if third <= k < 2 * third:
            out[k] = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        else:
            out[k, ..., 0] = (xx + k) % 256
            out[k, ..., 1] = (yy // 8) * 8
            out[k, ..., 2] = 40
            out[k, 20:40, (3 * k) % (W - 20) : (3 * k) % (W - 20) + 20] = 255
    return out


SCHEMA = EpisodeSchema(
    [FeatureSpec("cam", "image", (H, W, 3), "uint8"), FeatureSpec("wrist", "image", (H, W, 3), "uint8"),
     FeatureSpec("q", "state", (2,)), FeatureSpec("a", "action", (2,))],
    30.0,
)  # fmt: skip


def write_store(path, mode, cam, wrist, *, keep=None):
    n = len(cam)
    with EpisodeStoreWriter(path, SCHEMA, image_compression=mode) as w:
        demo = w.begin_episode()
        half = n // 2
        ro = cam.copy()
        ro.flags.writeable = False  # ingest hands over read-only views of message buffers
        for i in range(half):  # frame by frame, as ingest streams them
            demo.write_frames("cam", [ro[i]])
        demo.write_frames("cam", list(ro[half:]))
        demo.write_feature("wrist", wrist[:half])
        zeros = np.zeros((n, 2), np.float32)
        demo.extend(np.arange(half) / 30.0, {"q": zeros[:half], "a": zeros[:half]}, skip_roles=("image",))
        demo.write_feature("wrist", wrist[half:])
        demo.extend(np.arange(half, n) / 30.0, {"q": zeros[half:], "a": zeros[half:]}, skip_roles=("image",))
        if keep is not None:
            demo.keep(keep)
        demo.close()
        # A second demo through extend() with the frames among the features (how mimicgen and augment write).
        demo = w.begin_episode()
        demo.extend(np.arange(n) / 30.0, {"q": zeros, "a": zeros, "cam": wrist, "wrist": cam})
        demo.close()
    return w.frame_stats


@pytest.mark.parametrize("mode", IMAGE_COMPRESSIONS)
def test_every_option_round_trips_frames_exactly(tmp_path, mode):
    cam, wrist = frames(), frames(seed=1)[::-1].copy()
    path = tmp_path / f"{mode}.hdf5"
    stats = write_store(path, mode, cam, wrist)
    with EpisodeStore(path) as es:
        ep = es.read("demo_0")
        for name, want in (("cam", cam), ("wrist", wrist)):
            got = ep.obs[name]
            assert got.dtype == np.uint8 and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
            batches = [b[name] for b in es.iter_frames("demo_0", [name], batch=7)]
            np.testing.assert_array_equal(np.concatenate(batches), want)
        ep1 = es.read("demo_1")
        np.testing.assert_array_equal(ep1.obs["cam"], wrist)
        np.testing.assert_array_equal(ep1.obs["wrist"], cam)
    with h5py.File(path, "r") as f:  # plain h5py, no robodata in the way
        ds = f["data/demo_0/obs/cam"]
        assert ds.chunks == (1, H, W, 3)
        assert ds.compression == {"none": None, "lzf": "lzf"}.get(mode, "gzip")
        np.testing.assert_array_equal(ds[()], cam)
        np.testing.assert_array_equal(ds[5], cam[5])
        np.testing.assert_array_equal(ds[3:29:4], cam[3:29:4])
        np.testing.assert_array_equal(read_frames(ds, 2, 30), cam[2:30])
    if mode != "lzf":  # lzf is compressed inside h5py's own write, not counted
        assert stats.frames == 4 * len(cam) and stats.raw_bytes == 2 * (cam.nbytes + wrist.nbytes)


def test_auto_deflates_frames_that_pay_and_stores_the_rest_raw(tmp_path):
    cam, wrist = frames(), frames(seed=1)
    path = tmp_path / "auto.hdf5"
    stats = write_store(path, "auto", cam, wrist)
    third = len(cam) // 3
    with h5py.File(path, "r") as f:
        ds = f["data/demo_0/obs/cam"]
        masks = [ds.id.read_direct_chunk((i, 0, 0, 0))[0] for i in range(len(cam))]
        assert masks[0] == 0  # deflated (filter applied)
        assert all(m == 1 for m in masks[third : 2 * third])  # noise: stored raw, its filter skipped
        np.testing.assert_array_equal(ds[()], cam)
    assert 0 < stats.deflated < stats.frames and stats.ratio > 1.2
    assert DEFAULT_IMAGE_COMPRESSION == "auto"


@pytest.mark.parametrize("mode", ["auto", "gzip", "none"])
def test_dropping_frames_after_writing_them_keeps_the_rest_exact(tmp_path, mode):
    cam, wrist = frames(), frames(seed=2)
    keep = np.ones(len(cam), bool)
    keep[[0, 5, 17, 30]] = False
    path = tmp_path / f"{mode}.hdf5"
    write_store(path, mode, cam, wrist, keep=keep)
    with EpisodeStore(path) as es:
        ep = es.read("demo_0")
        np.testing.assert_array_equal(ep.obs["cam"], cam[keep])
        np.testing.assert_array_equal(ep.obs["wrist"], wrist[keep])


def test_write_frames_refuses_a_frame_of_another_size(tmp_path):
    w = EpisodeStoreWriter(tmp_path / "x.hdf5", SCHEMA, image_compression="auto")
    demo = w.begin_episode()
    with pytest.raises(EpisodeStoreError, match=r"frames have shape \(160, 96, 3\), got \(10, 10, 3\)"):
        demo.write_frames("cam", [np.zeros((10, 10, 3), np.uint8)])
    w.abort()
    with pytest.raises(EpisodeStoreError, match="image_compression 'zstd' is not one of"):
        EpisodeStoreWriter(tmp_path / "y.hdf5", SCHEMA, image_compression="zstd")  # type: ignore[arg-type]


def test_ingest_default_store_opens_in_plain_h5py_with_the_same_frames(tmp_path):
    from robodata.ingest import ingest_recording
    from robodata.topicmap import load_topic_map
    from tests.recordings import SMALL_TOPIC_MAP, make_mcap

    src = make_mcap(tmp_path / "r.mcap", 40)
    tm = load_topic_map(SMALL_TOPIC_MAP)
    ingest_recording(src, tmp_path / "default.hdf5", tm)  # the default: auto
    ingest_recording(src, tmp_path / "none.hdf5", tm, image_compression="none")
    with h5py.File(tmp_path / "default.hdf5", "r") as d, h5py.File(tmp_path / "none.hdf5", "r") as n:
        assert d["data/demo_0/obs/cam"].compression == "gzip" and n["data/demo_0/obs/cam"].compression is None

        def arrays(f):
            out = {}
            f.visititems(lambda k, o: out.__setitem__(k, o[()]) if isinstance(o, h5py.Dataset) else None)
            return out

        a, b = arrays(d), arrays(n)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert (tmp_path / "default.hdf5").stat().st_size < (tmp_path / "none.hdf5").stat().st_size
