"""netCDF round trips of results and checkpoints."""

import importlib.util

import numpy as np
import pytest
import xarray as xr

import fpsolver as fp
from fpsolver.io import read_checkpoint, result_grid, write_checkpoint


def _missing(*modules):
    return [m for m in modules if importlib.util.find_spec(m) is None]


ENGINES = [
    pytest.param(e, marks=pytest.mark.skipif(bool(_missing(*m)), reason=f"needs {m}"))
    for e, m in [("scipy", ["scipy"]), ("h5netcdf", ["h5netcdf", "h5py"]), ("netcdf4", ["netCDF4"])]
]


@pytest.fixture(scope="module")
def result():
    grid = fp.Grid(x=(0, 1, 12), y=np.array([0.0, 0.1, 0.3, 0.6, 1.0]), periodic=("x",))
    model = fp.FokkerPlanck(
        grid, lambda x, y: np.sin(2 * np.pi * x) + y, 0.7, boundary={"y": "absorbing"}
    )
    return model, fp.solve(model, fp.gaussian(grid, (0.5, 0.5), 0.05), 0.2, dt=0.05)


@pytest.mark.parametrize("engine", ENGINES)
def test_round_trip(tmp_path, result, engine):
    model, ds = result
    path = fp.save_result(ds, tmp_path / f"run_{engine}.nc", engine=engine)
    back = fp.open_result(path, engine=engine)
    xr.testing.assert_identical(back.drop_attrs(), ds.drop_attrs())
    for name in ds.variables:
        assert back[name].attrs == ds[name].attrs
    assert result_grid(back) == model.grid
    for key in ["temperature", "method", "dt", "fpsolver_version", "factorizations", "boundary"]:
        assert np.all(back.attrs[key] == ds.attrs[key]), key
    assert back.attrs["reversible"] == 1 and "absorbed" in back


def test_plain_to_netcdf_works_with_every_engine(tmp_path, result):
    """The Dataset itself is netCDF-safe: no bools or None in attrs."""
    _, ds = result
    ds.to_netcdf(tmp_path / "plain.nc", engine="scipy")
    back = xr.load_dataset(tmp_path / "plain.nc", engine="scipy")
    np.testing.assert_array_equal(back.p.values, ds.p.values)


def test_unknown_engine_is_an_error(tmp_path, result):
    with pytest.raises(ValueError, match="engine"):
        fp.save_result(result[1], tmp_path / "x.nc", engine="nosuch")


def test_checkpoint_state_round_trip(tmp_path, result):
    model, ds = result
    prev = np.arange(model.grid.size, dtype=float) / 7
    path = write_checkpoint(ds, tmp_path / "ck.nc", {"prev": prev, "dt_prev": 0.1 / 3})
    assert not (tmp_path / "ck.nc.tmp").exists()
    back, state = read_checkpoint(path)
    np.testing.assert_array_equal(state["prev"], prev)
    assert state["dt_prev"] == 0.1 / 3
    np.testing.assert_array_equal(back.p.values, ds.p.values)
    assert "checkpoint_prev" not in fp.open_result(path)


def test_default_engine_falls_back_to_scipy(tmp_path, result, monkeypatch):
    """The core install has neither netCDF4 nor h5py: scipy's netCDF3 writer is used."""
    import sys

    from fpsolver.io import _engine

    monkeypatch.setitem(sys.modules, "netCDF4", None)
    monkeypatch.setitem(sys.modules, "h5py", None)
    assert _engine(None) == "scipy"
    path = fp.save_result(result[1], tmp_path / "core.nc")
    assert path.read_bytes()[:3] == b"CDF"  # netCDF3 classic/64-bit magic
    back = fp.open_result(path, engine="scipy")
    np.testing.assert_array_equal(back.p.values, result[1].p.values)
