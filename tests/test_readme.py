"""The README's Python API examples run as written (after the command the README says to run first)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[1] / "README.md"
BIN = Path(sys.executable).parent


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


@pytest.mark.timeout(4 * 900)  # a recording and the examples, each under its own 900 s hang guard
def test_python_api_examples_run_as_written(tmp_path):
    section = _section("The Python API")
    records = re.findall(r"`(robodata record [^`]+)`", section)
    assert len(records) >= 2, "the README says which recordings (and clips) to make first"
    for record in records:
        subprocess.run([str(BIN / "robodata"), *record.split()[1:]], cwd=tmp_path, check=True, timeout=900,
                       capture_output=True)
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) >= 2
    for i, code in enumerate(blocks):
        script = tmp_path / f"example_{i}.py"
        script.write_text(code)
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, f"README example {i} failed:\n{code}\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    assert (tmp_path / "lerobot" / "meta" / "info.json").exists()
    assert (tmp_path / "curated" / "meta" / "info.json").exists()
    assert (tmp_path / "release" / "mixture.json").exists() and (tmp_path / "release" / "video" / "meta").is_dir()
