"""The project config and topic maps: defaults load, errors name the key and the file, secrets are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from robodata.config import ConfigError, ProjectConfig, load_config, parse_overrides
from robodata.topicmap import TopicMapError, load_topic_map


def test_embedded_defaults_load(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROBODATA_CONFIG", raising=False)
    monkeypatch.delenv("ROBODATA_HOME", raising=False)
    cfg = load_config()
    assert cfg.tiers.lerobot.version == "v3.0"
    assert cfg.tiers.lerobot.codec == "libsvtav1" and cfg.tiers.lerobot.crf == 30 and cfg.tiers.lerobot.gop == 2
    tm = cfg.topic_map_for("session.mcap")
    assert tm is not None and tm.reference.topic == "/camera/front/image_raw"
    assert cfg.topic_map_for("demo.hdf5") is None  # HDF5 needs no topic map
    # The home folder defaults next to the config file, unless $ROBODATA_HOME says otherwise.
    monkeypatch.setenv("ROBODATA_HOME", str(tmp_path / "h"))
    assert load_config().home_dir == (tmp_path / "h").resolve()
    assert load_config().storage_url == str((tmp_path / "h" / "store").resolve())


def test_bad_key_is_named_with_the_file(tmp_path):
    f = tmp_path / "robodata.yaml"
    f.write_text(yaml.safe_dump({"tiers": {"lerobot": {"crf": "high"}}, "batch_size": 0}))
    with pytest.raises(ConfigError) as e:
        load_config(f)
    msg = str(e.value)
    assert str(f) in msg and "tiers.lerobot.crf" in msg and "batch_size" in msg


def test_unknown_key_refused(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("num_gpu: 1\n")
    with pytest.raises(ConfigError, match=r"c.yaml: num_gpu: Extra inputs are not permitted"):
        load_config(f)


def test_secrets_refused(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("tiers:\n  policy:\n    wandb_api_key: abc123\n")
    with pytest.raises(ConfigError, match="tiers.policy.wandb_api_key: secrets must come from environment"):
        load_config(f)
    f.write_text("storage_root: s3://user:pw@bucket/x\n")
    with pytest.raises(ConfigError, match=r"storage_root \(a password in a URL\)"):
        load_config(f)


@pytest.mark.parametrize("yaml_text, where", [
    ("storage_root: s3://bucket/x?token=abc\n", r"storage_root \(a secret URL parameter\)"),
    ("ray: {address: 'ray://admin:hunter2@head:10001'}\n", r"ray.address \(a password in a URL\)"),
    ("landing: {registry: 'postgresql://robodata:pw@db/robodata'}\n", r"landing.registry \(a password in a URL\)"),
    ("tiers: {policy: {tracking: {tracking_uri: 'http://u:p@mlflow:5000'}}}\n", r"tracking_uri \(a password"),
    ("tiers: {policy: {trainer_args: ['--wandb.api_key=abc']}}\n", r"trainer_args.0 \(a secret command-line"),
    ("tiers: {synthetic_demos: {isaaclab: {extra_args: ['--token', 'abc']}}}\n",
     r"extra_args.0 \(a secret command-line argument: --token followed by its value\)"),
])
def test_secrets_anywhere_in_the_file_are_refused(tmp_path, yaml_text, where):
    f = tmp_path / "c.yaml"
    f.write_text(yaml_text)
    with pytest.raises(ConfigError, match=rf"c.yaml: .*{where}.*never the config"):
        load_config(f)


def test_secrets_in_overrides_are_refused_after_merging():
    """--set values end up in run configs: a secret there is refused like one in the file, naming --set."""
    with pytest.raises(ConfigError, match=r"--set: tiers.policy.trainer_env.HF_TOKEN: secrets must come"):
        load_config(None, parse_overrides(["tiers.policy.trainer_env.HF_TOKEN=hf_abc"]))
    with pytest.raises(ConfigError, match=r"--set: storage_root \(a password in a URL\)"):
        load_config(None, parse_overrides(["storage_root=s3://k:s@bucket/x"]))
    with pytest.raises(ValueError, match="secrets must come from environment"):  # bypassing load_config
        ProjectConfig.model_validate({"landing_root": "https://u:p@host/landing"})


def test_credentials_from_the_environment(monkeypatch, tmp_path):
    from robodata.secrets import redact
    from robodata.storage import DataStore, StorageError

    monkeypatch.setenv("ROBODATA_REGISTRY_URL", "postgresql://robodata:pw@db/robodata")
    assert load_config().registry_url == "postgresql://robodata:pw@db/robodata"  # used, never in the file
    monkeypatch.setenv("ROBODATA_STORAGE_OPTIONS", '{"anon": true, "client_kwargs": {"endpoint_url": '
                                                   '"http://127.0.0.1:9"}}')
    store = DataStore("s3://some-bucket/robodata")  # no request is made here
    assert store.fs.anon is True and store.fs.client_kwargs["endpoint_url"] == "http://127.0.0.1:9"
    monkeypatch.setenv("ROBODATA_STORAGE_OPTIONS", "{not json")
    with pytest.raises(StorageError, match=r"\$ROBODATA_STORAGE_OPTIONS: not JSON"):
        DataStore("s3://some-bucket/robodata")
    assert redact("postgresql://robodata:pw@db/x?sslmode=require&access_token=abc") == (
        "postgresql://robodata:***@db/x?sslmode=require&access_token=***")


def test_overrides():
    o = parse_overrides(["tiers.lerobot.crf=28", "num_gpus=1", "tiers.lerobot.version=v2.1"])
    assert o == {"tiers": {"lerobot": {"crf": 28, "version": "v2.1"}}, "num_gpus": 1}
    cfg = load_config(None, o)
    assert cfg.tiers.lerobot.crf == 28 and cfg.num_gpus == 1 and cfg.tiers.lerobot.version == "v2.1"


@pytest.mark.parametrize("key", ["seed", "batch_size"])
def test_keys_that_would_do_nothing_are_refused(tmp_path, key):
    """The project config once had top-level seed/batch_size that nothing read: they are errors now (the
    Python API's pipeline spec has its own, honoured ones)."""
    f = tmp_path / "c.yaml"
    f.write_text(f"{key}: 3\n")
    with pytest.raises(ConfigError, match=key):
        load_config(f)


def test_image_compression_is_applied_to_camera_frames(tmp_path):
    import h5py
    import numpy as np

    from robodata.ingest import ingest_recording
    from robodata.topicmap import load_topic_map
    from tests.recordings import SMALL_TOPIC_MAP, make_mcap

    src = make_mcap(tmp_path / "r.mcap", 40)
    tm = load_topic_map(SMALL_TOPIC_MAP)
    sizes, frames = {}, {}
    for mode in ("none", "gzip"):
        out = tmp_path / f"{mode}.hdf5"
        ingest_recording(src, out, tm, image_compression=mode)
        with h5py.File(out) as f:
            ds = f["data/demo_0/obs/cam"]
            assert ds.compression == (None if mode == "none" else "gzip")
            frames[mode] = ds[()]
        sizes[mode] = out.stat().st_size
    np.testing.assert_array_equal(frames["none"], frames["gzip"])
    assert sizes["gzip"] < sizes["none"]


def test_topic_map_errors(tmp_path):
    base = yaml.safe_load(Path("robodata/sim/demo_topic_map.yaml").read_text())
    assert load_topic_map(base).features[0].name == "front"
    bad = dict(base, reference={"topic": "/a", "rate_hz": 30})
    with pytest.raises(TopicMapError, match="reference: give exactly one of"):
        load_topic_map(bad)
    bad = dict(base, datagen={"object_pose": {"cube": "no_such_feature"}})
    with pytest.raises(TopicMapError, match="datagen.object_pose.cube names unknown feature"):
        load_topic_map(bad)
    f = tmp_path / "tm.yaml"
    f.write_text(yaml.safe_dump(dict(base, features=[{"name": "x", "topic": "/x", "role": "torque"}])))
    with pytest.raises(TopicMapError) as e:
        load_topic_map(f)
    assert str(f) in str(e.value) and "features.0.role" in str(e.value)
    with pytest.raises(TopicMapError, match="not found"):
        load_topic_map(tmp_path / "missing.yaml")


def test_config_names_broken_topic_map_file(tmp_path):
    tm = tmp_path / "tm.yaml"
    tm.write_text("features: []\nreference: {rate_hz: 10}\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"sources:\n  - pattern: '*.bag'\n    topic_map: {tm.name}\n")
    with pytest.raises(TopicMapError, match=r"tm.yaml: features: List should have at least 1 item"):
        load_config(cfg)


def test_embedded_defaults_put_the_home_in_the_current_folder(tmp_path, monkeypatch):
    """Not inside the installed package (site-packages), where the defaults file lives."""
    for k in ("ROBODATA_HOME", "ROBODATA_CONFIG"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = load_config()
    assert cfg.home_dir == (tmp_path / ".robodata").resolve()
    assert cfg.topic_map_for("x.mcap") is not None  # the defaults' own topic map still resolves


def test_relative_paths_resolve_against_the_config_file_and_the_home_env_wins(tmp_path, monkeypatch):
    """With a config file, its folder; with none, the current folder; $ROBODATA_HOME over both."""
    for k in ("ROBODATA_HOME", "ROBODATA_CONFIG", "ROBODATA_REGISTRY_URL"):
        monkeypatch.delenv(k, raising=False)
    work, proj = tmp_path / "work", tmp_path / "proj"
    work.mkdir()
    proj.mkdir()
    monkeypatch.chdir(work)
    cfg = load_config()  # no robodata.yaml here: ./.robodata, and everything under it
    home = (work / ".robodata").resolve()
    assert cfg.home_dir == home and cfg.dagster_home == home / "dagster" and cfg.logs_dir == home / "logs"
    assert cfg.storage_url == str(home / "store") and cfg.landing_url == str(home / "landing")
    assert cfg.registry_url == f"sqlite:///{home / 'registry.sqlite3'}"
    monkeypatch.chdir(tmp_path)  # fixed when loaded: a later chdir moves nothing
    assert cfg.home_dir == home

    f = proj / "robodata.yaml"
    f.write_text("home: h\nlanding_root: drop\nlanding: {registry: 'sqlite:///reg.db'}\n")
    explicit = load_config(f)
    monkeypatch.setenv("ROBODATA_CONFIG", str(f))
    for cfg in (explicit, load_config()):  # --config, $ROBODATA_CONFIG
        assert cfg.home_dir == (proj / "h").resolve() and cfg.storage_url == str((proj / "h" / "store").resolve())
        assert cfg.landing_url == str((proj / "drop").resolve())
        assert cfg.registry_url == f"sqlite:///{(proj / 'reg.db').resolve()}"
    monkeypatch.delenv("ROBODATA_CONFIG")
    monkeypatch.chdir(proj)  # ./robodata.yaml is found in the current folder
    assert load_config().home_dir == (proj / "h").resolve()

    monkeypatch.chdir(work)
    monkeypatch.setenv("ROBODATA_HOME", "elsewhere")  # the env wins; relative to the current folder
    for cfg in (load_config(), load_config(f)):
        assert cfg.home_dir == (work / "elsewhere").resolve()
        assert cfg.dagster_home == (work / "elsewhere" / "dagster").resolve()
