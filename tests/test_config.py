"""TOML run configs: they build the same objects as the Python API, and every
mistake is reported with its key and the reason."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

import fpsolver as fp
from fpsolver.cli.config import ConfigError, load_config, parse_config

BASE = {
    "title": "double well",
    "grid": {"x": [-2.5, 2.5, 16], "y": [-2.0, 2.0, 12]},
    "model": {"energy": "(x**2 - 1)**2 + 0.5*y**2", "temperature": 0.5},
    "initial": {"type": "gaussian", "mean": [-1, 0], "cov": 0.04},
    "solve": {"method": "bdf2", "dt": 0.01, "t_end": 1.0, "save_every": 0.1},
}


def cfg(**changes):
    """BASE with `section={key: value}` updates; a value of None deletes the key."""
    data = copy.deepcopy(BASE)
    for section, upd in changes.items():
        if upd is None:
            data.pop(section, None)
            continue
        if not isinstance(upd, dict):
            data[section] = upd
            continue
        data.setdefault(section, {})
        for k, v in upd.items():
            if v is None:
                data[section].pop(k, None)
            else:
                data[section][k] = v
    return data


def error_of(data, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, **kw)
    return str(info.value)


def test_builds_the_same_objects_as_the_api() -> None:
    run = parse_config(cfg())
    grid = fp.Grid(x=(-2.5, 2.5, 16), y=(-2.0, 2.0, 12))
    model = fp.FokkerPlanck(grid, lambda x, y: (x**2 - 1) ** 2 + 0.5 * y**2, 0.5)
    assert run.grid == grid
    np.testing.assert_array_equal(run.model.energy, model.energy)
    assert (run.model.generator() != model.generator()).nnz == 0
    np.testing.assert_array_equal(run.p0, fp.gaussian(grid, (-1, 0), 0.04).values)
    assert run.solve == {"t_end": 1.0, "method": "bdf2", "dt": 0.01, "save_every": 0.1}
    assert run.particles is None
    assert run.output == {"figures": True, "animation": False, "dpi": 100, "name": "result"}
    assert run.title == "double well"


def test_fields_as_expressions_lists_and_tables() -> None:
    run = parse_config(
        cfg(
            constants={"k": 2.0},
            grid={"periodic": ["y"], "y": [0.0, 6.283185307179586, 12]},
            model={
                "energy": "k * x**2 / 2 + cos(y) - 0.3*y",
                "mobility": ["1 + 0.5*tanh(x)", 2.0],
                "force": ["0", "0.5*sin(y)"],
                "boundary": {"x": ["absorbing", "reflecting"]},
            },
            initial={
                "type": "expression",
                "expression": "exp(-(x - 0.5)**2)",
                "mean": None,
                "cov": None,
            },
        )
    )
    m = run.model
    x, y = run.grid.mesh()
    np.testing.assert_array_equal(m.energy, 2.0 * x**2 / 2 + np.cos(y) - 0.3 * y)
    k = m.mobility_cells()
    np.testing.assert_array_equal(k[0], np.broadcast_to(1 + 0.5 * np.tanh(x), run.grid.shape))
    np.testing.assert_array_equal(k[1], np.full(run.grid.shape, 2.0))
    np.testing.assert_array_equal(m.force_at(1, (x, y)), np.broadcast_to(0.5 * np.sin(y), x.shape))
    assert m.boundary.sides == (("absorbing", "reflecting"), ("periodic", "periodic"))
    p = np.broadcast_to(np.exp(-((x - 0.5) ** 2)), run.grid.shape)
    np.testing.assert_allclose(run.p0, p / np.sum(p * run.grid.volumes), rtol=1e-14)
    assert abs(np.sum(run.p0 * run.grid.volumes) - 1) < 1e-14


def test_constant_fields_become_numbers() -> None:
    run = parse_config(cfg(model={"mobility": "2*0.5 + 1", "force": ["0", "1/4"]}))
    assert run.model.mobility_function is None
    np.testing.assert_array_equal(run.model.mobility_cells(), 2.0)
    assert run.model.force_at(1, run.grid.mesh()) == 0.25


def test_other_initial_types_and_edges() -> None:
    run = parse_config(cfg(initial={"type": "uniform", "mean": None, "cov": None}))
    np.testing.assert_allclose(run.p0, 1 / 20.0, rtol=1e-14)
    run = parse_config(cfg(initial={"type": "equilibrium", "mean": None, "cov": None}))
    np.testing.assert_allclose(run.p0, run.model.equilibrium().values, rtol=1e-14)
    run = parse_config(cfg(grid={"y": {"edges": [-2.0, -0.5, 0.0, 1.0, 2.0]}}))
    np.testing.assert_array_equal(run.grid.edges[1], [-2.0, -0.5, 0.0, 1.0, 2.0])
    run = parse_config(cfg(initial={"cov": [[0.04, 0.01], [0.01, 0.09]]}))
    cov = np.array([[0.04, 0.01], [0.01, 0.09]])
    np.testing.assert_array_equal(run.p0, fp.gaussian(run.grid, (-1, 0), cov).values)


def test_equilibrium_end_and_solver_options() -> None:
    run = parse_config(cfg(solve={"t_end": "equilibrium", "tol": 1e-6, "t_max": 50.0}))
    assert run.solve["t_end"] == "equilibrium"
    assert run.solve["tol"] == 1e-6 and run.solve["t_max"] == 50.0


def test_particles_section() -> None:
    run = parse_config(cfg(particles={"n": 1000, "dt": 1e-3, "seed": 3}))
    assert run.particles == {"n": 1000, "dt": 1e-3, "seed": 3, "save_every": 0.1}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": {"temperature": -1}}, "model.temperature: must be positive, got -1"),
        ({"model": {"temperature": "hot"}}, "model.temperature: must be a number, got a string"),
        ({"model": {"temperature": None}}, "model.temperature: missing"),
        (
            {"model": {"temperatur": 1.0}},
            "model.temperatur: unknown key (did you mean 'temperature'?)",
        ),
        ({"model": {"energy": "x.__class__"}}, "model.energy: not allowed: attribute access"),
        ({"model": {"energy": "9**9**9"}}, "model.energy: exponent towers"),
        ({"model": {"energy": "log(x)"}}, "model.energy: 'log(x)' is not finite on the grid"),
        ({"model": {"energy": "numpy:cos"}}, "model.energy: 'numpy:cos' refers to Python code"),
        ({"model": {"energy": [1, 2]}}, "model.energy: must be a number or an expression string"),
        ({"model": {"mobility": -1.0}}, "model.mobility: must be positive, got -1.0"),
        ({"model": {"mobility": [1.0, 0.0]}}, "model.mobility[1]: must be positive, got 0.0"),
        ({"model": {"mobility": [1.0]}}, "model.mobility: must be a list with one entry per axis"),
        ({"model": {"force": ["0", "q"]}}, "model.force[1]: unknown name 'q'"),
        ({"model": {"boundary": "sticky"}}, "model.boundary: must be one of reflecting, absorbing"),
        ({"model": {"boundary": {"z": "absorbing"}}}, "model.boundary.z: unknown key"),
        ({"model": {"boundary": {"x": ["absorbing"] * 3}}}, "model.boundary.x: must be one of"),
        ({"grid": {"x": [-1, 1, 10.5]}}, "grid.x[2]: must be an integer, got 10.5"),
        ({"grid": {"x": [1, -1, 10]}}, "grid.x: needs lower < upper, got [1, -1]"),
        ({"grid": {"x": [-1, 1, 1]}}, "grid.x[2]: needs at least 2 cells, got 1"),
        ({"grid": {"x": [-1, 1]}}, "grid.x: must be [lower, upper, cells]"),
        ({"grid": {"x": {"edges": [0, 2, 1]}}}, "grid.x.edges: must be strictly increasing"),
        ({"grid": {"x": {"edge": [0, 1, 2]}}}, "grid.x.edge: unknown key (did you mean 'edges'?)"),
        ({"grid": {"periodic": ["z"]}}, "grid.periodic: names unknown axes ['z']"),
        ({"grid": {"time": [0, 1, 4]}}, "grid.time: axis names must be identifiers"),
        ({"grid": None}, "grid: missing; this section is required"),
        ({"initial": None}, "initial: missing"),
        ({"initial": {"type": "delta"}}, "initial.type: must be one of gaussian, expression"),
        ({"initial": {"mean": [0]}}, "initial.mean: needs 2 value(s)"),
        ({"initial": {"cov": -0.1}}, "initial.cov: must be positive, got -0.1"),
        (
            {"initial": {"cov": [[1, 2], [2, 1]]}},
            "initial.cov: must be symmetric positive definite",
        ),
        ({"initial": {"sigma": 1}}, "initial.sigma: unknown key"),
        (
            {"initial": {"type": "expression", "mean": None, "cov": None, "expression": "x"}},
            "initial.expression: must be non-negative",
        ),
        ({"solve": {"t_end": -1.0}}, "solve.t_end: must be positive, got -1.0"),
        (
            {"solve": {"t_end": "forever"}},
            'solve.t_end: must be a positive number or "equilibrium"',
        ),
        ({"solve": {"t_end": None}}, "solve.t_end: missing"),
        ({"solve": {"dt": 2.0}}, "solve.dt: must not exceed t_end = 1, got 2"),
        ({"solve": {"method": "rk4"}}, "solve.method: unknown method 'rk4'; valid:"),
        ({"solve": {"steps": 10}}, "solve.steps: unknown key"),
        ({"particles": {"n": 0, "dt": 0.01}}, "particles.n: must be positive, got 0"),
        (
            {"particles": {"n": 100, "dt": 0.01, "seed": -1}},
            "particles.seed: must be a non-negative",
        ),
        ({"particles": {"n": 100}}, "particles.dt: missing"),
        (
            {"particles": {"n": 10, "dt": 0.1}, "solve": {"t_end": "equilibrium"}},
            "particles: a particle check needs a numeric solve.t_end",
        ),
        ({"output": {"animation": "avi"}}, 'output.animation: must be false, "gif" or "mp4"'),
        ({"output": {"name": "../x"}}, "output.name: must be a plain file stem"),
        ({"output": {"dpi": 0}}, "output.dpi: must be positive"),
        ({"constants": {"pi_": "3"}}, "constants.pi_: must be a number"),
        ({"extra": {}}, "extra: unknown key"),
        ({"allow_python": "yes"}, "allow_python: a config cannot give consent"),
    ],
)
def test_errors_name_the_key_and_the_reason(changes, message) -> None:
    assert message in error_of(cfg(**changes))


def test_python_references_are_opt_in(tmp_path: Path) -> None:
    """Consent to import Python code comes from the caller, never from the file."""
    data = cfg(model={"energy": "fpsolver.core.analytic:gaussian_pdf"})
    assert "--allow-python" in error_of(data)
    data = cfg(model={"mobility": "numpy:cosh", "energy": "x**2/2 + y**2/2"})
    assert "refers to Python code" in error_of(data)
    run = parse_config(data, allow_python=True)
    x, y = run.grid.mesh()
    np.testing.assert_array_equal(run.model.mobility_cells()[0], np.cosh(x) * np.ones_like(y))
    assert run.model.mobility_function is np.cosh
    data["allow_python"] = True  # the file cannot grant it, with or without consent
    assert "a config cannot give consent" in error_of(data)
    assert "a config cannot give consent" in error_of(data, allow_python=True)


def test_load_config_reads_toml_and_reports_syntax(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(
        '[grid]\nx = [-3, 3, 30]\n[model]\nenergy = "x**2/2"\ntemperature = 1\n'
        "[initial]\nmean = 0.5\ncov = 0.2\n[solve]\nt_end = 0.5\ndt = 0.1\n"
    )
    run = load_config(path)
    assert run.grid.shape == (30,) and run.title == "run"
    path.write_text("[grid\nx = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read the config"):
        load_config(tmp_path / "missing.toml")


def test_tensor_mobility_builds_the_same_generator_as_the_api() -> None:
    grid = fp.Grid(x=(-2.5, 2.5, 16), y=(-2.0, 2.0, 12))
    energy = lambda x, y: (x**2 - 1) ** 2 + 0.5 * y**2  # noqa: E731
    constant = parse_config(cfg(model={"mobility": [[1.0, 0.4], [-0.2, 0.8]]})).model
    api = fp.FokkerPlanck(grid, energy, 0.5, mobility=[[1.0, 0.4], [-0.2, 0.8]])
    assert constant.has_antisymmetric
    assert abs(constant.generator() - api.generator()).max() == 0.0
    field = parse_config(cfg(model={"mobility": [["1", "0.3*tanh(x)"], ["0.3*tanh(x)", 1]]}))
    api = fp.FokkerPlanck(
        grid, energy, 0.5, mobility=lambda x, y: [[1.0, 0.3 * np.tanh(x)], [0.3 * np.tanh(x), 1.0]]
    )
    assert field.model.is_tensor and not field.model.has_antisymmetric
    assert abs(field.model.generator() - api.generator()).max() <= 1e-15
    message = error_of(cfg(model={"mobility": [[1.0, 0.4]]}))
    assert "model.mobility" in message and "2 rows" in message
    message = error_of(cfg(model={"mobility": [[1.0, 2.0], [2.0, 1.0]]}))
    assert "positive definite" in message
