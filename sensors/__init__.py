"""Sensors and schedules: new recordings in the landing zone, release and policy refreshes."""
