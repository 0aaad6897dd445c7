"""The benchmark problem definitions and the accuracy benchmark's reference tools.

``benchmarks/`` is not a package: the modules are loaded by path.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize

import fpsolver as fp
from fpsolver.cli.demo import double_well_model

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    if name in sys.modules:
        return sys.modules[name]
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # accuracy.py imports its sibling problems.py
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


problems = _load("problems")
accuracy = _load("accuracy")
fine_level = _load("fine_level")
P5 = problems.PROBLEMS["P5"]
P6 = problems.PROBLEMS["P6"]

# Müller & Brown (1979): the three minima
KNOWN_MINIMA = [(-0.558, 1.442), (0.623, 0.028), (-0.050, 0.467)]


@pytest.mark.parametrize("start", KNOWN_MINIMA)
def test_p5_minima_are_mueller_browns(start):
    res = minimize(lambda v: P5.energy(v[0], v[1]), start, method="Nelder-Mead",
                   options={"xatol": 1e-9, "fatol": 1e-12})  # fmt: skip
    assert np.allclose(res.x, start, atol=1e-3)
    (xlo, xhi), (ylo, yhi) = P5.box
    assert xlo < res.x[0] < xhi and ylo < res.x[1] < yhi
    # P5 is the standard surface scaled: same minima, energies −146.70, −108.17, −80.77
    assert P5.energy(*res.x) * problems.MB_SCALE == pytest.approx(
        problems.muller_brown(*res.x), rel=1e-14
    )


def test_muller_brown_minimum_energies():
    values = [float(problems.muller_brown(x, y)) for x, y in problems.MB_MINIMA]
    assert np.allclose(values, [-146.6995, -108.1667, -80.7678], atol=1e-3)


def test_p5_wells_exchange_mass_by_t_end():
    """At least 5 % of the mass leaves the starting well (nearest-minimum basins)."""
    model = P5.model(48)
    p0 = P5.initial(model).values
    p, _ = accuracy.chebyshev_expm(model, p0, P5.t_end)
    x, y = model.grid.mesh()
    dist = np.stack([(x - mx) ** 2 + (y - my) ** 2 for mx, my in problems.MB_MINIMA])
    basin = np.argmin(dist, axis=0)
    start = basin[np.unravel_index(np.argmax(p0), p0.shape)]
    mass = model.grid.volumes * p
    assert mass[basin == start].sum() > 0.4
    assert mass[basin != start].sum() >= 0.05
    assert all(mass[basin == k].sum() >= 0.05 for k in range(3))  # all three wells


@pytest.mark.parametrize("axes", [(0, 1), (1, 2), (0, 2)])
def test_p6_is_not_additively_separable(axes):
    """The mixed difference of E over every pair of axes is non-zero on the grid."""
    grid = P6.grid(12)
    E = P6.energy(*grid.mesh())
    a, b = axes
    mixed = np.diff(np.diff(E, axis=a), axis=b)
    assert np.max(np.abs(mixed)) > 0.01
    # the same difference of an additively separable energy vanishes
    sep = sum(m**4 for m in grid.mesh())
    assert np.max(np.abs(np.diff(np.diff(sep, axis=a), axis=b))) < 1e-12


def test_p6_is_refused_by_the_separable_path():
    if "separable" not in fp.METHODS:
        pytest.skip("no separable method")
    model = P6.model(8)
    with pytest.raises(ValueError, match="separable"):
        model.solve(P6.initial(model), 0.1, method="separable")


def test_p2_is_the_demo_model():
    model = problems.PROBLEMS["P2"].model(16)
    demo = double_well_model(16)
    assert model.grid == demo.grid and model.temperature == demo.temperature
    assert abs(model.generator() - demo.generator()).max() == 0.0


@pytest.mark.parametrize("name, n, factor", [("P5", 24, 3), ("P6", 12, 4), ("P1", 40, 8)])
def test_restriction_conserves_mass(name, n, factor):
    problem = problems.PROBLEMS[name]
    fine = problem.grid(n)
    rng = np.random.default_rng(0)
    p = rng.random(fine.shape)
    coarse = problem.grid(n // factor)
    q = problems.restrict(p, fine, factor)
    assert q.shape == coarse.shape
    # each coarse cell holds exactly the mass of its children
    children = (
        (fine.volumes * p)
        .reshape([k for m in coarse.shape for k in (m, factor)])
        .sum(axis=tuple(range(1, 2 * fine.ndim, 2)))
    )
    assert np.allclose(coarse.volumes * q, children, rtol=1e-14, atol=0)
    assert np.sum(coarse.volumes * q) == pytest.approx(np.sum(fine.volumes * p), rel=1e-14)


def test_restriction_of_a_non_uniform_grid():
    fine = fp.Grid(x=[0.0, 0.1, 0.4, 0.5, 1.0], y=[0.0, 1.0, 3.0])
    p = np.arange(8.0).reshape(4, 2) + 1
    q = problems.restrict(p, fine, 2)
    assert q.shape == (2, 1)
    assert np.sum(q * np.array([[0.4 * 3], [0.6 * 3]])) == pytest.approx(
        np.sum(fine.volumes * p), rel=1e-15
    )
    with pytest.raises(ValueError, match="refinement"):
        problems.restrict(p, fine, 3)


def test_ou_cell_averages_are_the_exact_density():
    problem = problems.PROBLEMS["P4"]
    grid = problem.grid(20)
    q = problems.ou_cell_averages(grid, problem.mean, problem.variance, problem.t_end)
    assert np.sum(grid.volumes * q) == pytest.approx(1.0, abs=1e-5)
    fine = problems.ou_cell_averages(problem.grid(60), problem.mean, problem.variance, 1.0)
    assert np.allclose(problems.restrict(fine, problem.grid(60), 3), q, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name, n", [("P5", 20), ("P2", 20), ("P6", 8)])
def test_chebyshev_reference_matches_expm_multiply(name, n):
    problem = problems.PROBLEMS[name]
    model = problem.model(n)
    p0 = problem.initial(model)
    p, terms = accuracy.chebyshev_expm(model, p0.values, problem.t_end)
    ds = model.solve(p0, problem.t_end, dt=problem.t_end, method="exponential", save_at=[])
    assert np.sum(model.grid.volumes * np.abs(p - ds.p[-1].values)) < 1e-11
    assert terms > 10


def _quadratic_averages(edges_x, edges_y):
    """Exact cell averages of (1 + 2x − 3x²)(2 − y + 4y²) on the cells between the edges."""

    def mean(edges, c0, c1, c2):
        a, b = edges[:-1], edges[1:]
        return c0 + c1 * (a + b) / 2 + c2 * (a * a + a * b + b * b) / 3

    return np.outer(mean(edges_x, 1.0, 2.0, -3.0), mean(edges_y, 2.0, -1.0, 4.0))


@pytest.mark.parametrize("factor", [2, 3])
def test_prolongation_is_exact_on_quadratics_and_conserves(factor):
    ex, ey = np.linspace(-1.0, 2.0, 7), np.linspace(0.0, 1.0, 5)
    coarse = _quadratic_averages(ex, ey)
    fine = problems.prolong(coarse, factor)
    fx = np.linspace(-1.0, 2.0, 6 * factor + 1)
    fy = np.linspace(0.0, 1.0, 4 * factor + 1)
    assert np.allclose(fine, _quadratic_averages(fx, fy), rtol=0, atol=1e-13)
    rough = np.random.default_rng(1).random((5, 4))
    grid = fp.Grid(x=(0.0, 1.0, 5 * factor), y=(0.0, 1.0, 4 * factor))
    back = problems.restrict(problems.prolong(rough, factor), grid, factor)
    assert np.allclose(back, rough, rtol=1e-14, atol=0)


def test_prolongation_converges_at_third_order():
    errors = []
    for n in (16, 32, 64):
        edges = np.linspace(0.0, 1.0, n + 1)
        averages = (np.sin(3 * edges[1:]) - np.sin(3 * edges[:-1])) / 3 * n
        fine_edges = np.linspace(0.0, 1.0, 2 * n + 1)
        exact = (np.sin(3 * fine_edges[1:]) - np.sin(3 * fine_edges[:-1])) / 3 * 2 * n
        errors.append(np.max(np.abs(problems.prolong(averages, 2) - exact)))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all((orders > 2.8) & (orders < 3.2)), orders
    with pytest.raises(ValueError, match="at least 3 cells"):
        problems.prolong(np.ones((2, 5)), 2)


def test_richardson_references_beat_the_fine_grid_on_p4():
    """Richardson in h² on P4 (exact answer known) gains an order of magnitude.

    Both ways: on the partner's grid (accuracy.py) and carried back onto the
    fine grid by prolongation (fine_level.py); measured 25× and 23×.
    """
    problem = problems.PROBLEMS["P4"]
    p48, _, _ = accuracy.exact_solution(problem, 48)
    p24, _, _ = accuracy.exact_solution(problem, 24)
    g24, g48 = problem.grid(24), problem.grid(48)

    def exact(grid):
        return problems.ou_cell_averages(grid, problem.mean, problem.variance, problem.t_end)

    plain = problems.restrict(p48, g48, 2)
    extrapolated = accuracy.extrapolate(problem, p48, 48, 24, p24)
    assert accuracy.l1(g24, extrapolated, exact(g24)) < accuracy.l1(g24, plain, exact(g24)) / 10
    corrected = fine_level.corrected(problem, 48, p48, 24, p24)
    assert accuracy.l1(g48, corrected, exact(g48)) < accuracy.l1(g48, p48, exact(g48)) / 10
    assert np.sum(g48.volumes * corrected) == pytest.approx(np.sum(g48.volumes * p48), rel=1e-13)


@pytest.mark.parametrize("name", ["P4", "P6"])
def test_grid_solution_is_exact_in_time_with_or_without_the_separable_path(name):
    problem = problems.PROBLEMS[name]
    model = problem.model(8)
    assert (fp.discretize(model).separable is not None) == (name == "P4")
    p0 = problem.initial(model)
    ds = model.solve(p0, problem.t_end, dt=problem.t_end, method="exponential", save_at=[])
    p = accuracy.grid_solution(problem, 8)
    assert np.sum(model.grid.volumes * np.abs(p - ds.p[-1].values)) < 1e-11


def test_runs_that_would_assemble_too_much_are_skipped_by_memory(monkeypatch):
    P4 = problems.PROBLEMS["P4"]
    pages = 24 * 2**30 // 4096  # a 24 GiB machine of 4 KiB pages
    monkeypatch.setattr(accuracy.os, "sysconf", lambda k: 4096 if k == "SC_PAGE_SIZE" else pages)
    assert "24 GiB" in accuracy.memory_skip(P4, "tr_bdf2", 432)  # 80 M cells × 900 B
    assert "assembling L" in accuracy.memory_skip(P6, "default", 432)  # not separable
    assert accuracy.memory_skip(P4, "default", 432) is None  # the exact separable path
    assert accuracy.memory_skip(P4, "separable", 432) is None
    assert accuracy.memory_skip(P4, "tr_bdf2", 144) is None  # 3 M cells: 2.5 GiB
    P2, P5 = problems.PROBLEMS["P2"], problems.PROBLEMS["P5"]
    # 2-D: the sparse LU's fill, 100·log2(N) bytes a cell (N = 4096²: 38 GiB)
    assert "the sparse LU" in accuracy.memory_skip(P5, "default", 4096)
    assert "the sparse LU" in accuracy.memory_skip(P2, "bdf2", 4096)
    assert accuracy.memory_skip(P2, "default", 4096) is None  # separable
    assert accuracy.memory_skip(P2, "tr_bdf2", 1024) is None  # 2 GiB
    need, _ = accuracy.memory_need(P5, "tr_bdf2", 576)
    assert 1.6e3 < need / 576**2 < 2.0e3  # measured: 1606 bytes a cell at 576²


def test_an_exponential_run_over_the_budget_is_listed_as_skipped():
    problem = problems.PROBLEMS["P2"]
    skipped, logged = {}, []
    trials = accuracy.scan_family(
        problem, "exponential", [48], 1e-2, {}, lambda: 0.0, logged.append, [], skipped
    )
    assert trials == [] and "skipped" in logged[0]
    assert skipped["exponential"].startswith("not run on N = 48: estimated")
    r = accuracy.LevelResult(1e-2, [48], skipped=skipped)
    assert any("| exponential | not run on N = 48" in row for row in accuracy.family_table([r]))


def test_separable_reference_agrees_with_chebyshev():
    """A separable reference is integrated per axis and checked against Chebyshev."""
    setup = accuracy.Setup("P2", (8, 12, 16), (1e-2,), 32, (16,))
    p, terms, _ = accuracy.exact_solution(setup.problem, 16)
    assert terms == 0  # the separable path, not the expansion
    check = accuracy.cross_check(setup)
    assert check["check_grid"] == 16 and check["check_l1"] < 1e-12
    model = setup.problem.model(16)
    cheb, _ = accuracy.chebyshev_expm(model, setup.problem.initial(model).values, 5.0)
    assert accuracy.l1(model.grid, p, cheb) < 1e-12


def test_cached_references_are_small():
    for path in (BENCH / "data").glob("*.npz"):
        assert path.stat().st_size < accuracy.CACHE_LIMIT


def test_accuracy_tables_for_one_problem(tmp_path):
    out = tmp_path / "accuracy.md"
    assert accuracy.main(["--quick", "--problems", "P1", "--out", str(out), "--quiet"]) == 0
    text = out.read_text()
    assert "## P1" in text and "|---" in text and "Goal default" in text
