"""The project resource resolves the config once per run, and never caches it outside one."""

from __future__ import annotations

import dagster as dg
import yaml

import robodata_dagster.resources.project as project_module
from robodata_dagster.resources.project import ProjectResource


def test_config_is_resolved_once_per_run(monkeypatch):
    calls = []
    real = project_module.load_config

    def counting(*a, **k):
        calls.append(a)
        return real(*a, **k)

    monkeypatch.setattr(project_module, "load_config", counting)

    @dg.asset
    def reads_config_often(project: ProjectResource) -> int:
        return sum(project.config.tiers.lerobot.crf + len(project.store().root) for _ in range(10))

    assert dg.materialize([reads_config_often], resources={"project": ProjectResource()}).success
    assert len(calls) == 1


def test_outside_a_run_the_environment_is_read_each_time(tmp_path, monkeypatch):
    res = ProjectResource()
    for crf in (20, 40):
        f = tmp_path / f"c{crf}.yaml"
        f.write_text(yaml.safe_dump({"tiers": {"lerobot": {"crf": crf}}}))
        monkeypatch.setenv("ROBODATA_CONFIG", str(f))
        assert res.config.tiers.lerobot.crf == crf
