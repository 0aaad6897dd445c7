"""Files that are written whole or not at all, and by one run at a time."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "FileLock"]


def atomic_write(path: Path, write: Any) -> Path:
    """Call ``write(tmp)`` on a unique temporary file beside `path`, then rename it over `path`.

    On any error the temporary file is removed and `path` is left as it was;
    the error names the file and the reason.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise OSError(f"cannot write {str(path)!r}: {err.strerror or err}") from err
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise OSError(
                f"cannot write {str(path)!r} (the previous file is unchanged): "
                f"{err.strerror or err}"
            ) from err
        raise
    return path


class FileLock:
    """An exclusive advisory lock on ``<path>.lock`` (POSIX ``flock``), held while writing.

    A second process (or a second solve in this one) that tries to write the
    same file is refused at once with a clear message, instead of racing.
    Where ``fcntl`` is unavailable the lock is a no-op.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._fh: Any = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return
        fh = open(self.lock_path, "a")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise RuntimeError(
                f"{str(self.path)!r} is being written by another run (lock "
                f"{str(self.lock_path)!r}); wait for it or choose another file"
            ) from None
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            with contextlib.suppress(OSError):
                os.unlink(self.lock_path)
