"""A process's peak memory is its own: the figure every metrics record, lesson and benchmark row reports."""

from __future__ import annotations

import resource
import subprocess
import sys

from tasks.observe.peak_memory import peak_rss_bytes

MIB = 2**20
CHILD = (
    "import resource; from tasks.observe.peak_memory import peak_rss_bytes; "
    "print(peak_rss_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)"
)


def test_a_fresh_child_of_a_large_process_reports_its_own_peak_not_its_parents():
    ballast = b"\x01" * (400 * MIB)  # resident: written, not just reserved
    assert peak_rss_bytes() >= 400 * MIB
    completed = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    own_peak, inherited_maxrss = map(int, completed.stdout.split())
    del ballast
    assert inherited_maxrss >= 400 * MIB, "ru_maxrss no longer inherits the parent's peak: the reader may be simpler"
    assert own_peak < 200 * MIB, f"the child reported {own_peak / MIB:.0f} MiB, its parent's peak"


def test_the_peak_never_goes_down():
    first = peak_rss_bytes()
    assert first > 0 and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0
    assert peak_rss_bytes() >= first
