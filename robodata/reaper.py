"""The watchdog :func:`robodata.owner.start_reaper` starts: ``python -m robodata.reaper PID START``.

Every quarter second it notes the descendants of process PID (started at START, so a reused pid is not mistaken for
it); when PID is gone it kills the descendants it noted that still run (the same pid and start time), so a
killed CLI leaves no Ray workers, raylet or daemon behind. It never signals a process group: the CLI's group
may be the user's shell job.
"""

from __future__ import annotations

import sys
import time


def watch(pid: int, start: int, interval_s: float = 0.25) -> int:
    import os

    import psutil

    me = os.getpid()
    noted: dict[int, float] = {}
    state = os.environ.get("ROBODATA_REAPER_STATE")  # tests: where to say what is noted
    while True:
        try:
            p = psutil.Process(pid)
            if abs(int(p.create_time()) - start) > 1 or p.status() == psutil.STATUS_ZOMBIE:
                break
            for c in p.children(recursive=True):
                if c.pid != me:
                    noted[c.pid] = c.create_time()
            if state:
                with open(state + ".tmp", "w") as fh:
                    fh.write(" ".join(map(str, noted)))
                os.replace(state + ".tmp", state)
        except psutil.NoSuchProcess:
            break
        except psutil.Error:
            pass
        time.sleep(interval_s)
    # those noted that still run, and what they started since the last look (a raylet's newest workers)
    doomed = []
    for cpid, created in noted.items():
        try:
            c = psutil.Process(cpid)
            if c.create_time() == created:
                doomed += [c, *c.children(recursive=True)]
        except psutil.Error:
            pass
    killed = 0
    for c in doomed:
        try:
            c.kill()
            killed += 1
        except psutil.Error:
            pass
    return killed


if __name__ == "__main__":
    watch(int(sys.argv[1]), int(sys.argv[2]))
