"""Checkpoints refuse a different run, are written atomically and exclusively."""

import os

import numpy as np
import pytest

import fpsolver as fp
from fpsolver.io import FileLock, save_result


class _Stop(KeyboardInterrupt):
    pass


def _grid():
    return fp.Grid(x=(-2.0, 2.0, 24), y=(-1.0, 1.0, 8))


def _model(**kw):
    args = dict(energy=lambda x, y: x**2 + y**2, temperature=0.5)
    args.update(kw)
    return fp.FokkerPlanck(_grid(), **args)


def _interrupted(path, model, **kw):
    """A run on `path` stopped after its second frame."""

    def stop(t, p):
        if t > 0.15:
            raise _Stop

    with pytest.raises(_Stop):
        fp.solve(model, fp.gaussian(model.grid, (0.5, 0.0), 0.1), 1.0, dt=0.05,
                 save_every=0.1, checkpoint=path, callback=stop, **kw)  # fmt: skip


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        (dict(energy=lambda x, y: x**2 + 1.01 * y**2), "energy"),
        (dict(temperature=0.6), "temperature"),
        (dict(mobility=2.0), "mobility"),
        (dict(force=[0.1, 0.0]), "force"),
        (dict(boundary={"x": ("reflecting", "absorbing")}), "walls"),
    ],
)
def test_resume_refuses_a_different_model_and_names_what_differs(tmp_path, changed, named):
    path = tmp_path / "run.nc"
    _interrupted(path, _model())
    other = _model(**changed)
    with pytest.raises(ValueError, match=f"differs in {named}") as err:
        fp.solve(other, fp.gaussian(other.grid, (0.5, 0.0), 0.1), 1.0, dt=0.05,
                 save_every=0.1, checkpoint=path, resume=True)  # fmt: skip
    # nothing else is blamed
    others = {"energy", "temperature", "mobility", "force", "walls"} - {named}
    assert not any(f"in {o}" in str(err.value) or f"; {o}" in str(err.value) for o in others)
    # the same model still resumes
    model = _model()
    ds = fp.solve(model, fp.gaussian(model.grid, (0.5, 0.0), 0.1), 1.0, dt=0.05,
                  save_every=0.1, checkpoint=path, resume=True)  # fmt: skip
    assert ds.time.values[-1] == 1.0


@pytest.mark.parametrize(
    ("changed", "named"),
    [(dict(dt=0.025), "options"), (dict(method="tr_bdf2"), "method"), (dict(t_end=2.0), "t_end")],
)
def test_resume_refuses_other_run_options(tmp_path, changed, named):
    path = tmp_path / "run.nc"
    model = _model()
    _interrupted(path, model)
    kw = dict(dt=0.05, save_every=0.1, t_end=1.0)
    kw.update(changed)
    with pytest.raises(ValueError, match=f"differs in {named}"):
        fp.solve(model, fp.gaussian(model.grid, (0.5, 0.0), 0.1), checkpoint=path, resume=True,
                 **kw)  # fmt: skip


def test_foreign_or_truncated_checkpoint_is_refused_clearly(tmp_path):
    model = _model()
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"CDF\x01 not really")
    with pytest.raises(ValueError, match="not a readable fpsolver checkpoint"):
        fp.solve(model, fp.gaussian(model.grid, (0.5, 0.0), 0.1), 1.0, dt=0.05,
                 checkpoint=bad, resume=True)  # fmt: skip


def test_a_second_writer_of_the_same_checkpoint_is_refused(tmp_path):
    path = tmp_path / "run.nc"
    lock = FileLock(path)
    lock.acquire()  # as another run would hold it
    try:
        model = _model()
        with pytest.raises(RuntimeError, match="being written by another run"):
            fp.solve(model, fp.gaussian(model.grid, (0.5, 0.0), 0.1), 0.2, dt=0.05,
                     checkpoint=path)  # fmt: skip
    finally:
        lock.release()
    assert not os.path.exists(str(path) + ".lock")


def test_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    model = _model()
    ds = model.solve(fp.gaussian(model.grid, (0.5, 0.0), 0.1), 0.1, dt=0.05)
    path = save_result(ds, tmp_path / "out.nc")
    before = path.read_bytes()

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(ds), "to_netcdf", full_disk)
    with pytest.raises(OSError, match="out.nc.*previous file is unchanged.*No space left"):
        save_result(ds, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nc"]  # no temporary left


def test_checkpoint_writes_use_unique_temporary_names(tmp_path, monkeypatch):
    """Two writers never share a temporary file (no fixed `path.tmp`)."""
    import tempfile

    names = []
    real = tempfile.mkstemp

    def spy(*args, **kwargs):
        fd, name = real(*args, **kwargs)
        names.append(name)
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", spy)
    model = _model()
    fp.solve(model, fp.gaussian(model.grid, (0.5, 0.0), 0.1), 0.2, dt=0.05, save_every=0.1,
             checkpoint=tmp_path / "c.nc")  # fmt: skip
    # the result file once, then the small state file after each of the 3 frames
    assert len(names) == 4 and len(set(names)) == 4
    assert all(os.path.dirname(n) == str(tmp_path) for n in names)
    np.testing.assert_array_equal(fp.open_result(tmp_path / "c.nc").time.values, [0, 0.1, 0.2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.nc", "c.nc.state"]


def test_frames_are_appended_not_rewritten(tmp_path, monkeypatch):
    """The result file is written whole once; each later frame adds one record at the end."""
    from fpsolver.io import checkpoint

    whole, appended = [], []
    real_write, real_append = checkpoint.write_checkpoint, checkpoint._RecordFile.append
    monkeypatch.setattr(
        checkpoint, "write_checkpoint", lambda *a: whole.append(1) or real_write(*a)
    )

    def append(self, frame):
        before = os.path.getsize(self.path)
        real_append(self, frame)
        appended.append(os.path.getsize(self.path) - before)

    monkeypatch.setattr(checkpoint._RecordFile, "append", append)
    model = _model()
    path = tmp_path / "c.nc"
    ds = fp.solve(model, fp.gaussian(model.grid, (0.5, 0.0), 0.1), 1.0, dt=0.05, save_every=0.1,
                  checkpoint=path)  # fmt: skip
    assert len(whole) == 1 and len(appended) == 10
    assert len(set(appended)) == 1  # the same number of bytes for every frame
    back = fp.open_result(path)
    for v in ("p", "free_energy", "mass", "mean", "covariance", "step_size"):
        np.testing.assert_array_equal(back[v].values, ds[v].values)


def test_a_frame_appended_after_the_last_state_is_dropped_on_resume(tmp_path):
    """A crash between a record and its state file: resume repeats that frame exactly."""
    import shutil

    from fpsolver.io import checkpoint

    model = _model()
    p0 = fp.gaussian(model.grid, (0.5, 0.0), 0.1)
    kw = dict(dt=0.05, save_every=0.1, method="bdf2")
    full = fp.solve(model, p0, 1.0, **kw)
    path = tmp_path / "c.nc"
    saved = tmp_path / "state_at_frame_2"

    def crash(t, p):
        if abs(t - 0.1) < 1e-12:  # the state as it was after frame 2
            shutil.copy(checkpoint.state_path(path), saved)
        if abs(t - 0.2) < 1e-12:
            raise _Stop

    with pytest.raises(_Stop):
        fp.solve(model, p0, 1.0, checkpoint=path, callback=crash, **kw)
    assert fp.open_result(path).sizes["time"] == 3
    shutil.copy(saved, checkpoint.state_path(path))  # record 3 on disk, its state lost
    resumed = fp.solve(model, p0, 1.0, checkpoint=path, resume=True, **kw)
    np.testing.assert_array_equal(resumed.p.values, full.p.values)
    back = fp.open_result(path)
    np.testing.assert_array_equal(back.p.values, full.p.values)
    assert checkpoint._read_state(path)["frames"] == full.sizes["time"]
