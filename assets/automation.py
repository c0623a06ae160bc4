"""Declarative automation: how the tiers follow each other, and the sensor that evaluates it (on by default).

Per-recording tiers follow their upstream partition when its **data version** changes (not on any new
materialization): a re-run that wrote the same data (a partition re-materialized after a topic map change that
did not concern it, say) starts nothing downstream, so "materialize stale" brings exactly the stale partitions
up to date. A release is cut on its own when a shard's data version changed and no shard is being written.
"""

import dagster as dg

AUTOMATION_SENSOR = "robodata_automation"

_AC = dg.AutomationCondition

# A partition that appeared (a new recording) or whose upstream partition has new data, once the upstream is
# there, nothing upstream or here is in progress, and the upstream's blocking checks passed.
FOLLOW_UPSTREAM = (
    (_AC.newly_missing() | _AC.any_deps_match(_AC.data_version_changed())).since_last_handled()
    & ~_AC.any_deps_missing()
    & ~_AC.any_deps_in_progress()
    & ~_AC.in_progress()
    & _AC.all_deps_blocking_checks_passed()
).with_label("upstream partition has new data")

# lerobot_dataset (unpartitioned, every lerobot_episodes partition through AllPartitionMapping): a new release
# when any shard's data version changed, once no shard is being written and their blocking checks passed.
# A missing shard (a recording that failed upstream) does not hold the release back; the nightly schedule
# still cuts one regardless.
NEW_SHARDS = (
    _AC.any_deps_match(_AC.data_version_changed()).since_last_handled()
    & ~_AC.any_deps_in_progress()
    & ~_AC.in_progress()
    & _AC.all_deps_blocking_checks_passed()
).with_label("a lerobot_episodes partition has new data")

# mixed_release (unpartitioned; lerobot_dataset and every video_clips partition through AllPartitionMapping): a
# new mixed release when the robot release or a video source's shot manifest has new data (a re-scan that
# accepted the same shots keeps its data version and starts nothing), once neither is being written and their
# blocking checks passed (a source that yielded no shot holds the mix back until it does).
NEW_MIX_INPUTS = (
    _AC.any_deps_match(_AC.data_version_changed()).since_last_handled()
    & ~_AC.any_deps_in_progress()
    & ~_AC.in_progress()
    & _AC.all_deps_blocking_checks_passed()
).with_label("the robot release or a video manifest has new data")


def build_automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """Evaluates every asset's automation condition; RUNNING by default (Dagster's implicit one is STOPPED)."""
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Runs each tier when its upstream has new data (per recording), cuts a release when a "
                    "shard changed, retrains the policy on a new release.",
    )
