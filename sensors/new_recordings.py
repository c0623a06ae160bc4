"""new_recordings: watch the landing zone, register each finished recording as a partition, request its ingest."""


import json
import time

import dagster as dg

from robodata.landing import RecordingEntry, register
from robodata_dagster.assets.partitions import RECORDINGS
from robodata_dagster.resources.project import ProjectResource

SENSOR_NAME = "new_recordings"
SETTLE_SECONDS = 2.0  # a file must be untouched this long (and the same size as last tick) to be taken
STALE_SECONDS = 300.0  # an MCAP still without its footer after this long is a crashed recording: ingest it
# anyway, so that the raw_teleop run reports it as truncated instead of the sensor waiting forever


def evaluate_landing(context: dg.SensorEvaluationContext, project: ProjectResource, job_name: str) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    done: dict[str, dict] = cursor.get("done", {})  # name -> {size, mtime, key}
    waiting: dict[str, dict] = cursor.get("waiting", {})  # name -> {size}
    landing = project.landing()
    store = project.store()
    existing = set(context.instance.get_dynamic_partitions(RECORDINGS))
    new_keys: list[str] = []
    requests: list[dg.RunRequest] = []
    skipped: list[str] = []
    now = time.time()
    for f in landing.list():
        prev = done.get(f.name)
        if prev and prev["size"] == f.size and prev["mtime"] == f.mtime:
            continue
        w = waiting.get(f.name)
        settled = now - f.mtime >= SETTLE_SECONDS and (w is None or w["size"] == f.size)
        stale = now - f.mtime >= STALE_SECONDS
        if not settled or not (landing.is_complete(f) or stale):
            waiting[f.name] = {"size": f.size}
            skipped.append(f"{f.name}: still being written")
            continue
        waiting.pop(f.name, None)
        key = landing.key_for(f)
        done[f.name] = {"size": f.size, "mtime": f.mtime, "key": key}
        register(store, RecordingEntry(key, f.name, f.url, f.size, f.mtime, now, landing.url))
        digest = key.rsplit("-", 1)[-1]
        twin = next((k for k in [*existing, *new_keys] if k.rsplit("-", 1)[-1] == digest), None)
        if twin is not None:  # the same bytes landed again (under this or another name): never ingest twice
            skipped.append(f"{f.name}: same content as recording {twin}")
            continue
        new_keys.append(key)
        requests.append(dg.RunRequest(run_key=key, partition_key=key, tags={"robodata/source": f.name}))
    for name in list(waiting):
        if name not in {f.name for f in landing.list()}:
            waiting.pop(name)
    new_cursor = json.dumps({"done": done, "waiting": waiting})
    if not requests:
        return dg.SensorResult(
            skip_reason="; ".join(skipped) or "no new recordings", cursor=new_cursor,
            dynamic_partitions_requests=[],
        )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest(RECORDINGS, new_keys)],
        cursor=new_cursor,
    )


def build_new_recordings_sensor(job: "dg.JobDefinition | object") -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        job=job,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Registers each finished recording in the landing zone as a partition and ingests it once.",
    )
    def new_recordings(context: dg.SensorEvaluationContext, project: ProjectResource) -> dg.SensorResult:
        return evaluate_landing(context, project, job.name)

    return new_recordings
