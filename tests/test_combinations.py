"""Every model that can be built can be solved, analysed and sampled.

{energy, force, drift} × {reflecting, periodic, absorbing, mixed per side}
× {1-D, 2-D, 3-D}, each through solve, stationary (or its clear refusal),
spectrum, particles and compare.
"""

import numpy as np
import pytest

import fpsolver as fp

SIZES = {1: 12, 2: 7, 3: 4}
NAMES = ("x", "y", "z")


def _grid(ndim: int, walls: str) -> fp.Grid:
    axes = {n: (-1.5, 1.5, SIZES[ndim]) for n in NAMES[:ndim]}
    periodic = ("x",) if walls == "periodic" or (walls == "mixed" and ndim > 1) else ()
    return fp.Grid(periodic=periodic, **axes)


def _boundary(ndim: int, walls: str):
    if walls == "absorbing":
        return "absorbing"
    if walls == "mixed":  # 1-D: reflecting and absorbing; else x periodic, one absorbing side
        if ndim == 1:
            return {"x": ("reflecting", "absorbing")}
        return {n: ("reflecting", "absorbing") for n in NAMES[1:ndim]}
    return "reflecting"


def _model(kind: str, ndim: int, walls: str) -> fp.FokkerPlanck:
    grid = _grid(ndim, walls)
    boundary = _boundary(ndim, walls)

    def energy(*xs):
        return sum(0.5 * x**2 + 0.1 * np.cos(np.pi * x) for x in xs)

    if kind == "energy":
        return fp.FokkerPlanck(grid, energy=energy, temperature=0.7, boundary=boundary)
    if kind == "force":
        force = [0.4] + [-0.2] * (ndim - 1)
        return fp.FokkerPlanck(grid, energy=energy, temperature=0.7, force=force,
                               boundary=boundary)  # fmt: skip

    def drift(*xs):
        return [-xs[(a + 1) % ndim] - 0.5 * xs[a] if ndim > 1 else -xs[0] for a in range(ndim)]

    return fp.FokkerPlanck.from_drift(grid, drift, 0.5, boundary=boundary)


CASES = [
    (kind, ndim, walls)
    for kind in ("energy", "force", "drift")
    for walls in ("reflecting", "periodic", "absorbing", "mixed")
    for ndim in (1, 2, 3)
]


@pytest.mark.parametrize(("kind", "ndim", "walls"), CASES)
def test_model_runs_through_every_tool(kind, ndim, walls):
    model = _model(kind, ndim, walls)
    grid = model.grid
    p0 = fp.gaussian(grid, [0.3] * ndim, 0.3)
    ds = model.solve(p0, 0.2, dt=0.05, save_every=0.1)
    assert ds.time.values.tolist() == [0.0, 0.1, 0.2]  # k · save_every, exactly
    for v in ("p", "mass", "free_energy", "mean", "covariance"):
        assert np.all(np.isfinite(ds[v].values)), v
    absorbing = model.boundary.absorbing
    assert ("absorbed" in ds) is absorbing
    assert ("relative_entropy_ss" in ds) is (not model.reversible and not absorbing)
    if absorbing:
        assert ds.mass.values[-1] < 1.0
        with pytest.raises(ValueError, match="absorbing walls"):
            model.stationary()
    else:
        np.testing.assert_allclose(ds.mass.values, 1.0, rtol=0, atol=1e-13)
        p_ss = model.stationary()
        assert p_ss.attrs["residual"] < 1e-10 * np.abs(model.generator().diagonal()).max()
    spec = model.spectrum(2)
    assert np.all(np.real(spec.rate.values) >= -1e-10)
    parts = fp.simulate_particles(model, p0, n=400, t_end=0.2, dt=0.05, save_every=0.1, seed=1)
    np.testing.assert_array_equal(parts.time.values, ds.time.values)
    report = fp.compare(ds, parts)
    assert report.sizes["time"] == 3 and np.all(np.isfinite(report.l1.values))
