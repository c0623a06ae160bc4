"""The error a user can cause in MimicGen-style generation (bad source demos, bad subtask config, no simulator)."""

from __future__ import annotations

from robodata.errors import RobodataError


class MimicGenError(RobodataError):
    """Source demos, subtask config or simulator unusable for generation; the message names what and where."""
