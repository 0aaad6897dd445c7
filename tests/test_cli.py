"""The command line: outputs, summaries and exit codes (0 ok, 2 usage/config, 1 numerics)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import xarray as xr

import fpsolver.cli.app as cli
from fpsolver.cli import main

OU = """\
title = "ou"
[grid]
x = [-5, 5, 40]
[model]
energy = "x**2/2"
temperature = 1.0
[initial]
mean = 2.0
cov = 0.25
[solve]
method = "backward_euler"
dt = 0.05
t_end = 0.5
save_every = 0.25
"""

PARTICLES = """
[particles]
n = 4000
dt = 0.01
seed = 2
"""


def write(tmp_path: Path, text: str, name: str = "ou.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_run_writes_result_figures_and_summary(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["run", str(write(tmp_path, OU)), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    ds = xr.load_dataset(out / "result.nc")
    assert ds.time.values.tolist() == [0.0, 0.25, 0.5]
    assert ds.attrs["method"] == "backward_euler"
    x = ds.x.values
    np.testing.assert_array_equal(ds.energy.values, x**2 / 2)
    kl = float(ds.relative_entropy[-1])
    mass_error = abs(float(ds.mass[-1]) - 1)
    assert f"final relative entropy KL(p||q)    {kl:.3e}" in printed
    assert f"mass error                         {mass_error:.3e}" in printed
    assert "wall time" in printed
    for name in ("result.nc", "result_density.png", "result_relaxation.png"):
        assert (out / name).stat().st_size > 0
        assert str(out / name) in printed


def test_run_with_particle_check(tmp_path, capsys) -> None:
    import pandas as pd

    out = tmp_path / "out"
    assert main(["run", str(write(tmp_path, OU + PARTICLES)), "-o", str(out)]) == 0
    table = pd.read_csv(out / "result_comparison.csv", index_col="time")
    assert table.index.tolist() == [0.0, 0.25, 0.5]
    assert {"l1", "chi2", "p_value", "mean_z_x", "free_energy_diff"} <= set(table.columns)
    assert (out / "result_comparison.png").is_file()
    parts = xr.load_dataset(out / "result_particles.nc")
    assert int(parts.attrs["n"]) == 4000 and int(parts.attrs["seed"]) == 2
    printed = capsys.readouterr().out
    assert f"p_value                          {table['p_value'].iloc[-1]:.4g}" in printed


def test_bad_config_exits_2_naming_the_key(tmp_path, capsys) -> None:
    path = write(tmp_path, OU.replace("temperature = 1.0", "temperature = -1"))
    assert main(["run", str(path), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "model.temperature: must be positive, got -1" in err
    assert not (tmp_path / "o").exists()
    path = write(tmp_path, OU.replace('"x**2/2"', '"__import__(1)"'))
    assert main(["run", str(path)]) == 2
    assert "model.energy: calling '__import__' is not allowed" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read the config" in capsys.readouterr().err


def test_python_reference_needs_the_flag(tmp_path, capsys) -> None:
    path = write(tmp_path, OU.replace('"x**2/2"', '"numpy:cosh"'))
    assert main(["run", str(path), "-o", str(tmp_path / "a"), "--no-figures"]) == 2
    assert "--allow-python" in capsys.readouterr().err
    code = main(["run", str(path), "-o", str(tmp_path / "a"), "--no-figures", "--allow-python"])
    assert code == 0
    ds = xr.load_dataset(tmp_path / "a" / "result.nc")
    np.testing.assert_array_equal(ds.energy.values, np.cosh(ds.x.values))
    assert not (tmp_path / "a" / "result_density.png").exists()


def test_bad_usage_exits_2(capsys) -> None:
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["run"]) == 2
    assert main(["plot", "a.nc", "--animation", "avi"]) == 2
    assert main(["--help"]) == 0
    assert "usage: fpsolver" in capsys.readouterr().out


def test_numerical_failures_exit_1(tmp_path, monkeypatch, capsys) -> None:
    import importlib

    solve_module = importlib.import_module("fpsolver.api.fokker_planck")
    path = write(tmp_path, OU)

    def singular(*args, **kwargs):
        raise np.linalg.LinAlgError("Matrix is singular")

    monkeypatch.setattr(solve_module, "solve", singular)
    assert main(["run", str(path), "-o", str(tmp_path / "o")]) == 1
    assert "numerical failure: solve: LinAlgError: Matrix is singular" in capsys.readouterr().err

    def nan_result(model, p0, t_end, **kwargs):
        p = np.full((1, *model.grid.shape), np.nan)
        return xr.Dataset({"p": (("time", *model.grid.names), p)}, coords={"time": [0.0]})

    monkeypatch.setattr(solve_module, "solve", nan_result)
    assert main(["run", str(path), "-o", str(tmp_path / "o")]) == 1
    assert "the final density is not finite" in capsys.readouterr().err

    def bad_option(*args, **kwargs):
        raise ValueError("`linear_solver` must be one of 'lu', got 'x'")

    monkeypatch.setattr(solve_module, "solve", bad_option)
    assert main(["run", str(path), "-o", str(tmp_path / "o")]) == 2
    assert "solve: `linear_solver` must be one of" in capsys.readouterr().err


def test_plot_from_a_saved_result(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["run", str(write(tmp_path, OU)), "-o", str(out), "--no-figures"]) == 0
    capsys.readouterr()
    assert main(["plot", str(out / "result.nc"), "-o", str(tmp_path / "figs")]) == 0
    printed = capsys.readouterr().out.split()
    assert [Path(p).name for p in printed] == ["result_density.png", "result_relaxation.png"]
    assert all(Path(p).stat().st_size > 1000 for p in printed)
    assert main(["plot", str(tmp_path / "missing.nc")]) == 2
    assert "does not exist" in capsys.readouterr().err
    xr.Dataset({"q": ("x", [1.0, 2.0])}).to_netcdf(tmp_path / "other.nc")
    assert main(["plot", str(tmp_path / "other.nc")]) == 2
    assert "not an fpsolver result" in capsys.readouterr().err
    (tmp_path / "junk.nc").write_text("not netcdf")
    assert main(["plot", str(tmp_path / "junk.nc")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_demo_writes_its_files(tmp_path, capsys) -> None:
    assert main(["demo", "-o", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed and all(Path(p).is_file() for p in printed)


def test_validate_runs_the_source_tree_runner(tmp_path, monkeypatch, capsys) -> None:
    empty = tmp_path / "installed" / "validation"
    monkeypatch.setattr(cli, "validation_dir", lambda: empty)
    assert main(["validate", "--quick"]) == 2
    assert "ship with the source tree" in capsys.readouterr().err

    fake = tmp_path / "src" / "validation"
    fake.mkdir(parents=True)
    record = tmp_path / "argv.txt"
    (fake / "run_all.py").write_text(
        "import sys\n"
        f"open({str(record)!r}, 'w').write(' '.join(sys.argv[1:]))\n"
        "sys.exit(1 if '--quick' not in sys.argv else 0)\n"
    )
    monkeypatch.setattr(cli, "validation_dir", lambda: fake)
    assert main(["validate", "--quick", "-o", str(tmp_path / "rep")]) == 0
    assert record.read_text() == f"--quick --out {tmp_path / 'rep'}"
    assert main(["validate"]) == 1  # a failed notebook is a numerical failure
    assert record.read_text() == ""


def test_validation_dir_is_next_to_the_package() -> None:
    import fpsolver

    assert cli.validation_dir() == Path(fpsolver.__file__).resolve().parents[1] / "validation"


def test_python_m_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fpsolver", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.startswith("fpsolver ")
    proc = subprocess.run([sys.executable, "-m", "fpsolver", "run"], capture_output=True)
    assert proc.returncode == 2
