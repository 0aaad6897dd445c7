"""Parameter sweeps: layout, failures, resuming from a store, Dask equals serial bit for bit.

One LocalCluster of two worker processes (one thread each) serves every
Dask test of this module. The scheduler gives up on a task after its
worker died twice (``allowed-failures`` = 1), so the test of a point that
kills its worker stays short.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import xarray as xr

import fpsolver as fp
from fpsolver.api import cluster as fpcluster
from fpsolver.api.sweeps import OK, PENDING, sweep

ROOT = Path(__file__).resolve().parents[1]

# the workers get this module's functions by value: they need not import it
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def client():
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,
        )
        dask_client = Client(cluster)
    try:
        yield dask_client
    finally:
        dask_client.close()
        cluster.close()


# --------------------------------------------------------------------------
# models and runs (cheap: 1-D, a few dozen cells)
def tilted(temperature, force=0.0, v0=1.0, cells=48):
    grid = fp.Grid(x=(0.0, 1.0, cells), periodic="x")
    return fp.FokkerPlanck(grid, lambda x: -v0 * np.cos(2 * np.pi * x), temperature, force=[force])


def well(temperature, barrier=1.0):
    grid = fp.Grid(x=(-2.0, 2.0, 60))
    return fp.FokkerPlanck(grid, lambda x: barrier * (x**2 - 1) ** 2, temperature)


def current(model):
    """The stationary current and mean position of a 1-D periodic model."""
    p = model.stationary()
    j = model.current(p)["J_x"]
    return {"current": float(j.mean()), "p_ss": p}


def rates(model):
    return fp.spectrum(model, 3)


FAIL_AT: set[float] = set()
CALLS: list[dict] = []


def flaky(temperature, force=0.0):
    """A model that fails at the temperatures in FAIL_AT; records its calls."""
    CALLS.append({"temperature": temperature, "force": force})
    if temperature in FAIL_AT:
        raise ArithmeticError(f"no model at temperature {temperature}")
    return tilted(temperature, force)


# --------------------------------------------------------------------------
# layout
def test_product_sweep_has_a_dimension_per_parameter_and_their_values():
    temps, forces = [0.5, 1.0, 2.0], [0.0, 1.0]
    ds = sweep(tilted, {"temperature": temps, "force": forces}, run=current)
    assert ds["current"].dims == ("temperature", "force")
    assert ds["p_ss"].dims == ("temperature", "force", "x")
    assert ds["temperature"].values.tolist() == temps
    assert ds["force"].values.tolist() == forces
    assert (ds["status"] == OK).all()
    for t in temps:
        for f in forces:
            want = current(tilted(t, f))
            assert float(ds["current"].sel(temperature=t, force=f)) == want["current"]
            assert np.array_equal(ds["p_ss"].sel(temperature=t, force=f), want["p_ss"])
    # no tilt, no current; a tilt drives one
    assert np.all(np.abs(ds["current"].sel(force=0.0)) < 1e-12)
    assert np.all(ds["current"].sel(force=1.0) > 0)
    assert ds.attrs["sweep_parameters"] == "temperature force"
    assert ds.attrs["sweep_failed"] == 0 and ds.attrs["sweep_points"] == 6


def test_the_order_of_values_is_kept():
    ds = sweep(lambda force: tilted(1.0, force), {"force": [2.0, 0.0, 1.0]}, run=current)
    assert ds["force"].values.tolist() == [2.0, 0.0, 1.0]
    assert float(ds["current"].sel(force=2.0)) > float(ds["current"].sel(force=1.0)) > 0


def test_a_list_of_points_runs_along_point():
    points = [{"temperature": 0.5, "barrier": 1.0}, {"temperature": 1.0, "barrier": 2.0}]
    ds = sweep(well, points, run=rates)
    assert ds["rate"].dims == ("point", "k")
    assert ds["temperature"].dims == ("point",)
    assert ds["barrier"].values.tolist() == [1.0, 2.0]
    assert np.array_equal(ds["rate"][1], rates(well(1.0, 2.0))["rate"])


def test_numbers_dataarrays_and_make_model_alone():
    ds = sweep(lambda a, b: a * b, {"a": [1, 2, 3], "b": [10, 20]})
    assert ds["value"].dims == ("a", "b")
    assert ds["value"].values.tolist() == [[10, 20], [20, 40], [30, 60]]
    assert ds["a"].dtype.kind == "i"
    da = sweep(well, {"temperature": [0.5, 1.0]}, run=lambda m: m.stationary())
    assert da["p_ss"].dims == ("temperature", "x")
    words = sweep(lambda kind: len(kind), {"kind": ["reflecting", "absorbing"]})
    assert words["value"].values.tolist() == [10, 9]


# --------------------------------------------------------------------------
# failures
def test_a_failing_point_is_reported_and_the_others_kept():
    FAIL_AT.clear()
    FAIL_AT.add(1.0)
    try:
        ds = sweep(flaky, {"temperature": [0.5, 1.0, 2.0]}, run=current)
    finally:
        FAIL_AT.clear()
    status = ds["status"].values.tolist()
    assert status[0] == status[2] == OK
    assert status[1] == "ArithmeticError: no model at temperature 1.0"
    assert np.isnan(float(ds["current"].sel(temperature=1.0)))
    assert np.isnan(ds["p_ss"].sel(temperature=1.0)).all()
    assert float(ds["current"].sel(temperature=2.0)) == current(tilted(2.0))["current"]
    assert ds.attrs["sweep_failed"] == 1


def test_every_point_failing_still_returns_the_statuses():
    ds = sweep(well, {"temperature": [0.5, 1.0]}, run=lambda m: m.no_such_method())
    assert list(ds.data_vars) == ["status"]
    assert all(s.startswith("AttributeError:") for s in ds["status"].values.tolist())


def test_a_result_that_is_not_xarray_or_numbers_is_a_failure_of_that_point():
    ds = sweep(well, {"temperature": [0.5]}, run=lambda m: "text")
    assert ds["status"].values[0].startswith("TypeError: `run` must return an xarray")


# --------------------------------------------------------------------------
# bad input, refused before anything runs
def test_parameters_make_model_does_not_take_are_refused_before_running():
    CALLS.clear()
    with pytest.raises(TypeError, match=r"does not accept the swept parameter\(s\) \['tilt'\]"):
        sweep(flaky, {"temperature": [1.0], "tilt": [0.0, 1.0]}, run=current)
    with pytest.raises(TypeError, match="cannot be called with the swept parameters"):
        sweep(flaky, {"force": [0.0, 1.0]}, run=current)  # temperature has no default
    assert CALLS == []
    # **kwargs takes anything
    ds = sweep(lambda **kw: sum(kw.values()), {"p": [1, 2], "q": [3]})
    assert ds["value"].values.tolist() == [[4], [5]]


def test_an_unknown_parameter_is_refused_before_any_task_is_submitted(client):
    def transitions():
        return client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)

    before = transitions()
    with pytest.raises(TypeError, match=r"does not accept the swept parameter\(s\) \['tilt'\]"):
        sweep(flaky, {"temperature": [1.0], "tilt": [0.0, 1.0]}, run=current, client=client)
    assert transitions() == before  # the scheduler saw nothing
    # and before connecting: the error is the parameter's, not the scheduler's
    with pytest.raises(TypeError, match="does not accept the swept parameter"):
        sweep(flaky, {"tilt": [0.0]}, run=current, scheduler="tcp://127.0.0.1:1", timeout=2)


@pytest.mark.parametrize(
    "parameters, error, match",
    [
        ({}, ValueError, "empty"),
        ({"temperature": []}, ValueError, "non-empty 1-D"),
        ({"temperature": 1.0}, TypeError, "must be a sequence"),
        ({"temperature": "hot"}, TypeError, "must be a sequence"),
        ({"temperature": [1.0, 1.0]}, ValueError, "must not repeat"),
        ({"temperature": [1.0, "hot"]}, TypeError, "all numbers or all strings"),
        ({"temperature": [1.0, np.nan]}, ValueError, "finite"),
        ({"temperature": [[1.0, 2.0]]}, ValueError, "1-D"),
        ({"status": [1.0]}, ValueError, "reserved"),
        ({"not a name": [1.0]}, ValueError, "identifier"),
        ([{"temperature": 1.0}, {"force": 1.0}], ValueError, "same parameters"),
        ([{"temperature": 1.0}, {"temperature": 1.0}], ValueError, "same point twice"),
        ([], TypeError, "non-empty list"),
        ("temperature", TypeError, "mapping"),
    ],
)
def test_malformed_parameters_are_refused(parameters, error, match):
    with pytest.raises(error, match=match):
        sweep(tilted, parameters, run=current)


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="`make_model` must be a callable"):
        sweep(None, {"temperature": [1.0]})
    with pytest.raises(TypeError, match="`run` must be a callable"):
        sweep(tilted, {"temperature": [1.0]}, run=3)
    with pytest.raises(ValueError, match="`retries` must be a non-negative integer, got -1"):
        sweep(tilted, {"temperature": [1.0]}, run=current, retries=-1)
    with pytest.raises(ValueError, match="not both"):
        sweep(tilted, {"temperature": [1.0]}, client="local", scheduler="tcp://h:1")
    with pytest.raises(ValueError, match='"local" or None'):
        sweep(tilted, {"temperature": [1.0]}, client="tcp://h:1")
    with pytest.raises(ValueError, match="also dimensions or variables"):
        sweep(lambda x: tilted(1.0), {"x": [1.0]}, run=lambda m: m.stationary())


# --------------------------------------------------------------------------
# the store: saved as it goes, resumed
def test_resuming_recomputes_only_failed_and_missing_points(tmp_path):
    store = tmp_path / "sweep.nc"
    grid = {"temperature": [0.5, 1.0, 2.0], "force": [0.0, 1.0]}
    FAIL_AT.clear()
    FAIL_AT.add(1.0)
    CALLS.clear()
    try:
        first = sweep(flaky, grid, run=current, store=store)
    finally:
        FAIL_AT.clear()
    assert len(CALLS) == 6 and first.attrs["sweep_failed"] == 2
    saved = xr.load_dataset(store)
    assert saved["status"].values.tolist() == first["status"].values.tolist()
    CALLS.clear()
    again = sweep(flaky, grid, run=current, store=store)
    assert CALLS == [{"temperature": 1.0, "force": 0.0}, {"temperature": 1.0, "force": 1.0}]
    fresh = sweep(flaky, grid, run=current)
    xr.testing.assert_identical(again.drop_attrs(), fresh.drop_attrs())
    # a larger sweep over the same store computes only the new values
    CALLS.clear()
    more = sweep(flaky, {"temperature": [0.5, 1.0, 2.0, 4.0], "force": [0.0, 1.0]},
                 run=current, store=store)  # fmt: skip
    assert [c["temperature"] for c in CALLS] == [4.0, 4.0]
    assert (more["status"] == OK).all()
    assert not list(tmp_path.glob("*.lock")) and not list(tmp_path.glob(".sweep.nc.*"))


def test_an_interrupted_sweep_keeps_its_finished_points(tmp_path):
    store = tmp_path / "sweep.nc"

    def stop_at_two(temperature):
        if temperature == 2.0:
            raise KeyboardInterrupt
        return tilted(temperature)

    with pytest.raises(KeyboardInterrupt):
        sweep(stop_at_two, {"temperature": [0.5, 1.0, 2.0, 4.0]}, run=current, store=store)
    saved = xr.load_dataset(store)
    assert saved["status"].values.tolist() == [OK, OK, PENDING, PENDING]
    assert saved.attrs["sweep_pending"] == 2
    assert float(saved["current"][1]) == current(tilted(1.0))["current"]


def test_a_store_of_another_sweep_is_refused(tmp_path):
    store = tmp_path / "sweep.nc"
    sweep(tilted, {"temperature": [1.0]}, run=current, store=store)
    with pytest.raises(ValueError, match="holds another sweep"):
        sweep(tilted, {"temperature": [1.0]}, run=rates, store=store)
    with pytest.raises(ValueError, match="holds another sweep"):
        sweep(tilted, {"force": [1.0], "temperature": [1.0]}, run=current, store=store)


# --------------------------------------------------------------------------
# on Dask
def test_dask_gives_the_serial_result_bit_for_bit(client):
    grid = {"temperature": [0.4, 0.7, 1.0], "barrier": [1.0, 2.0]}
    serial = sweep(well, grid, run=rates)
    dask = sweep(well, grid, run=rates, client=client)
    xr.testing.assert_identical(serial, dask)
    p0 = fp.gaussian(fp.Grid(x=(-2.0, 2.0, 60)), -1.0, 0.05)

    def relax(m):
        return m.solve(p0, 1.0, dt=0.05, method="bdf2", save_every=0.5)

    serial = sweep(well, grid, run=relax)
    dask = sweep(well, grid, run=relax, client=client)
    xr.testing.assert_identical(serial, dask)
    assert np.array_equal(serial["p"].values, dask["p"].values)


def test_dask_reports_failures_per_point_and_resumes(client, tmp_path):
    store = tmp_path / "sweep.nc"

    def picky(temperature):
        if temperature > 1.5:
            raise ValueError(f"too hot: {temperature}")
        return tilted(temperature, 1.0)

    ds = sweep(picky, {"temperature": [0.5, 1.0, 2.0]}, run=current, client=client, store=store)
    assert ds["status"].values.tolist() == [OK, OK, "ValueError: too hot: 2.0"]
    again = sweep(picky, {"temperature": [0.5, 1.0, 2.0]}, run=current, client=client, store=store)
    xr.testing.assert_identical(ds.drop_attrs(), again.drop_attrs())


def _die_once(temperature, marker):
    """Kill the worker process the first time (a crash, an OOM kill); fine afterwards."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return tilted(temperature)


def _die_always(temperature):
    os._exit(1)


def test_a_point_whose_worker_dies_is_retried_or_reported(client, tmp_path):
    marker = str(tmp_path / "died")
    start = time.perf_counter()
    ds = sweep(
        lambda temperature: _die_once(temperature, marker),
        {"temperature": [1.0]},
        run=current,
        client=client,
    )
    assert ds["status"].values.tolist() == [OK]  # rerun on a fresh worker
    ds = sweep(_die_always, {"temperature": [1.0]}, run=current, client=client)
    (status,) = ds["status"].values.tolist()
    assert status.startswith("KilledWorker: the worker died running this point")
    assert time.perf_counter() - start < 20
    client.wait_for_workers(2, timeout=20)


def test_an_unreachable_scheduler_is_one_clear_error_within_the_timeout():
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"cannot reach the Dask scheduler at .* within 2 s"):
        sweep(tilted, {"temperature": [1.0]}, run=current, scheduler="tcp://127.0.0.1:1", timeout=2)
    assert time.perf_counter() - start < 4
    with pytest.raises(ValueError, match="is not a scheduler address"):
        sweep(tilted, {"temperature": [1.0]}, run=current, scheduler="no-port-here")


def test_without_dask_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r'pip install "fpsolver\[dask\]"'):
        sweep(tilted, {"temperature": [1.0]}, run=current, client="local")
    # the serial sweep needs no Dask
    assert sweep(tilted, {"temperature": [1.0]}, run=current)["status"].item() == OK
    assert fpcluster.DASK_HINT in str(
        pytest.raises(ImportError, fpcluster.import_distributed).value
    )


def test_import_fpsolver_does_not_import_dask():
    code = textwrap.dedent(
        """
        import sys
        import fpsolver, fpsolver.api.sweeps, fpsolver.api.ensembles, fpsolver.cli.sweep
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
        assert not loaded, loaded
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert proc.returncode == 0, proc.stderr
