"""The root of robodata's user-facing errors: one clear sentence naming the file and the problem."""

from __future__ import annotations


class RobodataError(Exception):
    """An error a user can cause (bad input, bad config); its message is shown as is, without a traceback."""
