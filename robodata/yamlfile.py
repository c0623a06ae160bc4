"""Reading a YAML file that a user wrote: one error naming the file when it is missing or not YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from robodata.errors import RobodataError


def read_yaml(path: Path, error: type[RobodataError], what: str) -> Any:
    """The parsed content of ``path``; ``error`` ("PATH: WHAT not found", "PATH: not valid YAML (...)") else."""
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise error(f"{path}: {what} not found") from err
    except yaml.YAMLError as err:
        raise error(f"{path}: not valid YAML ({err})") from err
