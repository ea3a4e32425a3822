"""What a test's child process reads of its own resident memory now (Linux's `VmRSS`), in bytes; its peak is
`tasks.observe.peak_memory.peak_rss_bytes`. The memory tests' children import it by name (their cwd is the project)."""

from __future__ import annotations


def resident_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
