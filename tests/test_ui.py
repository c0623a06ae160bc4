"""End to end through the real Dagster UI: one simulated recording is landed, picked up by the sensor and
taken through every asset (raw_teleop -> synthetic_demos -> augmented_videos -> lerobot_episodes ->
lerobot_dataset); then ``dagster-webserver`` serves the project and headless Chromium checks that the whole
asset graph (every asset materialized, every edge), the partition's materialization metadata, the asset
checks and the release's metadata are rendered.

Screenshots (1400x900) go to the test's tmp_path and, when ``$ROBODATA_SCREENSHOTS`` names a folder, there
too (``ROBODATA_SCREENSHOTS=docs/screenshots pytest -m slow tests/test_ui.py`` refreshes the README's).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.ui_harness import (
    BUILD_GUARD_S,
    PAGE_GUARD_MS,
    SERVER_GUARD_S,
    VIEWPORT,
    browser_page,
    build_home_subprocess,
    screenshot,
    warning_lines,
    webserver,
)

# pytest-timeout counts a test's fixture setup: the first test here also builds the project home and starts the
# webserver (module fixtures). Its limit lies above every guard inside, so that a slow run is never cut short
# and a hang still ends with the guard's own message.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_GUARD_S + 2 * SERVER_GUARD_S + 900)]

CHECKS = ("frames_in_sync_and_finite", "episode_rates_and_lengths", "few_frames_out_of_sync",
          "every_recording_published")
METADATA_KEYS = ("episodes", "frames", "dropped_frames", "duration_s", "reference_rate_hz", "path", "recordings",
                 "recordings_published")
# the assets the release is made of, and their groups (the graph may hold more tiers between them)
CORE_GROUPS = {"raw_teleop": "recording_tiers", "lerobot_episodes": "recording_tiers", "lerobot_dataset": "release"}
GRAPH_VIEWPORT = {"width": 2000, "height": 900}
MINIMAL_SCALE = 0.6  # Dagster's lineage graph shows only the asset names when zoomed out below this
# true once the graph's zoom/pan transform is the same on two polls in a row (its animations have ended)
_VIEWPORT_SETTLED = """() => {
  const el = document.querySelector('[data-svg-viewport] > div');
  const t = el ? el.style.transform : null;
  const settled = !!t && t === window.__robodataLastTransform;
  window.__robodataLastTransform = t;
  return settled;
}"""
_VIEWPORT_SCALE = "() => new DOMMatrix(document.querySelector('[data-svg-viewport] > div').style.transform).a"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    """A project home with one recording (MCAP, 2 episodes) registered by the sensor and taken through every
    asset: ingested, synthetic demos, augmented videos, LeRobot episodes and a release."""
    home = tmp_path_factory.mktemp("ui_home")
    built = build_home_subprocess(home, n_episodes=2, fmt="mcap")
    assert len(built["keys"]) == 1 and len(built["recordings"]) == 1, built
    assert built["release_metadata"]["recordings"] == built["recordings"], built["release_metadata"]
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


@pytest.fixture(scope="module")
def graph(server) -> dict[str, dict]:
    """The code location's assets as the webserver serves them: name -> group, partitioned, upstream names."""
    data = server.graphql("{ assetNodes { assetKey { path } groupName isPartitioned dependencyKeys { path } } }")
    return {
        "/".join(n["assetKey"]["path"]): {
            "group": n["groupName"],
            "partitioned": n["isPartitioned"],
            "deps": sorted("/".join(d["path"]) for d in n["dependencyKeys"]),
        }
        for n in data["assetNodes"]
    }


def test_code_location_loads_without_warnings(server):
    assert "Started Dagster code server for module robodata_dagster.definitions" in server.load_log, server.load_log[-3000:]
    assert warning_lines(server.load_log) == [], "the code location warns at load:\n" + server.load_log[-6000:]


def test_asset_graph_shows_every_asset(server, project, graph, page, tmp_path):
    assert {name: graph[name]["group"] for name in CORE_GROUPS if name in graph} == CORE_GROUPS, graph
    # the harness materialized every asset there is (a new tier needs its job in ui_harness.PIPELINE)
    assert set(project["checks"]) == set(graph), (sorted(project["checks"]), sorted(graph))
    edges = {(dep, name) for name, node in graph.items() for dep in node["deps"]}
    assert edges, graph

    # /asset-groups/<group> opens the global lineage with every group collapsed to one box: open the global
    # lineage and expand the groups the way a user would (graph settings -> "Expand all groups")
    page.goto(f"{server.url}/asset-groups")
    page.get_by_role("button", name="settings", exact=True).click()
    page.get_by_role("menuitem", name=re.compile("Expand all groups")).click()
    page.keyboard.press("Escape")
    expect(page.get_by_role("menu")).to_have_count(0)
    nodes = {name: asset_node(page, name) for name in sorted(graph)}
    for name, node in nodes.items():
        expect(node.get_by_text(name, exact=True)).to_be_visible()

    # Zoomed out below MINIMAL_SCALE the nodes shrink to bare names (and nodes off screen are not drawn at
    # all): give the graph the whole width (hide the asset tree and the navigation), zoom to fit (a double
    # click on the background) and wait until the zoom animation has settled
    page.get_by_role("button", name="panel_show_right", exact=True).click()  # the asset tree
    page.get_by_role("button", name=re.compile("Hide navigation")).click()
    page.set_viewport_size(GRAPH_VIEWPORT)  # six tiers in a row: a wide screen keeps node details readable
    try:
        viewport = page.locator("[data-svg-viewport]")
        box = viewport.bounding_box()
        viewport.dblclick(position={"x": 30, "y": box["height"] - 30})
        page.wait_for_function(_VIEWPORT_SETTLED, polling=200)
        scale = page.evaluate(_VIEWPORT_SCALE)
        assert scale >= MINIMAL_SCALE, f"the graph fits a {GRAPH_VIEWPORT['width']}px screen only at zoom {scale}: bare names"
        check_graph_nodes(project, graph, nodes, viewport.bounding_box())
        expect(page.get_by_text("Join the Dagster community")).to_have_count(0)
        # the edges, read off the drawn graph: each from its upstream node's box to its downstream's
        assert rendered_edges(page, nodes) == edges
        page.wait_for_load_state("networkidle")
        screenshot(page, "asset_graph.png", tmp_path)
    finally:  # the page is shared: the next tests' screenshots keep the navigation and the size
        page.set_viewport_size(VIEWPORT)
        page.get_by_role("button", name=re.compile("Show navigation|panel_show_left")).first.click()
        expect(page.get_by_role("button", name=re.compile("Hide navigation"))).to_be_visible()


def check_graph_nodes(project, graph, nodes, view) -> None:
    """Every node filled in (it loads row by row: latest event, checks, partitions), materialized, its checks
    as the harness's runs left them, and wholly on screen."""
    for name, node in nodes.items():
        checks = project["checks"][name]
        results = next(iter(checks.values())) if checks else {}  # the one partition's (or the release's)
        n, passed = len(results), sum(results.values())
        text = rf"Asset checks\s*{passed}\s*/\s*{n}" + (r"\s*Passed" if passed == n else "")
        if n:
            expect(node).to_contain_text(re.compile(text), timeout=PAGE_GUARD_MS)
        if graph[name]["partitioned"]:  # robot x day: one robot so far, every day from landing.start_date
            days = (dt.datetime.now(dt.UTC).date() - dt.date(2026, 1, 1)).days + 1  # today's is open
            expect(node).to_contain_text(re.compile(rf"({days - 1}|{days}) partitions"), timeout=PAGE_GUARD_MS)  # midnight
            expect(node).to_contain_text(re.compile(r"\d+% filled"), timeout=PAGE_GUARD_MS)  # one day of them
        else:  # its status row
            expect(node).to_contain_text("Materialized", timeout=PAGE_GUARD_MS)
        expect(node).not_to_contain_text("Loading")
        expect(node.get_by_text(name, exact=True)).to_be_visible()
        # to_be_in_viewport (an IntersectionObserver) does not see into the SVG's foreignObjects: compare boxes
        b = node.bounding_box()
        inside = (view["x"] <= b["x"] and b["x"] + b["width"] <= view["x"] + view["width"]
                  and view["y"] <= b["y"] and b["y"] + b["height"] <= view["y"] + view["height"])
        assert inside, (name, b, view)


def test_partition_metadata_is_rendered(server, project, page, tmp_path):
    from urllib.parse import quote

    key = project["keys"][0]  # the robot x day partition, "<date>|<robot>"
    meta = project["metadata"][key]
    page.goto(f"{server.url}/assets/raw_teleop?view=partitions&partition={quote(key)}")
    # the detail panel first renders with "No metadata entries" and a spinner; wait for the real entries
    page.get_by_text("dropped_frames", exact=True).first.wait_for(state="visible")
    page.wait_for_load_state("networkidle")
    body = page.inner_text("body")
    assert project["recordings"][0] in body  # the partition's table of recordings
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


def test_release_metadata_is_rendered(server, project, page, tmp_path):
    key = project["recordings"][0]
    meta = project["release_metadata"]
    page.goto(f"{server.url}/assets/lerobot_dataset")
    page.get_by_text("upstream_data_versions", exact=True).first.wait_for(state="visible")
    page.wait_for_load_state("networkidle")
    assert "No metadata entries" not in page.inner_text("body")
    values = {}
    for name in ("release", "recordings", "upstream_data_versions"):
        # "release" is also the asset's group name in the definition panel: look only at the metadata table
        row = page.locator("tr").filter(has=page.get_by_text(name, exact=True))
        expect(row).to_have_count(1)
        expect(row).to_be_visible()
        values[name] = row.locator("td").last.inner_text().strip()
    assert values["release"] == meta["release"], values
    assert json.loads(values["recordings"]) == [key], values
    assert json.loads(values["upstream_data_versions"]) == meta["upstream_data_versions"], values
    assert set(meta["upstream_data_versions"]) == {key}
    page.get_by_text("Metadata", exact=True).first.evaluate("e => e.scrollIntoView({block: 'start'})")
    expect(page.locator("tr").filter(has=page.get_by_text("upstream_data_versions", exact=True))).to_be_visible()
    screenshot(page, "release_metadata.png", tmp_path)


def asset_node(page, name: str):
    """The lineage graph's node of asset ``name`` (its foreignObject; group boxes are separate ones)."""
    return page.locator("foreignObject").filter(has=page.get_by_text(name, exact=True))


def rendered_edges(page, nodes: dict) -> set[tuple[str, str]]:
    """(upstream, downstream) for each arrow drawn in the lineage graph, matched to the nodes by geometry.

    Edges and nodes share the graph's SVG coordinates: an edge path starts at its upstream node's box and
    ends (its arrow head) within a few pixels of its downstream node's box.
    """
    boxes = {
        name: node.evaluate("e => ['x', 'y', 'width', 'height'].map(a => parseFloat(e.getAttribute(a)))")
        for name, node in nodes.items()
    }

    def nearest(x: float, y: float) -> str:
        def dist(b):
            bx, by, bw, bh = b
            return max(bx - x, 0, x - bx - bw) + max(by - y, 0, y - by - bh)

        name = min(boxes, key=lambda n: dist(boxes[n]))
        assert dist(boxes[name]) < 20, (x, y, boxes)
        return name

    edges = set()
    for d in page.locator("svg path[marker-end]").evaluate_all("ps => ps.map(p => p.getAttribute('d'))"):
        pts = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", d)]
        assert len(pts) >= 4 and len(pts) % 2 == 0, d
        edges.add((nearest(pts[0], pts[1]), nearest(pts[-2], pts[-1])))
    return edges


def expect_visible(page, text: str) -> None:
    page.get_by_text(text, exact=True).first.wait_for(state="visible", timeout=PAGE_GUARD_MS)
