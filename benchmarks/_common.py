"""What several benchmarks share (run_all.py skips files starting with an underscore)."""

from __future__ import annotations

import resource


def peak_rss_mb() -> float:
    """This process's peak RSS: ``VmHWM`` of its own address space. Not ``ru_maxrss``: on Linux that carries
    the parent's high-water mark over ``vfork`` + ``exec`` (how ``subprocess`` starts children), so a child
    of a 300 MB parent would never report less than 300 MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
