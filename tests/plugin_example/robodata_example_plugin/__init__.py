"""An example robodata plugin, written from the README alone.

- ``csv_episodes``: a datasource for folders of CSV files, one episode per file, columns ``t, x, y, vx, vy``
  (a planar robot's position as state, its commanded velocity as action).
- ``smooth_actions``: a stage that applies a moving average of ``window`` frames to the action.
- ``max_abs_action``: a validator that quarantines episodes whose action exceeds ``limit``.
- ``path_length``: a metric, the length of the path the robot drove.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import robodata
from robodata.formats.isaaclab import EpisodeSchema, EpisodeStoreWriter, FeatureSpec
from robodata.ingest import EpisodeReport, IngestError, IngestReport


class CsvEpisodes(robodata.Datasource):
    suffixes = (".csv",)
    needs_topic_map = False

    def __init__(self, path: str, fps: float = 20.0, **kw):
        super().__init__(path, **kw)
        self.fps = float(fps)

    def ingest(self, recording: Path, out: Path, topic_map, *, min_frames: int, max_frames: int,
               image_compression: str = "none") -> IngestReport:
        try:
            table = np.loadtxt(recording, delimiter=",", skiprows=1, ndmin=2)
        except ValueError as err:
            raise IngestError(f"{recording}: not a CSV of numbers t,x,y,vx,vy ({err})") from err
        if table.shape[1] != 5:
            raise IngestError(f"{recording}: expected 5 columns t,x,y,vx,vy, found {table.shape[1]}")
        schema = EpisodeSchema([FeatureSpec("position", "state", (2,), names=["x", "y"]),
                                FeatureSpec("velocity_cmd", "action", (2,), names=["vx", "vy"])],
                               fps=self.fps, task="drive to the goal", robot_type="planar_base")
        with EpisodeStoreWriter(out, schema, env_name="csv") as w:
            demo = w.begin_episode()
            demo.extend(table[:, 0], {"position": table[:, 1:3].astype(np.float32),
                                      "velocity_cmd": table[:, 3:5].astype(np.float32)})
            demo.close(success=True)
        n = len(table)
        return IngestReport(str(recording), str(out), [EpisodeReport("demo_0", n, n / self.fps, 0, True)],
                            fps=self.fps)


class SmoothActions(robodata.PipelineStage):
    def __init__(self, window: int = 3):
        self.window = int(window)

    def process_episode(self, episode):
        a = np.asarray(episode["action"], dtype=np.float32)
        kernel = np.ones(self.window, np.float32) / self.window
        padded = np.pad(a, ((self.window // 2, self.window - 1 - self.window // 2), (0, 0)), mode="edge")
        smooth = np.stack([np.convolve(padded[:, j], kernel, mode="valid") for j in range(a.shape[1])], axis=1)
        return {**episode, "action": smooth.astype(np.float32)}


class MaxAbsAction(robodata.Validator):
    def __init__(self, limit: float = 1.0):
        self.limit = float(limit)

    def validate_episode(self, episode):
        peak = float(np.abs(np.asarray(episode["action"])).max(initial=0.0))
        if peak > self.limit:
            yield self.finding(f"action reaches {peak:.3f}, above the limit {self.limit}", episode)


class PathLength(robodata.Metric):
    def compute(self, episode):
        s = np.asarray(episode["observation.state"], dtype=np.float64)
        return {"path_length": float(np.linalg.norm(np.diff(s, axis=0), axis=1).sum())}
