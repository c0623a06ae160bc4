"""Retries and graceful degradation, with real Dagster runs and real faults.

A transient fault (a storage read that times out, a publish cut off mid-write, a launcher pod killed, a Ray
worker process killed) retries the step under the tier's ``RetryPolicy`` (``retries:`` in the config, here a
0.1 s delay) and the run succeeds with one complete output; an error of the data (a corrupt recording) runs
once and fails the run with one message naming the file. The faults are real: a data store on an fsspec
filesystem whose calls raise ``TimeoutError`` for a while, a Pipes launcher that fails once with dagster-k8s's
own error for a pod deleted under the run, a Ray task that SIGKILLs its worker process.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import sys
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import pytest
import yaml
from fsspec.implementations.local import LocalFileSystem

from robodata import storage
from robodata.atomic import find_debris
from robodata.config import load_config
from robodata.errors import RobodataError, TransientError, is_transient
from robodata.formats.isaaclab import EpisodeStore
from robodata_dagster.assets.partitions import failures_classified, retry_policy
from robodata_dagster.resources.engines import IsaacLabMimic, SubprocessLauncher
from robodata_dagster.resources.project import ProjectResource
from tests.conftest import registered_partition

KEY = "rec-flaky"
FAST = {"max_retries": 3, "delay_s": 0.1, "backoff": "exponential", "jitter": "plus_minus"}


# ---- a data store whose calls fail for a while ----------------------------------------------------------------


class FlakyFileSystem(LocalFileSystem):
    """A local folder under ``flaky://``, a remote store to robodata (uploads, moves, downloads), whose next
    ``fail[op]`` calls of ``op`` (``get_file``, ``mv``) raise a real ``TimeoutError``, as s3fs/gcsfs do when
    the network stalls."""

    protocol = ("flaky",)
    fail: ClassVar[dict[str, int]] = {}
    raised: ClassVar[dict[str, int]] = {}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **{"auto_mkdir": True, **kwargs})  # an object store has no folders to make

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, str) and path.startswith("flaky://"):
            path = path[len("flaky://"):]
        return super()._strip_protocol(path)

    def _fault(self, op: str, path: str) -> None:
        if self.fail.get(op, 0) > 0:
            self.fail[op] -= 1
            self.raised[op] = self.raised.get(op, 0) + 1
            raise TimeoutError(f"{op} {path}: read timed out")

    def get_file(self, rpath: Any, lpath: Any, **kwargs: Any) -> Any:
        self._fault("get_file", rpath)
        return super().get_file(rpath, lpath, **kwargs)

    def mv(self, path1: Any, path2: Any, **kwargs: Any) -> Any:
        self._fault("mv", path1)
        return super().mv(path1, path2, **kwargs)


@pytest.fixture
def flaky():
    import fsspec

    fsspec.register_implementation("flaky", FlakyFileSystem, clobber=True)
    FlakyFileSystem.fail.clear()
    FlakyFileSystem.raised.clear()
    yield FlakyFileSystem
    FlakyFileSystem.fail.clear()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    from robodata.sim.recorder import record_session

    d = tmp_path_factory.mktemp("rec")
    return Path(record_session(d, "sess", n_episodes=2, seed=5, image_hw=(48, 64), formats=["hdf5"])["hdf5"])


def _events(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [r.event_log_entry.dagster_event.event_type_value for r in instance.get_records_for_run(run_id).records
            if r.event_log_entry.dagster_event is not None]


def _set_task_run(tmp_path: Path, source: Path | bytes, retries: dict[str, Any] = FAST):
    """Materialize a pipeline stage (``set_task``) over one recording's raw_teleop episodes in a ``flaky://``
    store: (the result, the instance, the store folder)."""
    from robodata_dagster.assets.custom_stages import build_custom_stage_assets

    store = tmp_path / "store"
    (store / "raw_teleop").mkdir(parents=True)
    if isinstance(source, bytes):
        (store / "raw_teleop" / f"{KEY}.hdf5").write_bytes(source)
    else:
        shutil.copy(source, store / "raw_teleop" / f"{KEY}.hdf5")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"stages": [{"type": "set_task", "task": "pour"}]}))
    cfg_file = tmp_path / "robodata.yaml"
    cfg_file.write_text(yaml.safe_dump({"home": str(tmp_path / "proj"), "storage_root": f"flaky://{store}",
                                        "pipeline": "p.yaml", "retries": retries}))
    cfg = load_config(str(cfg_file))
    (asset,) = build_custom_stage_assets(cfg.pipeline_spec(), upstream="raw_teleop", cfg=cfg)
    instance = dg.DagsterInstance.ephemeral()
    part = registered_partition(instance, cfg.registry_url, KEY)
    res = dg.materialize([asset], partition_key=part, instance=instance, raise_on_error=False,
                         resources={"project": ProjectResource(config_path=str(cfg_file))})
    return res, instance, store


def _published(store: Path) -> Path:
    return store / "stages" / "set_task" / f"{KEY}.hdf5"


def test_a_storage_read_that_times_out_retries_the_step_and_the_run_succeeds(tmp_path, flaky, recorded):
    # more timeouts than the store's in-process tries: the first attempt gives up, the step's retry reads it
    flaky.fail["get_file"] = storage.STORAGE_ATTEMPTS
    res, instance, store = _set_task_run(tmp_path, recorded)
    assert res.success, res.get_step_failure_events()
    assert flaky.raised["get_file"] == storage.STORAGE_ATTEMPTS
    events = _events(instance, res.run_id)
    assert events.count("STEP_UP_FOR_RETRY") == 1 and events.count("STEP_RESTARTED") == 1
    with EpisodeStore(_published(store)) as es, EpisodeStore(recorded) as src:
        assert len(es) == len(src) == 2
    assert find_debris(store) == []
    md = res.asset_materializations_for_node("set_task")[0].metadata
    assert md["recordings_published"].value == 1


def test_a_short_blip_is_absorbed_in_process_without_a_step_retry(tmp_path, flaky, recorded):
    flaky.fail["get_file"] = 1
    res, instance, store = _set_task_run(tmp_path, recorded)
    assert res.success and flaky.raised["get_file"] == 1
    events = _events(instance, res.run_id)
    assert "STEP_RESTARTED" not in events and events.count("STEP_START") == 1
    assert _published(store).exists()


def test_a_publish_cut_off_mid_write_leaves_one_complete_output_and_no_temporaries(tmp_path, flaky, recorded):
    # the upload to the hidden temporary key succeeds, the move into place keeps timing out
    flaky.fail["mv"] = storage.STORAGE_ATTEMPTS
    res, instance, store = _set_task_run(tmp_path, recorded)
    assert res.success, res.get_step_failure_events()
    assert flaky.raised["mv"] == storage.STORAGE_ATTEMPTS
    assert _events(instance, res.run_id).count("STEP_RESTARTED") == 1
    assert find_debris(store) == [] and not [p for p in store.rglob("*") if ".partial-" in p.name]
    outputs = sorted(p.name for p in (store / "stages" / "set_task").iterdir())
    assert outputs == [f"{KEY}.hdf5"]
    with EpisodeStore(_published(store)) as es:
        assert len(es) == 2 and es.read("demo_0").actions.shape[0] > 0


def test_a_store_that_stays_down_fails_after_the_retries_naming_it(tmp_path, flaky, recorded):
    flaky.fail["get_file"] = 10_000
    res, instance, store = _set_task_run(tmp_path, recorded, {**FAST, "max_retries": 1})
    assert not res.success
    events = _events(instance, res.run_id)
    assert events.count("STEP_RESTARTED") == 1 and events.count("STEP_FAILURE") == 1
    (failure,) = res.get_step_failure_events()
    desc = failure.step_failure_data.user_failure_data.description
    assert "still failing after 2 attempt(s) on a transient fault" in desc
    assert f"the data store at flaky://{store}/raw_teleop/{KEY}.hdf5: reading failed" in desc, desc
    assert not _published(store).exists()
    run = instance.get_run_by_id(res.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE  # nothing left STARTED


def test_a_corrupt_recording_runs_once_and_fails_naming_the_file(tmp_path, flaky):
    res, instance, store = _set_task_run(tmp_path, b"\x89HDF\r\n\x1a\n" + b"\0" * 64)  # a signature, no file
    assert not res.success
    events = _events(instance, res.run_id)
    assert events.count("STEP_START") == 1
    assert "STEP_UP_FOR_RETRY" not in events and "STEP_RESTARTED" not in events
    (failure,) = res.get_step_failure_events()
    desc = failure.step_failure_data.user_failure_data.description
    assert f"recording {KEY} (test-zone/{KEY}/{KEY}.hdf5)" in desc and "not a readable HDF5 file" in desc
    assert "\n" not in desc
    assert not _published(store).exists() and find_debris(store) == []


# ---- a launcher pod lost under the run -------------------------------------------------------------------------


class PodKilledOnce(SubprocessLauncher):
    """Runs the launch as a subprocess, except the first time: then it fails as dagster-k8s's
    ``PipesK8sClient`` does when the pod is deleted under it (evicted, preempted, its node drained)."""

    marker: str

    def invoke(self, context: dg.AssetExecutionContext, request: Any) -> dg.PipesClientCompletedInvocation:
        from dagster_k8s.client import DagsterK8sError

        mark = Path(self.marker)
        if not mark.exists():
            mark.write_text("evicted")
            raise DagsterK8sError('Pod "isaaclab-mimic-1a2b3c" was unexpectedly killed')
        return super().invoke(context, request)


def test_a_launcher_pod_killed_once_is_retried(tmp_path, recorded):
    from robodata_dagster.assets.synthetic_demos import STANDIN_COMMAND, build_synthetic_demos

    store = tmp_path / "proj" / "store"
    (store / "raw_teleop").mkdir(parents=True)
    shutil.copy(recorded, store / "raw_teleop" / f"{KEY}.hdf5")
    cfg_file = tmp_path / "robodata.yaml"
    cfg_file.write_text(yaml.safe_dump({"home": str(tmp_path / "proj"), "retries": FAST, "tiers": {"synthetic_demos": {
        "engine": "isaaclab", "isaaclab": {"command": STANDIN_COMMAND, "generation_num_trials": 2, "num_envs": 1,
                                           "device": "cpu"}}}}))
    cfg = load_config(str(cfg_file))
    asset = build_synthetic_demos(cfg)
    instance = dg.DagsterInstance.ephemeral()
    part = registered_partition(instance, cfg.registry_url, KEY)

    class NoRay(dg.ConfigurableResource):
        pass

    engine = IsaacLabMimic(launcher=PodKilledOnce(marker=str(tmp_path / "evicted")))
    res = dg.materialize([asset], partition_key=part, instance=instance, raise_on_error=False,
                         resources={"project": ProjectResource(config_path=str(cfg_file)), "ray_cluster": NoRay(),
                                    "synthetic_demos_engine": engine})
    assert res.success, res.get_step_failure_events()
    assert (tmp_path / "evicted").exists()
    events = _events(instance, res.run_id)
    assert events.count("STEP_RESTARTED") == 1 and events.count("STEP_SUCCESS") == 1
    with EpisodeStore(store / "synthetic_demos" / f"{KEY}.hdf5") as es:
        assert len(es) == 2
    assert find_debris(store) == []


# ---- a Ray worker process killed -------------------------------------------------------------------------------


def crash_until(folder: str, crashes: int) -> str:
    """A Ray task: SIGKILLs its own worker process on its first ``crashes`` attempts (counted in ``folder``)."""
    log = Path(folder) / "attempts"
    with log.open("a") as fh:
        fh.write("x")
    if len(log.read_text()) <= crashes:
        os.kill(os.getpid(), signal.SIGKILL)
    return "done"


@pytest.fixture
def local_ray():
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, namespace="robodata-retries",
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}})
    yield
    ray.shutdown()


def test_a_ray_worker_killed_beyond_rays_retries_retries_the_step(tmp_path, local_ray):
    from robodata.parallel import SYSTEM_FAILURE_RETRIES, run_tasks

    crashes = SYSTEM_FAILURE_RETRIES + 1  # every try Ray makes of the first attempt dies: WorkerCrashedError

    @dg.asset(retry_policy=retry_policy(load_config(None, {"retries": FAST})))
    def fanned_out(context):  # unannotated: this module postpones annotations, which Dagster reads
        with failures_classified(context, "fanned_out"):
            (r,) = run_tasks(crash_until, [(str(tmp_path), crashes)])
            if not r.ok:
                assert r.error is not None and r.transient, r.error
                raise r.error
            return dg.MaterializeResult(metadata={"value": r.value})

    with dg.DagsterInstance.ephemeral() as instance:
        res = dg.materialize([fanned_out], instance=instance, raise_on_error=False)
        assert res.success, res.get_step_failure_events()
        events = _events(instance, res.run_id)
        assert events.count("STEP_RESTARTED") == 1
        retry = next(r.event_log_entry for r in instance.get_records_for_run(res.run_id).records
                     if r.event_log_entry.dagster_event and r.event_log_entry.dagster_event.event_type_value
                     == "STEP_UP_FOR_RETRY")
        assert retry.dagster_event is not None
        assert "WorkerCrashedError" in str(retry.dagster_event.event_specific_data)
    assert len((tmp_path / "attempts").read_text()) == crashes + 1
    assert res.asset_materializations_for_node("fanned_out")[0].metadata["value"].value == "done"


def test_a_bad_item_in_a_ray_task_is_not_transient(tmp_path, local_ray):
    from robodata.ingest import IngestError
    from robodata.parallel import run_tasks

    (r,) = run_tasks(_bad_recording, [("broken.mcap",)])
    assert not r.ok and isinstance(r.error, IngestError) and not r.transient


def _bad_recording(name: str) -> None:
    from robodata.ingest import IngestError

    raise IngestError(f"{name}: timestamps go backwards at frame 3")


# ---- which exceptions are transient: the real types the libraries raise ----------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_s3_endpoint_that_is_down_is_transient_and_named(monkeypatch, tmp_path):
    import s3fs

    endpoint = f"http://127.0.0.1:{_free_port()}"  # nothing listens: connection refused
    opts = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint},
            "config_kwargs": {"connect_timeout": 2, "retries": {"max_attempts": 1}}}
    fs = s3fs.S3FileSystem(**opts, skip_instance_cache=True)
    with pytest.raises(Exception, match="Could not connect to the endpoint URL") as raw:
        fs.ls("bucket/store")
    assert is_transient(raw.value), repr(raw.value)  # botocore's EndpointConnectionError, as s3fs raises it
    monkeypatch.setattr(storage, "STORAGE_RETRY_WAIT_S", 0.01)
    monkeypatch.setenv(storage.STORAGE_OPTIONS_ENV, json.dumps(opts))
    s3fs.S3FileSystem.clear_instance_cache()
    with pytest.raises(storage.StorageUnavailable) as err:
        storage.DataStore("s3://bucket/store").exists("raw_teleop/a.hdf5")
    msg = str(err.value)
    assert msg.startswith(f"the data store at s3://bucket/store/raw_teleop/a.hdf5: checking failed "
                          f"{storage.STORAGE_ATTEMPTS} times") and endpoint in msg and "\n" not in msg
    assert is_transient(err.value)
    s3fs.S3FileSystem.clear_instance_cache()


def _client_error(code: str, status: int):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "GetObject")


def test_s3_throttling_and_5xx_are_transient_and_a_missing_key_is_not():
    from s3fs.errors import translate_boto_error

    for code, status in (("SlowDown", 503), ("InternalError", 500), ("ThrottlingException", 400),
                         ("RequestTimeout", 400)):
        assert is_transient(_client_error(code, status)), code
        assert is_transient(translate_boto_error(_client_error(code, status))), code  # what s3fs raises
    for code, status in (("NoSuchKey", 404), ("AccessDenied", 403), ("InvalidRange", 416)):
        assert not is_transient(_client_error(code, status)), code
        assert not is_transient(translate_boto_error(_client_error(code, status))), code


def test_network_errors_timeouts_and_lost_workers_are_transient():
    import ray.exceptions as rex
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import NewConnectionError

    transient = [TimeoutError("timed out"), ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
                 ConnectionResetError(errno.ECONNRESET, "reset"),
                 OSError(errno.ETIMEDOUT, "Connection timed out"), OSError(errno.EHOSTUNREACH, "No route to host"),
                 ConnectTimeoutError(endpoint_url="http://s3:9000"), ReadTimeoutError(endpoint_url="http://s3:9000"),
                 EndpointConnectionError(endpoint_url="http://s3:9000"),
                 NewConnectionError(None, "Failed to establish a new connection"),  # type: ignore[arg-type]
                 rex.WorkerCrashedError(), rex.NodeDiedError("node 1a2b died"), rex.ActorDiedError(),
                 rex.RaySystemError("raylet lost"), rex.GetTimeoutError("get timed out"),
                 ApiException(status=503, reason="Service Unavailable")]
    for exc in transient:
        assert is_transient(exc), repr(exc)
    assert not is_transient(ApiException(status=404, reason="Not Found"))
    assert not is_transient(OSError(errno.ENOENT, "No such file"))
    assert not is_transient(OSError("Unable to synchronously open file (file signature not found)"))
    assert not is_transient(ValueError("bad value")) and not is_transient(KeyError("obs/wrist"))


def test_a_pod_lost_is_transient_and_a_failed_program_is_not():
    from dagster_k8s.client import DagsterK8sError, DagsterK8sTimeoutError

    assert is_transient(DagsterK8sError('Pod "trainer-1" was unexpectedly killed'))
    assert is_transient(DagsterK8sError("Timed out while waiting for pod to become ready with pod info: ..."))
    assert is_transient(DagsterK8sError('Pod trainer-1 failed: Reason="Evicted" Message="The node was low on '
                                        'resource: memory."'))
    assert is_transient(DagsterK8sTimeoutError("Timed out while waiting for job trainer-1 to complete"))
    assert not is_transient(DagsterK8sError('Pod trainer-1 terminated but some containers exited with errors:\n'
                                            'Container "trainer" failed with message: "exit code 1"'))
    assert not is_transient(DagsterK8sError('Failed: Reason="ErrImagePull" Message="manifest unknown"'))


def test_robodata_errors_are_transient_only_as_such_or_raised_from_a_fault():
    from robodata.ingest import IngestError
    from robodata.landing import LandingError

    assert not is_transient(IngestError("a.mcap: timestamps go backwards at frame 3"))
    assert not is_transient(RobodataError("bad config"))
    assert is_transient(TransientError("the data store at s3://b: reading failed"))
    try:
        try:
            raise TimeoutError("read timed out")
        except TimeoutError as err:
            raise LandingError("s3://zone/a.mcap: cannot read the landed recording: read timed out") from err
    except LandingError as wrapped:
        assert is_transient(wrapped)
    try:
        try:
            raise TimeoutError("read timed out")
        except TimeoutError:
            raise IngestError("a.mcap: truncated at byte 812") from None
    except IngestError as unrelated:
        assert not is_transient(unrelated)  # a fault only in its context, not its cause: the data's error


def test_retry_policy_comes_from_the_config():
    policy = retry_policy(load_config(None, {"retries": {"max_retries": 5, "delay_s": 2, "backoff": "linear",
                                                          "jitter": "none"}}))
    assert policy == dg.RetryPolicy(max_retries=5, delay=2, backoff=dg.Backoff.LINEAR, jitter=None)
    default = retry_policy()
    assert default.max_retries == 3 and default.delay == 10 and default.backoff == dg.Backoff.EXPONENTIAL
    from robodata_dagster.definitions import build_definitions

    defs = build_definitions(load_config(None, {"retries": FAST}))
    for name in ("raw_teleop", "synthetic_demos", "augmented_videos", "lerobot_episodes", "lerobot_dataset",
                 "policy_checkpoint"):
        node = defs.resolve_assets_def(name).op
        assert node.retry_policy is not None and node.retry_policy.delay == 0.1, name


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
