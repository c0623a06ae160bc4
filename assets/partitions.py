"""Partitions shared by the tiers: one dynamic partition per landed recording."""

from __future__ import annotations

import dagster as dg

RECORDINGS = "recordings"
recordings_partitions = dg.DynamicPartitionsDefinition(name=RECORDINGS)
