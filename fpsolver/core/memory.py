"""How much memory this process may use.

Used where a default depends on it: the automatic linear solver of a 2-D
grid (a sparse LU that would not fit is not attempted) and the command
line's memory check of a configured run.
"""

from __future__ import annotations

import os

__all__ = ["available_memory"]


def available_memory() -> int | None:
    """Bytes of memory available to this process, or None when unknown.

    The least of ``MemAvailable`` (``/proc/meminfo``), a cgroup limit
    (``memory.max`` or ``memory.limit_in_bytes``) and the physical memory
    (``SC_PAGE_SIZE · SC_PHYS_PAGES``), where each can be read.
    """
    found = []
    try:
        found.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    for path, prefix, scale in (
        ("/proc/meminfo", "MemAvailable:", 1024),
        ("/sys/fs/cgroup/memory.max", "", 1),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "", 1),
    ):
        try:
            with open(path, encoding="ascii") as fh:
                for line in fh:
                    if line.startswith(prefix) and line[len(prefix) :].split()[0].isdigit():
                        found.append(int(line[len(prefix) :].split()[0]) * scale)
                        break
        except (OSError, ValueError, IndexError):
            continue
    return min(found) if found else None
