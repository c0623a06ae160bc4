"""Schedules: a nightly LeRobot release (and, with the policy tier, a weekly fine-tune)."""

import dagster as dg

NIGHTLY_RELEASE = "nightly_release"


def build_release_schedule(job) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=NIGHTLY_RELEASE,
        job=job,
        cron_schedule="0 2 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Cut a LeRobot release of every recording at 02:00 UTC (a no-op when nothing changed).",
    )
