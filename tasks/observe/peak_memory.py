"""A process's own peak memory, without importing anything heavy: the metrics hooks and the benchmark share it."""

from __future__ import annotations

import resource
import sys


def peak_rss_bytes() -> int:
    """This process's own high-water mark of resident memory: Linux's `VmHWM`.

    Not `ru_maxrss`: Linux carries a parent's maximum into a child over fork and exec, so a fresh process started
    by a large one reports its parent's peak. Elsewhere (no `/proc`), `ru_maxrss` is the best there is.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux and the BSDs KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
