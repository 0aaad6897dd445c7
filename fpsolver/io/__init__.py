"""Layer 4: results and checkpoints on disk.

:mod:`~fpsolver.io.results` saves and reopens results, :mod:`~fpsolver.io.checkpoint`
writes a run's frames as they come (appending in place) and resumes them,
:mod:`~fpsolver.io.files` writes files atomically and exclusively.
"""

from .checkpoint import CheckpointTracker, load_checkpoint, read_checkpoint, write_checkpoint
from .files import FileLock, atomic_write
from .results import _engine, open_result, result_grid, save_result

__all__ = [
    "save_result",
    "open_result",
    "result_grid",
    "write_checkpoint",
    "read_checkpoint",
    "CheckpointTracker",
    "load_checkpoint",
    "FileLock",
    "atomic_write",
    "_engine",
]
