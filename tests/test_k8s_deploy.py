"""Kubernetes, as far as a machine without a cluster, helm or docker can prove it.

- The pods of the three production launchers (Isaac Lab Mimic, Cosmos Transfer, the GR00T trainer), built by the
  library's own launch path and turned into the pod ``PipesK8sClient`` would create (dagster-k8s'
  ``build_pod_body``), deserialise into kubernetes' typed models; they mount the store's PVC, ask for GPUs, carry
  the node selector and tolerations, and no command, environment or spec file names a temp or home path.
- ``deploy/helm/values.yaml``: the run launcher and run coordinator sections, as the chart renders them, pass
  ``K8sRunLauncher`` / ``QueuedRunCoordinator``'s own config schemas; their Kubernetes objects deserialise.
- ``deploy/k8s/dagster.yaml``: Dagster's instance-config validation accepts it and refuses a typo; with a real
  throwaway PostgreSQL it loads as a ``DagsterInstance`` that stores a run.
- ``deploy/install.sh`` is what the Dockerfile and the Makefile run, and it made the venv these tests run in.
  Without docker this cannot prove the image builds: only that its install steps are the tested ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from robodata.stages.engines import LaunchResult, PipesLaunch, PodPathError, local_paths_in
from tests.pg_server import pg_fixture  # noqa: F401 - the `pg` fixture

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
MOUNT = "/data"
CLAIM = "robodata-store"
GPU_NODES = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def pod_settings(gpus: int | None = 2) -> dict[str, Any]:
    return {"volume_claim": CLAIM, "mount_path": MOUNT, "node_selector": GPU_NODES, "tolerations": [GPU_TAINT],
            **({"gpus": gpus} if gpus is not None else {})}


class PodLauncher:
    """A ``k8s`` launcher up to the cluster: each request becomes the pod ``KubernetesLauncher`` hands
    ``PipesK8sClient`` (dagster-k8s' ``build_pod_body``), deserialised into ``kubernetes.client.V1Pod``. No pod
    runs here; ``play`` runs the request's own command on this machine instead, where an engine needs an output."""

    kind = "k8s"

    def __init__(self, play: bool = False):
        self.play = play
        self.pods: list[tuple[PipesLaunch, Any, dict[str, Any]]] = []

    def __call__(self, request: PipesLaunch) -> LaunchResult:
        from dagster_k8s.models import k8s_model_from_dict
        from dagster_k8s.pipes import build_pod_body
        from kubernetes.client import ApiClient, V1PodSpec

        from robodata_dagster.resources.engines import KubernetesLauncher

        assert request.pod_spec is not None, f"{request.label}: no pod spec"
        k8s_model_from_dict(V1PodSpec, request.pod_spec)  # strict: an unknown field is an error
        args = KubernetesLauncher.pod(request)
        body = build_pod_body(pod_name="robodata-launch", image=args["image"], command=args["command"],
                              env_vars=args["env"] or {}, base_pod_meta=None, base_pod_spec=args["base_pod_spec"])
        data = ApiClient().sanitize_for_serialization(body)
        pod = ApiClient()._ApiClient__deserialize(data, "V1Pod")  # what the API server would get back
        self.pods.append((request, pod, data))
        if self.play:  # the wrapped tool's command line, as this machine runs it (the stand-in)
            cmd = request.command[request.command.index("--") + 1:]
            subprocess.run(cmd, check=True, capture_output=True, timeout=300)
        return LaunchResult()


def assert_gpu_pod(pod: Any, data: dict[str, Any], *, gpus: int, image: str) -> None:
    """The store's PVC at /data, GPUs as limits and requests, node selector and tolerations, /dev/shm, and
    no local temp or home path anywhere in the pod."""
    c = pod.spec.containers[0]
    assert c.image == image
    assert c.resources.limits["nvidia.com/gpu"] == str(gpus) == c.resources.requests["nvidia.com/gpu"]
    vols = {v.name: v for v in pod.spec.volumes}
    assert vols["store"].persistent_volume_claim.claim_name == CLAIM
    assert vols["dshm"].empty_dir.medium == "Memory"
    mounts = {m.name: m.mount_path for m in c.volume_mounts}
    assert mounts == {"store": MOUNT, "dshm": "/dev/shm"}
    assert pod.spec.node_selector == GPU_NODES
    assert [(t.key, t.operator, t.effect) for t in pod.spec.tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]
    assert pod.spec.restart_policy == "Never"
    assert not local_paths_in(data), local_paths_in(data)


def on_volume(path: str, store: Path) -> Path:
    """A path as the pod names it -> the same file as this machine sees it (the store is the PVC's root)."""
    assert path.startswith(MOUNT + "/"), f"{path} is not on the pod's mount of the store"
    return store / path[len(MOUNT) + 1:]


def pod_paths_in(value: Any) -> list[str]:
    """Every absolute path in ``value`` (nested, ``--flag=path`` too)."""
    out: list[str] = []
    if isinstance(value, dict):
        for v in value.values():
            out += pod_paths_in(v)
    elif isinstance(value, list):
        for v in value:
            out += pod_paths_in(v)
    elif isinstance(value, str):
        v = value.split("=", 1)[-1] if value.startswith("--") else value
        if v.startswith("/"):
            out.append(v)
    return out


# ---- (a) the three launchers' pods --------------------------------------------------------------------------

def test_isaaclab_mimic_pods(source_demos: Path) -> None:
    from robodata.mimicgen.config import SyntheticDemosConfig
    from robodata.mimicgen.engines import IsaacLabDemoGenerator

    store = source_demos.parents[1]
    cfg = SyntheticDemosConfig(engine="isaaclab", min_demo_frames=1, isaaclab={
        "command": [PY, "-m", "robodata.mimicgen.isaaclab_standin"], "device": "cpu", "generation_num_trials": 2,
        "launcher": "k8s", "image": "isaac-lab:3.0.0", "k8s": pod_settings(gpus=2)})
    out = store / "synthetic_demos" / ".rec.partial.hdf5"
    out.parent.mkdir()
    launcher = PodLauncher(play=True)
    summary = IsaacLabDemoGenerator(launcher).generate(source_demos, out, cfg, key="rec", source_name="rec.hdf5")
    assert summary["annotated_here"] and out.exists()
    assert [r.label.split(":")[0] for r, _, _ in launcher.pods] == ["Isaac Lab Mimic annotate",
                                                                   "Isaac Lab Mimic generate"]
    for _, pod, data in launcher.pods:
        assert_gpu_pod(pod, data, gpus=2, image="isaac-lab:3.0.0")
        cmd = pod.spec.containers[0].command
        assert cmd[0] == "python" and str(store) not in " ".join(cmd)
        step_in = cmd[cmd.index("--input_file") + 1]
        assert step_in.startswith(MOUNT + "/") and on_volume(step_in, store).name in ("rec.hdf5",
                                                                                      ".rec.partial.annotated.hdf5")
    gen = launcher.pods[1][1].spec.containers[0].command
    assert gen[gen.index("--output_file") + 1] == f"{MOUNT}/synthetic_demos/.rec.partial.hdf5"


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from robodata.sim.recorder import record_session

    d = tmp_path_factory.mktemp("rec")
    return Path(record_session(d, "rec", n_episodes=1, seed=3, image_hw=(48, 64), formats=["hdf5"])["hdf5"])


def _cosmos_config(**k8s: Any) -> Any:
    from robodata.augment.config import AugmentedVideosConfig

    return AugmentedVideosConfig(engine="cosmos", cameras=["front"], cosmos={
        "command": ["python", "examples/inference.py"], "cwd": "/workspace/cosmos-transfer2.5",
        "extra_args": ["--disable-guardrails"], "launcher": "k8s", "image": "cosmos-transfer:2.5",
        "namespace": "gpu", "env": {"HF_HOME": f"{MOUNT}/hf"}, "k8s": k8s})


def test_cosmos_transfer_pods_read_specs_on_the_volume(tmp_path: Path, recording: Path) -> None:
    import shutil

    from robodata.augment.cosmos import spec_name
    from robodata.augment.engines import CosmosClipAugmenter
    from robodata.augment.pipeline import plan

    store = tmp_path / "store"
    source = store / "raw_teleop" / "rec.hdf5"
    source.parent.mkdir(parents=True)
    shutil.copy(recording, source)
    out_dir = store / "augmented_videos" / ".rec.partial-1"
    cfg = _cosmos_config(**pod_settings(gpus=1))
    clips = plan(source, cfg)
    assert clips
    launcher = PodLauncher()
    run, _ = CosmosClipAugmenter(launcher).augment(source, out_dir, clips, cfg)
    assert len(launcher.pods) == len(clips) == len(run.failed)  # one pod per variant; no pod ran, so no output
    assert all("Cosmos Transfer wrote no" in why for why in run.failed.values())
    for request, pod, data in launcher.pods:
        assert_gpu_pod(pod, data, gpus=1, image="cosmos-transfer:2.5")
        c = pod.spec.containers[0]
        assert c.working_dir == "/workspace/cosmos-transfer2.5" and {e.name: e.value for e in c.env}["HF_HOME"] == \
            f"{MOUNT}/hf"
        assert c.command[:2] == ["python", "examples/inference.py"] and "--disable-guardrails" in c.command
        spec_file = on_volume(c.command[c.command.index("-i") + 1], store)
        assert spec_file.parent == out_dir / "cosmos" / "specs"  # in the store, beside the clips
        on_volume(c.command[c.command.index("-o") + 1], store)
        spec = json.loads(spec_file.read_text())
        assert spec["name"] == spec_name(request.extras["clip"].split("/")[0], request.extras["clip"].split("/")[1],
                                         request.extras["variant"])
        assert not local_paths_in(spec), local_paths_in(spec)
        videos = pod_paths_in(spec)
        assert spec["video_path"] in videos and len(videos) == 4  # input + depth, edge, seg controls
        for p in videos:  # every video the pod opens is the clip's file on the volume
            assert on_volume(p, store).is_file(), p


def test_cosmos_on_k8s_needs_the_volume_and_a_store_on_it(tmp_path: Path, recording: Path) -> None:
    from robodata.augment.engines import CosmosClipAugmenter
    from robodata.augment.pipeline import plan

    out_dir = tmp_path / "store" / "augmented_videos" / "rec"
    with pytest.raises(PodPathError, match="volume_claim"):
        CosmosClipAugmenter(PodLauncher()).augment(recording, out_dir, plan(recording, _cosmos_config()),
                                                   _cosmos_config())
    assert not out_dir.exists()  # refused before any clip was exported
    # a remote store's local copies: a source and a staging folder in two temp folders, no store on the volume
    cfg = _cosmos_config(**pod_settings())
    scratch = Path(tempfile.mkdtemp(prefix="robodata-"))  # where a remote store's staging folder would be
    try:
        with pytest.raises(PodPathError, match="share no folder of the project store"):
            CosmosClipAugmenter(PodLauncher()).augment(recording, scratch / "videos", plan(recording, cfg), cfg)
        assert not (scratch / "videos").exists()
    finally:
        scratch.rmdir()


@pytest.fixture()
def release(tmp_path: Path) -> Path:
    root = tmp_path / "store" / "lerobot" / "releases" / "r1"
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v2.1"}))
    (root / "meta" / "modality.json").write_text(json.dumps({
        "state": {"arm": {"start": 0, "end": 7}}, "action": {"arm": {"start": 0, "end": 7}},
        "video": {"front": {"original_key": "observation.images.front"}},
        "annotation": {"human.action.task_description": {}}}))
    return root


def test_groot_trainer_pod(release: Path) -> None:
    from robodata.train.commands import build_command
    from robodata.train.config import PolicyConfig
    from robodata.train.launchers import trainer_launch

    store = release.parents[2]
    cfg = PolicyConfig(engine="groot", launcher="k8s", num_gpus=4, groot={"version": "n1.6"},
                       trainer_env={"HF_HOME": str(store / "hf")}, k8s=pod_settings(gpus=None))
    cmd = build_command(cfg, release, store / "policy" / "runs" / "r1", repo_id="x", dataset_format="v2.1")
    launcher = PodLauncher()
    launcher(trainer_launch(cfg, cmd, store))
    request, pod, data = launcher.pods[0]
    assert_gpu_pod(pod, data, gpus=4, image="gr00t:latest")
    c = pod.spec.containers[0]
    assert c.command == ["python", "-m", "robodata.train.pipes_entry"] and request.namespace == "robodata"
    spec = json.loads({e.name: e.value for e in c.env}["ROBODATA_TRAIN_SPEC"])
    assert not local_paths_in(spec), local_paths_in(spec)
    argv = spec["command"]["argv"]
    assert argv[argv.index("--dataset-path") + 1] == f"{MOUNT}/lerobot/releases/r1"
    assert on_volume(argv[argv.index("--modality-config-path") + 1], store).is_file()
    assert spec["command"]["output_dir"] == f"{MOUNT}/policy/runs/r1"
    assert spec["command"]["env"]["HF_HOME"] == f"{MOUNT}/hf"
    # the subprocess and Ray launchers keep this machine's paths
    assert str(store) in request.env["ROBODATA_TRAIN_SPEC"]


def test_trainer_pod_needs_a_volume_claim_and_one_gpu_count(release: Path) -> None:
    from pydantic import ValidationError

    from robodata.train.commands import build_command
    from robodata.train.config import PolicyConfig
    from robodata.train.launchers import trainer_launch

    store = release.parents[2]
    cfg = PolicyConfig(engine="groot", launcher="k8s", num_gpus=1)
    cmd = build_command(cfg, release, store / "policy" / "runs" / "r1", repo_id="x", dataset_format="v2.1")
    with pytest.raises(PodPathError, match="k8s.volume_claim"):
        trainer_launch(cfg, cmd, store)
    with pytest.raises(ValidationError, match="tiers.policy.num_gpus"):
        PolicyConfig(launcher="k8s", k8s={"volume_claim": CLAIM, "gpus": 2})
    # the subprocess launcher needs no volume
    assert trainer_launch(cfg.model_copy(update={"launcher": "subprocess"}), cmd, store).pod_spec is None
    # a run folder outside the store cannot be handed to the pod
    ok = cfg.model_copy(update={"k8s": cfg.k8s.model_copy(update={"volume_claim": CLAIM})})
    outside = build_command(ok, release, store.parent / "elsewhere" / "r1", repo_id="x", dataset_format="v2.1")
    with pytest.raises(PodPathError, match="not under the project store"):
        trainer_launch(ok, outside, store)


# ---- (b) the Helm values ----------------------------------------------------------------------------------

def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def chart_run_launcher(values: dict[str, Any]) -> dict[str, Any]:
    """``runLauncher.config.k8sRunLauncher`` as the chart renders it into the instance's ``run_launcher.config``
    (templates/helpers/instance/_run-launcher.tpl): camelCase keys to snake_case, ``envSecrets`` /
    ``envConfigMaps`` entries to their names, ``runK8sConfig``'s sections to snake_case; what the chart sets
    itself (service account, instance ConfigMap, the Postgres secret, DAGSTER_HOME) from the environment, as it
    does."""
    src = values["runLauncher"]["config"]["k8sRunLauncher"]
    out: dict[str, Any] = {
        "service_account_name": values["global"]["serviceAccountName"],
        "dagster_home": {"env": "DAGSTER_HOME"},
        "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
        "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
        "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}],
    }
    for key, value in src.items():
        if key in ("envSecrets", "envConfigMaps"):
            out.setdefault(_snake(key), []).extend(v["name"] for v in value)
        elif key == "runK8sConfig":
            out["run_k8s_config"] = {_snake(k): v for k, v in value.items()}
        else:
            out[_snake(key)] = value
    return out


def _values() -> dict[str, Any]:
    return yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())


def _k8s_objects(launcher_config: dict[str, Any]) -> None:
    """The Kubernetes objects in a run launcher config, as dagster-k8s reads them (camel or snake case; strict)."""
    from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict
    from kubernetes.client import V1Container, V1PodSpec, V1Volume, V1VolumeMount

    for v in launcher_config.get("volumes", []):
        k8s_model_from_dict(V1Volume, k8s_snake_case_dict(V1Volume, v))
    for m in launcher_config.get("volume_mounts", []):
        k8s_model_from_dict(V1VolumeMount, k8s_snake_case_dict(V1VolumeMount, m))
    rk = launcher_config.get("run_k8s_config", {})
    if "container_config" in rk:
        k8s_model_from_dict(V1Container, k8s_snake_case_dict(V1Container, {"name": "x", **rk["container_config"]}))
    if "pod_spec_config" in rk:
        k8s_model_from_dict(V1PodSpec, k8s_snake_case_dict(V1PodSpec, {"containers": [], **rk["pod_spec_config"]}))


def _process(config_type: Any, config: dict[str, Any]) -> Any:
    from dagster._config import process_config

    return process_config(config_type, config)


def chart_storage(values: dict[str, Any]) -> dict[str, Any]:
    """The instance's ``storage`` as the chart renders it from ``postgresql`` (_postgresql.tpl; the chart's
    defaults for what the values leave out: port 5432, no params, the bundled server's service name)."""
    pg = values["postgresql"]
    host = "dagster-postgresql" if pg.get("enabled") else pg["postgresqlHost"]
    db = {"username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"}, "hostname": host,
          "db_name": pg["postgresqlDatabase"], "port": pg.get("service", {}).get("port", 5432),
          "params": pg.get("postgresqlParams", {})}
    if pg.get("postgresqlScheme"):
        db["scheme"] = pg["postgresqlScheme"]
    return {"postgres": {"postgres_db": db}}


def assert_driver_installed(scheme: str) -> None:
    """The SQLAlchemy driver ``scheme`` names imports here (and so in the image, which installs the same)."""
    from sqlalchemy.engine import make_url

    make_url(f"{scheme}://u@h/db").get_dialect().import_dbapi()


def test_helm_values_pass_the_run_launchers_own_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster._core.instance.config import dagster_instance_config_schema
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_k8s import K8sRunLauncher

    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "from-a-secret")
    for var, value in {"DAGSTER_HOME": "/opt/dagster/dagster_home", "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "i",
                       "DAGSTER_K8S_PG_PASSWORD_SECRET": "p", "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP": "e"}.items():
        monkeypatch.setenv(var, value)
    values = _values()
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = chart_run_launcher(values)
    res = _process(K8sRunLauncher.config_type(), launcher)
    assert res.success, res.errors
    assert res.value["env_secrets"] == ["robodata-storage"] and res.value["dagster_home"] == "/opt/dagster/dagster_home"
    _k8s_objects(launcher)
    store = next(v for v in launcher["volumes"] if v["name"] == "robodata-store")
    assert store["persistentVolumeClaim"]["claimName"] == CLAIM  # the claim the engines' pods mount
    assert {"name": "robodata-store", "mountPath": MOUNT} in launcher["volume_mounts"]
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    qrc = {_snake(k): v for k, v in coordinator["config"]["queuedRunCoordinator"].items()}
    res = _process(QueuedRunCoordinator.config_type(), qrc)
    assert res.success and res.value["max_concurrent_runs"] == 8, res.errors
    storage = chart_storage(values)
    res = _process(dagster_instance_config_schema()["storage"].config_type, storage)
    assert res.success, res.errors
    assert_driver_installed(storage["postgres"]["postgres_db"]["scheme"])
    # the negative cases: a typo'd launcher key, a typo inside a Kubernetes object
    typo = _values()
    typo["runLauncher"]["config"]["k8sRunLauncher"]["jobNamspace"] = "robodata"
    res = _process(K8sRunLauncher.config_type(), chart_run_launcher(typo))
    assert not res.success and "job_namspace" in str(res.errors)
    bad = chart_run_launcher(_values())
    bad["run_k8s_config"]["container_config"]["resource"] = {"limits": {"memory": "1Gi"}}
    with pytest.raises(Exception, match="resource"):
        _k8s_objects(bad)


# ---- (c) the instance YAML for Kubernetes ------------------------------------------------------------------

INSTANCE = REPO / "deploy" / "k8s" / "dagster.yaml"


def _instance_dir(tmp_path: Path, text: str) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(text)
    return home


def test_instance_yaml_passes_dagsters_instance_validation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster._core.errors import DagsterInvalidConfigError
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_k8s import K8sRunLauncher

    monkeypatch.setenv("DAGSTER_K8S_JOB_NAMESPACE", "robodata")
    text = INSTANCE.read_text()
    cfg, custom = dagster_instance_config(str(_instance_dir(tmp_path, text)))
    assert custom is None
    assert set(cfg["storage"]) == {"postgres"} and cfg["run_monitoring"]["enabled"] is True
    assert_driver_installed(cfg["storage"]["postgres"]["postgres_db"]["scheme"])
    assert (cfg["run_launcher"]["module"], cfg["run_launcher"]["class"]) == ("dagster_k8s", "K8sRunLauncher")
    assert cfg["run_coordinator"]["class"] == "QueuedRunCoordinator"
    # the instance schema leaves each class's config open: check it with the class's own schema, as rehydrating does
    res = _process(K8sRunLauncher.config_type(), cfg["run_launcher"]["config"])
    assert res.success, res.errors
    assert res.value["job_namespace"] == "robodata" and res.value["postgres_password_secret"] == "dagster-postgresql"
    _k8s_objects(cfg["run_launcher"]["config"])
    assert _process(QueuedRunCoordinator.config_type(), cfg["run_coordinator"]["config"]).success
    # a typo at the top, in the Postgres block, in the launcher's config: each one refused
    for good, typo in (("run_monitoring:", "run_monitorng:"), ("db_name:", "dbname:")):
        assert good in text
        with pytest.raises(DagsterInvalidConfigError):
            dagster_instance_config(str(_instance_dir(tmp_path, text.replace(good, typo))))
    cfg, _ = dagster_instance_config(str(_instance_dir(tmp_path, text.replace("job_namespace:", "job_namespce:"))))
    assert not _process(K8sRunLauncher.config_type(), cfg["run_launcher"]["config"]).success


def test_instance_yaml_loads_on_a_real_postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg: Any) -> None:
    """The whole instance, built by Dagster from the file, on a throwaway PostgreSQL (credentials from env vars).

    The run launcher is built from the file's config with one change: a kubeconfig instead of the in-cluster
    service account, which exists only in a pod (it is not contacted)."""
    import dagster as dg
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_k8s import K8sRunLauncher
    from dagster_postgres import PostgresRunStorage

    port_line = "      port: 5432"
    text = INSTANCE.read_text()
    assert port_line in text
    home = _instance_dir(tmp_path, text.replace(port_line, f"      port: {pg.port}"))
    for var, value in {"DAGSTER_PG_HOST": pg.host, "DAGSTER_PG_USERNAME": pg.user, "DAGSTER_PG_PASSWORD": pg.password,
                       "DAGSTER_PG_DB": pg.db, "DAGSTER_K8S_JOB_NAMESPACE": "robodata"}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 8

        @dg.op
        def noop() -> None:
            pass

        @dg.job
        def probe() -> None:
            noop()

        run = instance.create_run_for_job(probe)
        stored = instance.get_run_by_id(run.run_id)
        assert stored is not None and stored.job_name == "probe"
        assert pg.query(f"SELECT count(*) FROM runs WHERE run_id = '{run.run_id}'") == [(1,)]
        data = instance.get_ref().run_launcher_data
        assert data is not None and data.class_name == "K8sRunLauncher"
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}], "users": [{"name": "u", "user": {}}]}))
        res = _process(K8sRunLauncher.config_type(), {**yaml.safe_load(data.config_yaml),
                                                      "load_incluster_config": False,
                                                      "kubeconfig_file": str(kubeconfig)})
        assert res.success, res.errors
        launcher = K8sRunLauncher.from_config_value(data, res.value)
        assert launcher.job_namespace == "robodata" and launcher.instance_config_map == "dagster-instance"
    finally:
        instance.dispose()


# ---- (d) one install for the image and for make -------------------------------------------------------------

INSTALL = "deploy/install.sh"


def _install_runs(lines: list[str]) -> list[list[str]]:
    """The ``deploy/install.sh`` invocations in ``lines``, as argv after the script."""
    runs = []
    for line in lines:
        words = line.replace("&&", " && ").split()
        for i, w in enumerate(words):
            if w == INSTALL:
                rest = words[i + 1:]
                runs.append(rest[:rest.index("&&")] if "&&" in rest else rest)
    return runs


def test_the_image_and_make_run_the_same_install() -> None:
    docker = (REPO / "deploy" / "docker" / "Dockerfile").read_text().splitlines()
    run_lines = [ln for ln in docker if ln.startswith("RUN ")]
    assert run_lines and all(INSTALL in ln for ln in run_lines), "every RUN step of the image is deploy/install.sh"
    in_image = _install_runs(run_lines)
    assert ["apt", "runtime", "--no-recommends"] in in_image and ["venv", "--extras", "all"] in in_image
    assert any(ln.startswith(f"COPY {INSTALL} ") for ln in docker)
    make = (REPO / "Makefile").read_text()
    assert re.search(r"^INSTALL := deploy/install.sh$", make, re.M)
    recipes = [ln.strip().lstrip("@").replace("$(INSTALL)", INSTALL).replace("$(VENV)", ".venv")
               for ln in make.splitlines() if ln.startswith("\t")]
    by_make = _install_runs(recipes)
    assert ["apt", "runtime"] in by_make and ["apt", "test"] in by_make
    assert ["venv", "--extras", "all,dev", "--venv", ".venv"] in by_make
    assert not re.search(r"pip install|apt-get|-m venv", make), "the Makefile installs only through the script"
    assert re.search(r"^\$\(STAMP\): .*\$\(INSTALL\)", make, re.M), "a changed script re-runs the install"


def test_this_venv_was_made_by_the_install_script() -> None:
    """The stamp deploy/install.sh writes last: its own hash, the extras, the interpreter. Run `make setup` when
    this fails after a change to the script (the Makefile's stamp depends on it)."""
    script = REPO / INSTALL
    stamp = Path(sys.prefix) / ".installed"
    assert stamp.exists(), f"{stamp}: this venv was not made by {INSTALL} (run make setup)"
    fields = dict(line.split("=", 1) for line in stamp.read_text().splitlines() if "=" in line)
    assert fields.get("script") == INSTALL, f"{stamp} was not written by {INSTALL} (run make setup)"
    assert fields["script_sha256"] == hashlib.sha256(script.read_bytes()).hexdigest(), \
        f"{stamp}: the venv was made by an older {INSTALL} (run make setup)"
    assert {"all", "dev"} <= set(fields["extras"].split(","))
    assert fields["python"] == ".".join(map(str, sys.version_info[:3]))
    # the script's Debian runtime packages are what this machine renders with
    r = subprocess.run(["bash", str(script), "apt", "runtime", "--check"], capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["bash", str(script), "venv"], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2 and "--extras is required" in r.stderr
    assert os.access(script, os.X_OK)
