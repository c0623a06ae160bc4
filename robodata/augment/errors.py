"""The augmentation tier's error: one clear sentence naming the clip or file and what is wrong."""

from __future__ import annotations

from robodata.errors import RobodataError


class AugmentError(RobodataError):
    """A clip cannot be exported, augmented or merged back (missing camera, corrupt MP4, frame-count mismatch...)."""
