"""The command line is safe to point at any file: a config cannot grant itself
permissions, wrong inputs are refused (never repaired), and every problem of the
user's -- files, folders, memory, Ctrl-C -- is one line on stderr with the
documented exit code (0 ok, 1 numerics, 2 usage/input, 130 interrupted)."""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fpsolver as fp
from fpsolver.cli import main
from fpsolver.cli.config import ConfigError, load_config, parse_config
from fpsolver.cli.expr import MAX_DEPTH, Expression, ExpressionError

OU = """\
[grid]
x = [-5, 5, 30]
[model]
energy = "x**2/2"
temperature = 1.0
[initial]
mean = 2.0
cov = 0.25
[solve]
method = "backward_euler"
dt = 0.05
t_end = 1.0
save_every = 0.25
[output]
figures = false
"""

BASE = {
    "grid": {"x": [-3.0, 3.0, 12]},
    "model": {"energy": "x**2/2", "temperature": 1.0},
    "initial": {"type": "gaussian", "mean": 0.5, "cov": 0.25},
    "solve": {"method": "backward_euler", "dt": 0.1, "t_end": 0.5},
}


def cfg(**sections):
    """BASE with `section={key: value}` updates."""
    data = copy.deepcopy(BASE)
    for section, update in sections.items():
        data.setdefault(section, {}).update(update)
    return data


def error_of(data, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, **kw)
    return str(info.value)


def write(folder: Path, text: str, name: str = "run.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def one_error_line(capsys, command: str = "run") -> str:
    """The captured stderr, checked to be exactly one `fpsolver CMD: error: ...` line."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert err.startswith(f"fpsolver {command}: error: "), err
    assert err.strip().count("\n") == 0, err
    return err


# -- 1. consent to run Python code comes from the person, never the file ----
EVIL = """\
from pathlib import Path
Path(__file__).with_name("imported.txt").write_text("the config ran code")
def energy(x):
    return x**2 / 2
"""


@pytest.fixture
def evil_module(tmp_path, monkeypatch):
    """A module that leaves a file behind when imported."""
    (tmp_path / "evil_fpsolver_mod.py").write_text(EVIL)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "evil_fpsolver_mod", raising=False)
    return tmp_path / "imported.txt"


@pytest.mark.parametrize("value", ["true", "false"])
def test_a_config_cannot_grant_itself_python(tmp_path, capsys, evil_module, value) -> None:
    text = f"allow_python = {value}\n" + OU.replace('"x**2/2"', '"evil_fpsolver_mod:energy"')
    path = write(tmp_path, text)
    assert main(["run", str(path), "-o", str(tmp_path / "out")]) == 2
    err = one_error_line(capsys)
    assert "allow_python" in err and "--allow-python" in err and "never by the file" in err
    assert not evil_module.exists() and "evil_fpsolver_mod" not in sys.modules
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="--allow-python"):
        load_config(path)
    with pytest.raises(ConfigError, match="never by the file"):
        load_config(path, allow_python=True)  # the key itself is refused, consent or not
    assert not evil_module.exists()


def test_python_code_runs_only_with_the_callers_consent(tmp_path, capsys, evil_module) -> None:
    path = write(tmp_path, OU.replace('"x**2/2"', '"evil_fpsolver_mod:energy"'))
    assert main(["run", str(path), "-o", str(tmp_path / "out")]) == 2
    err = one_error_line(capsys)
    assert "--allow-python" in err and "allow_python = true" not in err
    assert not evil_module.exists()
    assert main(["run", str(path), "-o", str(tmp_path / "out"), "--allow-python"]) == 0
    assert evil_module.exists()
    data = cfg(model={"energy": "evil_fpsolver_mod:energy"})
    assert callable(parse_config(data, allow_python=True).model.energy_function)


# -- 2. files, folders, memory and Ctrl-C: one line, the right exit code ----
def test_output_folder_that_is_a_file_or_under_one(tmp_path, capsys) -> None:
    config = write(tmp_path, OU)
    afile = write(tmp_path, "x", "afile")
    assert main(["run", str(config), "-o", str(afile)]) == 2
    assert "is a file, not a folder" in one_error_line(capsys)
    assert main(["run", str(config), "-o", str(afile / "sub")]) == 2
    assert "--outdir" in one_error_line(capsys)
    assert afile.read_text() == "x"


def test_output_folder_name_too_long(tmp_path, capsys) -> None:
    config = write(tmp_path, OU)
    assert main(["run", str(config), "-o", str(tmp_path / ("x" * 300))]) == 2
    assert "name too long" in one_error_line(capsys).lower()


def test_output_file_that_is_a_folder_is_refused_before_solving(
    tmp_path, capsys, monkeypatch
) -> None:
    config = write(tmp_path, OU)
    (tmp_path / "out" / "result.nc").mkdir(parents=True)
    calls = []
    monkeypatch.setattr(fp.FokkerPlanck, "solve", lambda *a, **k: calls.append(a))
    assert main(["run", str(config), "-o", str(tmp_path / "out")]) == 2
    err = one_error_line(capsys)
    assert "result.nc" in err and "is a folder" in err
    assert calls == []


def test_permission_errors_are_one_line(tmp_path, capsys, monkeypatch) -> None:
    import fpsolver.io

    def denied(ds, path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(fpsolver.io, "save_result", denied)
    config = write(tmp_path, OU)
    assert main(["run", str(config), "-o", str(tmp_path / "out")]) == 2
    assert "Permission denied" in one_error_line(capsys)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_unwritable_output_folder_is_refused_before_solving(tmp_path, capsys) -> None:
    config = write(tmp_path, OU)
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        assert main(["run", str(config), "-o", str(out)]) == 2
        assert "cannot write" in one_error_line(capsys)
    finally:
        out.chmod(0o700)


def test_unreadable_paths(tmp_path, capsys) -> None:
    config = write(tmp_path, OU)
    for argv in (
        ["run", str(tmp_path)],
        ["run", str(tmp_path / ("y" * 300 + ".toml"))],
        ["run", str(tmp_path / "a\x00b.toml")],
        ["run", str(config), "-o", str(tmp_path / "a\x00b")],
        ["plot", str(tmp_path / "a\x00b.nc")],
        ["plot", str(tmp_path / ("y" * 300 + ".nc"))],
        ["demo", "-o", str(config)],
    ):
        assert main(argv) == 2, argv
        one_error_line(capsys, argv[0])


@pytest.fixture
def result_file(tmp_path) -> Path:
    grid = fp.Grid(x=(-3, 3, 20))
    model = fp.FokkerPlanck(grid, energy=lambda x: x**2 / 2)
    ds = model.solve(fp.gaussian(grid, 1.0, 0.2), t_end=0.2, dt=0.1, progress=False)
    (tmp_path / "res").mkdir()
    return fp.save_result(ds, tmp_path / "res" / "good.nc")


def test_plot_refuses_bad_results_in_one_line(tmp_path, capsys, result_file) -> None:
    data = result_file.read_bytes()
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(data[: len(data) // 2])
    text = write(tmp_path, "not a netCDF file\n", "text.nc")
    import xarray as xr

    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"p": (("a",), np.arange(3.0))}).to_netcdf(foreign)
    nothing = tmp_path / "nothing.nc"
    for path in (truncated, text, foreign, nothing, tmp_path):
        assert main(["plot", str(path), "-o", str(tmp_path / "figs")]) == 2, path
        err = one_error_line(capsys, "plot")
        assert str(path.name) in err
    assert main(["plot", str(result_file), "--dpi", "100000"]) == 2
    assert "--dpi" in one_error_line(capsys, "plot")
    assert main(["plot", str(result_file), "-o", str(text)]) == 2
    assert "is a file, not a folder" in one_error_line(capsys, "plot")


def test_grid_too_large_for_memory_is_refused_up_front(tmp_path, capsys) -> None:
    config = write(tmp_path, OU.replace("x = [-5, 5, 30]", "x = [-5, 5, 1000000000000]"))
    start = time.process_time()  # CPU time: load from other processes does not count
    assert main(["run", str(config), "-o", str(tmp_path / "out")]) == 2
    err = one_error_line(capsys)
    assert time.process_time() - start < 5
    assert "memory" in err and "grid" in err and "GB" in err
    frames = OU.replace("x = [-5, 5, 30]", "x = [-5, 5, 100000]")
    frames = frames.replace("dt = 0.05", "dt = 1e-9").replace("save_every = 0.25", "")
    frames = frames.replace("t_end = 1.0", "t_end = 1.0\nmax_steps = 2000000000")
    assert main(["run", str(write(tmp_path, frames)), "-o", str(tmp_path / "out")]) == 2
    err = one_error_line(capsys)
    assert "memory" in err and "frames" in err
    assert "output.dpi" in error_of(cfg(output={"dpi": 100000}))


def test_ctrl_c_saves_the_frames_so_far(tmp_path, capsys, monkeypatch) -> None:
    import fpsolver.api.fokker_planck as fokker_planck

    real = fokker_planck.solve

    def interrupted(*args, **kwargs):
        def press_ctrl_c(t, p):
            if t > 0.3:
                raise KeyboardInterrupt

        return real(*args, callback=press_ctrl_c, **kwargs)

    monkeypatch.setattr(fokker_planck, "solve", interrupted)
    out = tmp_path / "out"
    assert main(["run", str(write(tmp_path, OU)), "-o", str(out)]) == 130
    err = one_error_line(capsys)
    saved = out / "result_interrupted.nc"
    assert "interrupted" in err and str(saved) in err
    ds = fp.open_result(saved)
    assert ds.time.values.tolist() == [0.0, 0.25]
    assert ds.attrs["interrupted"] == 1
    assert np.all(np.isfinite(ds.p.values)) and "energy" in ds and "mass" in ds
    assert not (out / "result.nc").exists()


def test_ctrl_c_elsewhere_exits_130(tmp_path, capsys, monkeypatch) -> None:
    import fpsolver.cli.config as config

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(config, "parse_config", interrupt)
    assert main(["run", str(write(tmp_path, OU)), "-o", str(tmp_path / "out")]) == 130
    assert "interrupted" in one_error_line(capsys)


# -- 3. wrong inputs are refused, not repaired --------------------------------
@pytest.mark.parametrize(
    "axis",
    ["p", "energy", "mass", "time", "free_energy", "mean", "covariance", "axis", "axis2",
     "step_size", "relative_entropy", "absorbed", "pi", "e", "exp", "where", "lambda"],
)  # fmt: skip
def test_axis_names_that_clash_are_refused(axis) -> None:
    data = cfg(grid={axis: [0.0, 1.0, 4]})
    message = error_of(data)
    assert message.startswith(f"grid.{axis}: "), message
    assert "axis name" in message


@pytest.mark.parametrize("name", ["pi", "e", "tau", "exp", "x", "if"])
def test_constants_may_not_redefine_predefined_names(name) -> None:
    message = error_of(cfg(constants={name: 3.0}))
    assert message.startswith(f"constants.{name}: "), message
    with pytest.raises(ExpressionError, match="clashes|predefined"):
        Expression("x", ["x"], constants={"pi": 3.0})


@pytest.mark.parametrize(
    ("section", "key", "value", "fragment"),
    [
        ("solve", "resume", "false", "must be true or false"),
        ("solve", "resume", 0, "must be true or false"),
        ("solve", "max_steps", 1.5, "must be an integer"),
        ("solve", "max_steps", True, "must be an integer"),
        ("solve", "rtol", "1e-3", "must be a number"),
        ("solve", "rtol", True, "must be a number"),
        ("solve", "t_max", "10", "must be a number"),
        ("solve", "save_at", [0.1, "a"], "must be a number"),
        ("solve", "save_at", 0.1, "must be a list of numbers"),
        ("solve", "linear_solver", 3, "must be a string"),
        ("solve", "checkpoint", 5, "must be a string"),
        ("solve", "checkpoint", "../elsewhere.nc", "plain file name"),
        ("solve", "checkpoint", "/tmp/elsewhere.nc", "plain file name"),
        ("solve", "progress", True, "unknown key"),
        ("solve", "callback", "numpy:cos", "unknown key"),
        ("solve", "max_step", 10, "did you mean 'max_steps'"),
        ("particles", "workers", "2", "must be an integer"),
        ("particles", "batch_size", 2.5, "must be an integer"),
        ("particles", "save_at", "0.1", "must be a list of numbers"),
        ("model", "energi", "x", "unknown key"),
        ("initial", "mea", 0.0, "unknown key"),
        ("output", "nme", "a", "unknown key"),
    ],
)
def test_every_key_is_checked(section, key, value, fragment) -> None:
    data = cfg(**{section: {key: value}})
    if section == "particles":
        data["particles"].update(n=10, dt=0.01)
    message = error_of(data)
    assert message.startswith(f"{section}.{key}"), message
    assert fragment in message, message


def test_pass_through_keys_of_the_right_type_are_kept() -> None:
    run = parse_config(
        cfg(solve={"resume": False, "max_steps": 100, "rtol": 1, "save_at": [0.1, 0.2]})
    )
    assert run.solve["resume"] is False and run.solve["max_steps"] == 100
    assert run.solve["rtol"] == 1.0 and isinstance(run.solve["rtol"], float)
    assert run.solve["save_at"] == [0.1, 0.2]


def test_unknown_keys_everywhere() -> None:
    assert error_of(dict(BASE, titel="a")).startswith("titel: unknown key")
    assert error_of(cfg(grid={"x": {"edges": [0, 1, 2], "egdes": 1}})).startswith(
        "grid.x.egdes: unknown key"
    )


@pytest.mark.parametrize(
    "name", ["a\x00b", "a\nb", "a\tb", "a\x7fb", "a/b", "a\\b", ".hidden", "", " ", "x" * 300]
)
def test_output_names_must_be_plain(name) -> None:
    assert error_of(cfg(output={"name": name})).startswith("output.name: ")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ([0.0, 1.0, float("nan")], "cells"),
        ([0.0, 1.0, float("inf")], "cells"),
        ([0.0, 1.0, 2.5], "cells"),
        ([0.0, 1.0, 10.0], "cells"),
        ([0.0, 1.0, "10"], "cells"),
        ([0.0, 1.0, True], "cells"),
        ([0.0, 1.0], "[lower, upper, cells]"),
        ([0.0, 1.0, 1], "at least 2 cells"),
        ([float("nan"), 1.0, 4], "grid.x[0]: must be finite"),
    ],
)
def test_cell_counts_must_be_integers(spec, fragment) -> None:
    message = error_of(cfg(grid={"x": spec}))
    assert message.startswith("grid.x"), message
    assert fragment in message, message


def test_a_flat_sum_is_not_deep() -> None:
    text = " + ".join(["x"] * 300)
    run = parse_config(cfg(model={"energy": text}))
    np.testing.assert_allclose(run.model.energy, 300 * run.grid.centers[0])
    long_chain = "-".join(["x"] * 1000)  # 1999 characters: within the length limit
    x = np.linspace(-1, 1, 5)
    np.testing.assert_allclose(Expression(long_chain, ["x"])(x), -998 * x)
    mixed = "1" + "".join(f" {op} x" for op in "+-*/" * 100)
    assert np.isfinite(Expression(mixed, ["x"])(x + 2)).all()
    products = " + ".join(["x*x*x"] * 100)
    np.testing.assert_allclose(Expression(products, ["x"])(x), 100 * x**3)


@pytest.mark.parametrize(
    "text",
    [
        "(" * (MAX_DEPTH + 5) + "x" + ")" * (MAX_DEPTH + 5) + "+ sin(" * 50 + "x" + ")" * 50,
        "x + (" * 60 + "x" + ")" * 60,
        "sin(" * 60 + "x" + ")" * 60,
        "-" * 60 + "x",
        "x**" + "-" * 1500 + "1",
        "x**(" + "+".join(["1"] * 900) + ")",
        "x**(" + "-".join(["1"] * 900) + ")",
        "exp(" + "+".join(["x"] * 900) + ")",
        "(" * 1000 + "x" + ")" * 1000,
    ],
)
def test_deep_nesting_and_bombs_are_still_refused_or_bounded(text) -> None:
    start = time.process_time()  # CPU time: load from other processes does not count
    try:
        f = Expression(text, ["x"], name="model.energy")
    except ExpressionError as err:
        assert str(err).startswith("model.energy: ")
        assert len(str(err)) < 600
    else:
        f(np.linspace(-1, 1, 7))
    assert time.process_time() - start < 1


def test_step_and_frame_counts_are_checked_without_overflow() -> None:
    message = error_of(cfg(solve={"t_end": 1e300, "dt": 1e-10}))
    assert message.startswith("solve.dt: dt = 1e-10 needs") and "max_steps" in message
    data = cfg(solve={"t_end": 1e300, "save_every": 1e-300, "method": "adaptive"})
    message = error_of(data)
    assert message.startswith("solve: too large for memory") and "frames" in message


def test_step_budget_and_checkpoint_stay_with_the_run(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = OU.replace('method = "backward_euler"', 'method = "adaptive"')
    text = text.replace("t_end = 1.0", "t_end = 1.0\nmax_steps = 2")
    assert main(["run", str(write(tmp_path, text)), "-o", "out"]) == 2
    assert "max_steps" in one_error_line(capsys)
    text = OU.replace("t_end = 1.0", 't_end = 1.0\ncheckpoint = "run.ckpt.nc"')
    assert main(["run", str(write(tmp_path, text)), "-o", "out"]) == 0
    assert (tmp_path / "out" / "run.ckpt.nc").is_file()
    assert not (tmp_path / "run.ckpt.nc").exists()
