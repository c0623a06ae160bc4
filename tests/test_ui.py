"""End to end through the real Dagster UI: one simulated recording is landed, picked up by the sensor and
ingested; then ``dagster-webserver`` serves the project and headless Chromium checks that the asset graph,
the partition's materialization metadata and the asset checks are rendered.

Screenshots (1400x900) go to the test's tmp_path and, when ``$ROBODATA_SCREENSHOTS`` names a folder, there
too (``ROBODATA_SCREENSHOTS=docs/screenshots pytest -m slow tests/test_ui.py`` refreshes the README's).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.ui_harness import browser_page, build_home_subprocess, screenshot, warning_lines, webserver

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

CHECKS = ("frames_in_sync_and_finite", "episode_rates_and_lengths", "few_frames_out_of_sync")
METADATA_KEYS = ("episodes", "frames", "dropped_frames", "duration_s", "reference_rate_hz", "path")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    """A project home with one recording (MCAP, 2 episodes) registered by the sensor and ingested."""
    home = tmp_path_factory.mktemp("ui_home")
    built = build_home_subprocess(home, n_episodes=2, fmt="mcap")
    assert len(built["keys"]) == 1, built
    return built


@pytest.fixture(scope="module")
def server(project, tmp_path_factory):
    with webserver(Path(project["home"]), tmp_path_factory.mktemp("webserver")) as srv:
        srv.wait_location_loaded()
        srv.graphql("mutation { setNuxSeen }")  # no "Join the Dagster community" dialog over the screenshots
        yield srv
        srv.check_alive()
    # after it stopped: nothing it logged while serving the pages may be a Python warning either
    assert warning_lines(srv.log()) == []


@pytest.fixture(scope="module")
def page(server):
    with browser_page() as p:
        yield p


def test_code_location_loads_without_warnings(server):
    assert "Started Dagster code server for module definitions" in server.load_log, server.load_log[-3000:]
    assert warning_lines(server.load_log) == [], "the code location warns at load:\n" + server.load_log[-6000:]


def test_asset_graph_shows_raw_teleop(server, page, tmp_path):
    page.goto(f"{server.url}/asset-groups/recording_tiers")
    node = page.locator("foreignObject").filter(has=page.get_by_text("raw_teleop", exact=True))
    # the node fills in row by row (latest event, checks, partitions); wait until none is loading any more
    expect(node).to_contain_text(re.compile(r"Asset checks\s*\d+\s*/\s*3"), timeout=60_000)
    expect(node).to_contain_text("1 partition")
    expect(node).to_contain_text("100% filled")
    expect(node).not_to_contain_text("Loading")
    expect(node.get_by_text("raw_teleop", exact=True)).to_be_visible()
    expect(page.get_by_text("Join the Dagster community")).to_have_count(0)
    page.wait_for_load_state("networkidle")
    screenshot(page, "asset_graph.png", tmp_path)


def test_partition_metadata_is_rendered(server, project, page, tmp_path):
    key = project["keys"][0]
    meta = project["metadata"][key]
    page.goto(f"{server.url}/assets/raw_teleop?view=partitions&partition={key}")
    # the detail panel first renders with "No metadata entries" and a spinner; wait for the real entries
    page.get_by_text("dropped_frames", exact=True).first.wait_for(state="visible")
    page.wait_for_load_state("networkidle")
    body = page.inner_text("body")
    assert key in body
    assert "Materialized" in body
    assert "No metadata entries" not in body
    for name in METADATA_KEYS:
        expect_visible(page, name)
    for name in ("episodes", "frames", "dropped_frames"):
        row = page.locator("tr").filter(has=page.get_by_text(name, exact=True))
        assert row.count() >= 1, name
        assert str(meta[name]) in row.first.inner_text().split(), (name, meta[name], row.first.inner_text())
    assert meta["episodes"] == 2
    screenshot(page, "partition_metadata.png", tmp_path)


def test_check_results_are_rendered(server, page, tmp_path):
    # Dagster 1.13 lists a partition's checks on the asset's Checks tab, not in the partition panel
    page.goto(f"{server.url}/assets/raw_teleop?view=checks")
    page.get_by_text("Latest execution").first.wait_for(state="visible")
    page.wait_for_load_state("networkidle")
    for name in CHECKS:
        expect_visible(page, name)
    body = page.inner_text("body")
    assert "Evaluation result" in body
    for name in CHECKS:  # each check in the list shows its latest outcome under its name
        assert re.search(rf"{name}\s+(?:{name}\s+)?(Succeeded|Failed)", body), (name, body[:2000])
    screenshot(page, "asset_checks.png", tmp_path)


def expect_visible(page, text: str) -> None:
    page.get_by_text(text, exact=True).first.wait_for(state="visible", timeout=30_000)
