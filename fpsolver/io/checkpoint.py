"""Checkpoints: every saved frame on disk as it is produced, appended in place.

A checkpoint is two files:

``run.nc``
    A netCDF-3 (64-bit offset) result with an unlimited ``time``
    dimension: ``fp.open_result("run.nc")`` reads the frames so far as a
    result. It is created whole (a unique temporary file renamed over the
    target) and then grows by one *record* per frame, written in place at
    the end of the file; the record count in the header is updated last,
    so an interrupted append leaves the previous frames readable.
    Appending costs the same whatever the number of frames before it.
``run.nc.state``
    The stepper's history (for BDF2 the previous density and step, for the
    adaptive method its step-size level), the step counters, the number of
    frames it belongs to, and the fingerprint of the run; small, and
    replaced atomically after every frame.

On resume (:func:`load_checkpoint`) a frame appended after the last state
was written is dropped, so the two files always agree, and a checkpoint of
a different run (other grid, fields, temperature, walls, method, dt,
solver options or package version) is refused with the parts that differ.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..integrate.trackers import Tracker, build_dataset
from .files import FileLock, atomic_write
from .results import _STATE, _netcdf_safe

__all__ = [
    "CheckpointTracker",
    "load_checkpoint",
    "read_checkpoint",
    "write_checkpoint",
    "state_path",
]

_FINGERPRINT = "fingerprint_"
_FRAMES = "frames"


def state_path(path: str | Path) -> Path:
    """The state file that goes with the checkpoint `path`."""
    path = Path(path)
    return path.with_name(path.name + ".state")


def _write_state(path: Path, state: dict[str, Any]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in state.items()})

    atomic_write(state_path(path), write)


def _read_state(path: Path) -> dict[str, Any]:
    with np.load(state_path(path), allow_pickle=False) as data:
        return {k: (data[k].item() if data[k].ndim == 0 else data[k].copy()) for k in data.files}


def write_checkpoint(ds, path: str | Path, state: dict[str, Any]) -> Path:
    """Write the whole checkpoint: `ds` (time unlimited) and the `state` file, atomically.

    `state` maps names to numbers, strings or arrays; ``frames`` (the
    number of frames of `ds`) is added.
    """
    path = Path(path)
    safe = _netcdf_safe(ds)
    atomic_write(
        path,
        lambda tmp: safe.to_netcdf(
            tmp, engine="scipy", format="NETCDF3_64BIT", unlimited_dims=["time"]
        ),
    )
    _write_state(path, {**state, _FRAMES: ds.sizes["time"]})
    return path


def read_checkpoint(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Read a checkpoint: the result so far (as many frames as the state) and the state."""
    import xarray as xr

    path = Path(path)
    ds = xr.load_dataset(path, engine="scipy")
    if not state_path(path).exists():  # the previous release kept the state inside
        state = {
            str(v)[len(_STATE) :]: (float(ds[v]) if ds[v].ndim == 0 else ds[v].values.ravel())
            for v in ds.variables
            if str(v).startswith(_STATE)
        }
        return ds.drop_vars([_STATE + k for k in state]), state
    state = _read_state(path)
    frames = int(state.pop(_FRAMES))
    if ds.sizes.get("time", 0) < frames:
        raise ValueError(f"{str(path)!r} has fewer frames than its state file says")
    return ds.isel(time=slice(0, frames)), state


class _RecordFile:
    """Appends records to a netCDF-3 file in place (the record count last)."""

    def __init__(self, path: Path) -> None:
        from scipy.io import netcdf_file

        self.path = path
        with netcdf_file(path, "r", mmap=False) as f:
            self.records = int(f._recs)
            self.recsize = int(f._recsize)
            self.layout = [
                (name, np.dtype(v.data.dtype).newbyteorder(">"), v.shape[1:])
                for name, v in f.variables.items()
                if v.isrec
            ]
        self.begin = os.path.getsize(path) - self.records * self.recsize

    def truncate(self, records: int) -> None:
        """Keep the first `records` records (drop frames the state does not know)."""
        with open(self.path, "r+b") as fh:
            fh.seek(4)
            fh.write(np.array(records, ">i4").tobytes())
            fh.truncate(self.begin + records * self.recsize)
            fh.flush()
            os.fsync(fh.fileno())
        self.records = records

    def append(self, frame: Any) -> None:
        """Append the first (only) time slice of the dataset `frame`."""
        parts = []
        for name, dtype, shape in self.layout:
            values = np.asarray(frame[name].values[0], dtype=dtype)
            if values.shape != tuple(shape):
                raise ValueError(f"checkpoint variable {name!r} changed shape")
            raw = values.tobytes()
            parts.append(raw + b"\0" * (-len(raw) % 4 if len(self.layout) > 1 else 0))
        record = b"".join(parts)
        if len(record) != self.recsize:
            raise ValueError(f"{str(self.path)!r}: record of {len(record)} bytes, expected "
                             f"{self.recsize}")  # fmt: skip
        with open(self.path, "r+b") as fh:
            fh.seek(self.begin + self.records * self.recsize)
            fh.write(record)
            fh.flush()
            os.fsync(fh.fileno())
            fh.seek(4)  # the record count, written last
            fh.write(np.array(self.records + 1, ">i4").tobytes())
            fh.flush()
        self.records += 1


class CheckpointTracker(Tracker):
    """Writes every saved frame to a checkpoint as it is produced (see the module notes).

    Parameters
    ----------
    path : str or Path
        The checkpoint (``.state`` goes beside it).
    grid : Grid
    attrs : callable
        Returns the attributes of the result (stored when the file is created).
    state : callable
        Returns the stepper state to store with each frame.
    fingerprint : dict
        What defines the run; compared on resume.

    The checkpoint is locked (:class:`~fpsolver.io.files.FileLock`) for the
    whole run: a second run on the same file is refused.
    """

    def __init__(
        self, path: str | Path, grid: Any, attrs: Any, state: Any, fingerprint: dict[str, str]
    ) -> None:
        self.path = Path(path)
        self.grid, self.attrs, self.state = grid, attrs, state
        self.fingerprint = {_FINGERPRINT + k: v for k, v in fingerprint.items()}
        self.file: _RecordFile | None = None
        self.frames = 0
        self.lock = FileLock(self.path)
        self.lock.acquire()

    def resume(self, frames: int) -> None:
        """Continue the existing checkpoint, whose first `frames` frames are valid."""
        self.file = _RecordFile(self.path)
        if self.file.records != frames:
            self.file.truncate(frames)
        self.frames = frames

    def on_frame(self, t: float, p: np.ndarray, info: dict[str, Any]) -> None:
        frame = build_dataset(self.grid, [t], [np.reshape(p, self.grid.shape)], [info], {})
        if self.file is None:
            frame.attrs.update(self.attrs(), **self.fingerprint)
            write_checkpoint(frame, self.path, {**self.state(), **self.fingerprint})
            self.file = _RecordFile(self.path)
            self.frames = 1
            return
        self.file.append(frame)
        self.frames += 1
        _write_state(self.path, {**self.state(), **self.fingerprint, _FRAMES: self.frames})

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
    except Exception as err:  # truncated, foreign or unreadable files
        raise ValueError(
            f"`checkpoint` {str(path)!r} is not a readable fpsolver checkpoint "
            f"(with its {state_path(path).name!r}): {err}"
        ) from err
    differ = []
    for key, new in fingerprint.items():
        old = state.pop(_FINGERPRINT + key, ds.attrs.get(_FINGERPRINT + key))
        if old != new:
            detail = "" if str(old).startswith("sha256:") or old is None else f": has {key}={old}"
            differ.append(f"{key}{detail}, this run has {key}={new}" if detail else key)
    if differ:
        raise ValueError(
            f"`checkpoint` {str(path)!r} belongs to a different run; it differs in "
            f"{'; '.join(differ)}. Resume only the run that wrote it, or use another file"
        )
    if "p" not in ds or ds.sizes.get("time", 0) == 0:
        raise ValueError(f"`checkpoint` {str(path)!r} holds no saved frame")
    ds.attrs = {k: v for k, v in ds.attrs.items() if not k.startswith(_FINGERPRINT)}
    storage.load(ds)
    state.pop("factorizations", None)
    stepper.set_state(state)
    return storage.times[-1], storage.frames[-1].ravel().copy()
