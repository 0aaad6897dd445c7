"""``fpsolver sweep``: a config's [sweep] table, its outputs, resuming, errors and exit codes."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from fpsolver.cli import main
from fpsolver.cli.config import ConfigError
from fpsolver.cli.sweep import sweep_plan

KRAMERS = """
title = "kramers"
[constants]
barrier = 1.0
[grid]
x = [-2.5, 2.5, 80]
[model]
energy = "barrier*(x**2 - 1)**2"
temperature = 0.5
[sweep]
compute = "spectrum"
temperature = { start = 0.4, stop = 1.0, num = 4 }
{extra}
[output]
name = "scan"
dpi = 40
"""

RING = """
[constants]
tilt = 0.0
[grid]
x = [0.0, 1.0, 40]
periodic = ["x"]
[model]
energy = "-cos(2*pi*x)"
force = ["tilt"]
temperature = 0.5
[sweep]
compute = "stationary"
tilt = [0.0, 2.0, 8.0]
temperature = [0.5, 1.0]
[output]
name = "ring"
dpi = 40
"""


def _write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _kramers(extra: str = "") -> str:
    return KRAMERS.replace("{extra}", extra)


def test_one_parameter_writes_the_sweep_and_a_line_figure(tmp_path, capsys):
    config = _write(tmp_path, _kramers())
    out = tmp_path / "out"
    assert main(["sweep", str(config), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "points ok                          4" in text and "computed now" in text
    ds = xr.load_dataset(out / "scan.nc")
    assert ds["rate"].dims == ("temperature", "k")
    assert ds["temperature"].values.tolist() == [0.4, 0.6, 0.8, 1.0]
    rate = ds["relaxation_rate"].values
    assert np.all(np.diff(rate) > 0)  # hotter, faster
    assert np.array_equal(rate, ds["rate"].sel(k=1).values)
    assert (out / "scan_relaxation_rate.png").stat().st_size > 0
    assert not (out / "scan_relaxation_rate_map.png").exists()
    for line in text.splitlines():  # every printed path is a file it wrote
        if line.strip().endswith((".nc", ".png")):
            assert Path(line.strip()).is_file()


def test_two_parameters_draw_lines_and_a_heat_map_of_the_current(tmp_path, capsys):
    config = _write(tmp_path, RING)
    assert main(["sweep", str(config), "-o", str(tmp_path)]) == 0
    ds = xr.load_dataset(tmp_path / "ring.nc")
    assert ds["current_x"].dims == ("tilt", "temperature")
    assert ds["p_ss"].dims == ("tilt", "temperature", "x")
    assert np.all(np.abs(ds["current_x"].sel(tilt=0.0)) < 1e-12)
    assert np.all(ds["current_x"].sel(tilt=8.0) > ds["current_x"].sel(tilt=2.0))
    assert (tmp_path / "ring_current_x.png").is_file()
    assert (tmp_path / "ring_current_x_map.png").is_file()


def test_running_again_computes_only_what_is_missing(tmp_path, capsys):
    config = _write(tmp_path, _kramers())
    assert main(["sweep", str(config), "-o", str(tmp_path), "--no-figures"]) == 0
    first = xr.load_dataset(tmp_path / "scan.nc")
    capsys.readouterr()
    assert main(["sweep", str(config), "-o", str(tmp_path), "--no-figures"]) == 0
    assert "computed now (others were saved)   0" in capsys.readouterr().out
    # one more temperature: only it is computed
    config.write_text(_kramers().replace("num = 4", "num = 7"))
    assert main(["sweep", str(config), "-o", str(tmp_path), "--no-figures"]) == 0
    assert "computed now (others were saved)   3" in capsys.readouterr().out
    again = xr.load_dataset(tmp_path / "scan.nc")
    assert np.array_equal(again["rate"].sel(temperature=0.6), first["rate"].sel(temperature=0.6))
    assert not list(tmp_path.glob("*.png"))


def test_fpsolver_run_runs_a_sweep_config(tmp_path, capsys):
    config = _write(tmp_path, _kramers())
    assert main(["run", str(config), "-o", str(tmp_path), "--no-figures"]) == 0
    assert "sweep of spectrum over 4 temperature" in capsys.readouterr().out
    assert (tmp_path / "scan.nc").is_file()


def test_a_solve_sweep_records_the_diagnostics_not_the_density(tmp_path):
    text = _kramers(
        "barrier = [1.0, 2.0]\n"
        "[initial]\ntype = 'gaussian'\nmean = -1.0\ncov = 0.05\n"
        "[solve]\nmethod = 'bdf2'\ndt = 0.1\nt_end = 1.0\nsave_every = 0.5\n"
    ).replace('compute = "spectrum"', 'compute = "solve"')
    config = _write(tmp_path, text)
    assert main(["sweep", str(config), "-o", str(tmp_path)]) == 0
    ds = xr.load_dataset(tmp_path / "scan.nc")
    assert "p" not in ds and "x" not in ds.dims
    assert ds["free_energy"].dims == ("temperature", "barrier", "time")
    assert ds["time"].values.tolist() == [0.0, 0.5, 1.0]
    assert (tmp_path / "scan_free_energy_map.png").is_file()


def test_failed_points_exit_1_and_keep_the_others(tmp_path, capsys):
    text = RING.replace('force = ["tilt"]', 'boundary = "absorbing"').replace("periodic", "# ")
    text = text.replace("tilt = 0.0", "tilt = 0.0\nshift = 0.0").replace("tilt = [", "shift = [")
    config = _write(tmp_path, text)
    assert main(["sweep", str(config), "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("fpsolver sweep: numerical failure: 6 of 6 points failed (first: ")
    assert "run the same command again" in err and "\n" not in err
    ds = xr.load_dataset(tmp_path / "ring.nc")
    assert all(s.startswith("ValueError") for s in ds["status"].values.ravel())


@pytest.mark.parametrize(
    "extra, replace, message",
    [
        ("temprature = [1.0]", None, "sweep.temprature: unknown parameter (did you mean"),
        ("barrier = []", None, "sweep.barrier: needs at least one value"),
        ("barrier = [1.0, 1.0]", None, "sweep.barrier: values must not repeat"),
        ("barrier = [1.0, 'a']", None, "sweep.barrier[1]: must be a finite number"),
        ("barrier = {start = 1, stop = 2}", None, "sweep.barrier.num: missing"),
        ("barrier = {start = 1, stop = 2, num = 0}", None, "sweep.barrier.num: must be an"),
        ("barrier = {start = 1, stop = 2, num = 3, step = 1}", None, "sweep.barrier.step"),
        ("barrier = {start = -1, stop = 2, num = 3, log = true}", None, "needs start, stop > 0"),
        ("barrier = 3.0", None, "sweep.barrier: must be a list of numbers or"),
        ("modes = 1", None, "sweep.modes: must be an integer from 2"),
        ("plot = 3", None, "sweep.plot: must be a variable name"),
        ("", ('compute = "spectrum"', ""), "sweep.compute: missing; must be one of"),
        ("", ('compute = "spectrum"', 'compute = "eigen"'), "sweep.compute: got 'eigen'"),
        ("", ("num = 4", "num = 200000"), "sweep.temperature.num: must be an integer from 1"),
        ("", ("start = 0.4", "start = -0.4"), "sweep.temperature = -0.4: model.temperature"),
        ("[particles]\nn = 10", None, "particles: a sweep does not run the particle check"),
        ("", ("[sweep]", "[sweeep]"), None),
    ],
)
def test_bad_sweep_tables_are_one_line_with_the_key(tmp_path, capsys, extra, replace, message):
    text = _kramers(extra)
    if replace is not None:
        text = text.replace(*replace)
    config = _write(tmp_path, text)
    command = "run" if "[sweeep]" in text else "sweep"
    assert main([command, str(config), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith(f"fpsolver {command}: error: ")
    if message is not None:
        assert message in err, err
    assert not (tmp_path / "out" / "scan.nc").exists()


def test_values_that_make_a_bad_config_are_refused_before_anything_runs():
    data = {
        "constants": {"a": 1.0},
        "grid": {"x": [-2, 2, 30]},
        "model": {"energy": "x**2/a", "temperature": 1.0},
        "sweep": {"compute": "spectrum", "a": [1.0, 0.0]},
    }
    with pytest.raises(ConfigError, match=r"sweep.a = 0: model.energy"):
        sweep_plan(data)
    data["model"]["temperature"] = "2*a"
    data["sweep"] = {"compute": "spectrum", "temperature": [1.0]}
    with pytest.raises(ConfigError, match="model.temperature is '2\\*a', not a number"):
        sweep_plan(data)


def test_an_unreachable_scheduler_is_exit_2_within_the_timeout(tmp_path, capsys):
    config = _write(tmp_path, _kramers())
    start = time.perf_counter()
    code = main(
        ["sweep", str(config), "-o", str(tmp_path), "--scheduler", "tcp://127.0.0.1:1",
         "--timeout", "2"]
    )  # fmt: skip
    assert code == 2 and time.perf_counter() - start < 5
    err = capsys.readouterr().err.strip()
    assert err.startswith("fpsolver sweep: error: cannot reach the Dask scheduler at")
    assert "within 2 s" in err and "\n" not in err


def test_an_unknown_parameter_is_refused_before_the_scheduler_is_contacted(tmp_path, capsys):
    config = _write(tmp_path, _kramers("temprature = [1.0]"))
    code = main(
        ["sweep", str(config), "-o", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:1",
         "--timeout", "5"]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()  # the config's error, not the scheduler's
    assert "sweep.temprature: unknown parameter" in err and "Dask scheduler" not in err


def test_ctrl_c_is_exit_130_and_says_what_is_saved(tmp_path, capsys, monkeypatch):
    from fpsolver.api import sweeps

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweeps, "sweep", interrupted)
    config = _write(tmp_path, _kramers())
    assert main(["sweep", str(config), "-o", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert "interrupted (Ctrl-C); the finished points are saved in" in err


@pytest.fixture(scope="module")
def scheduler():
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.CRITICAL,
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_a_scheduler_address_gives_the_serial_result(tmp_path, scheduler):
    config = _write(tmp_path, RING)
    here, there = tmp_path / "here", tmp_path / "there"
    assert main(["sweep", str(config), "-o", str(here), "--no-figures"]) == 0
    assert main(["sweep", str(config), "-o", str(there), "--scheduler", scheduler]) == 0
    a, b = xr.load_dataset(here / "ring.nc"), xr.load_dataset(there / "ring.nc")
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
