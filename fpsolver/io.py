"""Saving and reopening results; checkpoints for long runs.

Results are plain :class:`xarray.Dataset` objects, so ``ds.to_netcdf`` works
with any of xarray's engines. These helpers add: an engine that is always
available (scipy's netCDF3 writer is used when neither netCDF4 nor
h5netcdf is installed), attributes made netCDF-safe (booleans become
integers, ``None`` is dropped), and reading back the grid.

Checkpoints are netCDF3 files (scipy engine, part of the core install)
holding the frames so far plus ``checkpoint_*`` variables with the
stepper's history; :func:`open_result` drops those.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .core.grid import Grid
from .integrate.trackers import Tracker

__all__ = [
    "save_result",
    "open_result",
    "result_grid",
    "write_checkpoint",
    "read_checkpoint",
    "CheckpointTracker",
    "load_checkpoint",
    "FileLock",
]

_STATE = "checkpoint_"
_FINGERPRINT = "fingerprint_"


def _engine(engine: str | None) -> str:
    if engine is not None:
        return engine
    for name, modules in (("netcdf4", ("netCDF4",)), ("h5netcdf", ("h5netcdf", "h5py"))):
        try:
            for module in modules:
                __import__(module)
        except ImportError:
            continue
        return name
    return "scipy"


def _safe_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in attrs.items():
        if v is None:
            continue
        if isinstance(v, (bool, np.bool_)):
            v = int(v)
        elif isinstance(v, (np.integer, int)) and not isinstance(v, bool):
            v = int(v) if abs(int(v)) < 2**31 else float(v)
        out[k] = v
    return out


def _netcdf_safe(ds):
    ds = ds.copy()
    ds.attrs = _safe_attrs(dict(ds.attrs))
    for name in ds.variables:
        ds[name].attrs = _safe_attrs(dict(ds[name].attrs))
    return ds


def save_result(ds, path: str | Path, engine: str | None = None) -> Path:
    """Write a result to netCDF and return the path.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`fpsolver.solve` (or any Dataset).
    path : str or Path
    engine : {"netcdf4", "h5netcdf", "scipy"}, optional
        Default: the first installed of these (scipy is always present).

    Examples
    --------
    >>> import tempfile, os, fpsolver as fp
    >>> m = fp.FokkerPlanck(fp.Grid(x=(-3, 3, 20)), energy=lambda x: x**2 / 2)
    >>> ds = m.solve(fp.gaussian(m.grid, 1.0, 0.3), 0.2, dt=0.1)
    >>> path = save_result(ds, os.path.join(tempfile.mkdtemp(), "run.nc"))
    >>> back = open_result(path)
    >>> bool((back["p"] == ds["p"]).all()), result_grid(back) == m.grid
    (True, True)
    """
    safe = _netcdf_safe(ds)
    return _atomic_write(Path(path), lambda tmp: safe.to_netcdf(tmp, engine=_engine(engine)))


def open_result(path: str | Path, engine: str | None = None):
    """Load a saved result (or checkpoint) into memory and close the file.

    Checkpoint-only variables are dropped, so a checkpoint opens as the
    result it will become.
    """
    import xarray as xr

    ds = xr.load_dataset(path, engine=engine)
    drop = [v for v in ds.variables if str(v).startswith(_STATE)]
    return ds.drop_vars(drop)


def result_grid(ds) -> Grid:
    """The :class:`~fpsolver.core.grid.Grid` a result was computed on (from its attrs)."""
    return Grid.from_attrs(ds.attrs)


def _atomic_write(path: Path, write: Any) -> Path:
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


def write_checkpoint(ds, path: str | Path, state: dict[str, Any]) -> Path:
    """Atomically write `ds` plus stepper `state` (netCDF3, scipy engine).

    `state` maps names to floats or arrays with the grid's shape; they are
    stored as ``checkpoint_<name>``. The file is first written next to
    `path` and then moved over it, so `path` always holds a complete file.
    """
    import xarray as xr

    path = Path(path)
    ds = _netcdf_safe(ds)
    names = tuple(d for d in ds["p"].dims if d != "time")
    for key, value in state.items():
        value = np.asarray(value, float)
        if value.ndim == 0:
            ds[_STATE + key] = xr.Variable((), value)
        else:
            shape = tuple(ds.sizes[n] for n in names)
            ds[_STATE + key] = xr.Variable(names, value.reshape(shape))
    return _atomic_write(
        path, lambda tmp: ds.to_netcdf(tmp, engine="scipy", format="NETCDF3_64BIT")
    )


def read_checkpoint(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Read a checkpoint: the result so far and the stepper state."""
    import xarray as xr

    ds = xr.load_dataset(path, engine="scipy")
    state: dict[str, Any] = {}
    for v in list(ds.variables):
        v = str(v)
        if v.startswith(_STATE):
            value = ds[v].values
            state[v[len(_STATE) :]] = float(value) if value.ndim == 0 else value.ravel()
    return ds.drop_vars([_STATE + k for k in state]), state


class CheckpointTracker(Tracker):
    """Writes every saved frame to a netCDF checkpoint as it is produced.

    The file always holds a complete, valid result: each write goes to a
    unique temporary file that replaces the checkpoint atomically, so an
    interrupted run never leaves a truncated file, and a failed write leaves
    the previous one intact. The checkpoint is locked (:class:`FileLock`)
    for the whole run: a second run on the same file is refused. The
    stepper's history (for BDF2 the previous density and step) and the
    step-size level of the adaptive method are stored alongside, and a
    fingerprint of the run (grid, every field on the grid, temperature,
    walls, method, dt, solver options, package version), so that
    ``solve(..., checkpoint=path, resume=True)`` continues bit for bit and
    refuses a checkpoint of a different run.
    """

    def __init__(self, path: str | Path, snapshot: Any, fingerprint: dict[str, str]) -> None:
        self.path = Path(path)
        self.snapshot = snapshot
        self.fingerprint = dict(fingerprint)
        self.lock = FileLock(self.path)
        self.lock.acquire()

    def on_frame(self, t: float, p: np.ndarray, info: dict[str, Any]) -> None:
        ds, state = self.snapshot()
        ds.attrs.update({_FINGERPRINT + k: v for k, v in self.fingerprint.items()})
        write_checkpoint(ds, self.path, state)

    def finalize(self) -> None:
        self.lock.release()


def load_checkpoint(
    path: str | Path, fingerprint: dict[str, str], storage: Any, stepper: Any
) -> tuple[float, np.ndarray]:
    """Continue from the checkpoint at `path`: fill `storage`, restore `stepper`.

    Refuses a checkpoint of a different run: every part of `fingerprint`
    (see :class:`CheckpointTracker`) must match, and the error names the
    parts that differ. Returns the time and flat density of its last frame.
    """
    try:
        ds, state = read_checkpoint(path)
    except Exception as err:  # truncated, foreign or unreadable file
        raise ValueError(
            f"`checkpoint` {str(path)!r} is not a readable fpsolver checkpoint: {err}"
        ) from err
    differ = []
    for key, new in fingerprint.items():
        old = ds.attrs.get(_FINGERPRINT + key)
        if old != new:
            detail = "" if str(old).startswith("sha256:") or old is None else f": has {key}={old}"
            differ.append(f"{key}{detail}, this run has {key}={new}" if detail else key)
    if differ:
        raise ValueError(
            f"`checkpoint` {str(path)!r} belongs to a different run; it differs in "
            f"{'; '.join(differ)}. Resume only the run that wrote it, or use another file"
        )
    if "p" not in ds or "time" not in ds.dims or ds.sizes["time"] == 0:
        raise ValueError(f"`checkpoint` {str(path)!r} holds no saved frame")
    ds.attrs = {k: v for k, v in ds.attrs.items() if not k.startswith(_FINGERPRINT)}
    storage.load(ds)
    state.pop("factorizations", None)
    stepper.set_state(state)
    return storage.times[-1], storage.frames[-1].ravel().copy()
