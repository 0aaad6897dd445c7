"""Full mobility tensors with an antisymmetric part on curved grids (disc, sphere, torus).

The scheme of :mod:`fpsolver.discrete.antisymmetric` on a curved grid: A's
frame components weighted by √g/(h_a h_b), Ψ at a pole or the centre of a
disc one value for the whole ring around it. Checked: the identities that
hold for every grid (mass, exact Gibbs state, M-matrix), the current
(its discrete divergence is the scheme's dp/dt), and second-order
convergence, globally and on the cells next to the pole/centre.
"""

from __future__ import annotations

import numpy as np
import pytest

import fpsolver as fp


def _rotation(a):
    return lambda u, v: [[1.0 + 0.2 * np.cos(v), a], [-a, 0.6]]


def sphere(n, a=0.8):
    g = fp.Grid.sphere(n_theta=n, n_phi=2 * n)
    energy = lambda th, ph: -1.5 * np.cos(th) + 0.5 * np.sin(th) * np.cos(ph)  # noqa: E731
    start = lambda th, ph: np.exp(2.0 * np.sin(th) * np.cos(ph - 0.5) + np.cos(th))  # noqa: E731
    return fp.FokkerPlanck(g, energy=energy, temperature=1.0, mobility=[[1.0, a], [-a, 0.6]]), start


def disc(n, a=0.8):
    g = fp.Grid.polar(r=(0, 3, n), phi=2 * n)
    energy = lambda r, ph: 0.5 * r**2 + 0.3 * r * np.cos(ph)  # noqa: E731

    def start(r, ph):
        return np.exp(-((r * np.cos(ph) - 0.7) ** 2 + (r * np.sin(ph) - 0.2) ** 2) / 0.3)

    return fp.FokkerPlanck(g, energy=energy, temperature=1.0, mobility=[[1.0, a], [-a, 0.6]]), start


def torus(n):
    g = fp.Grid.torus(theta=n, phi=n, major=2.0, minor=1.0)
    energy = lambda th, ph: np.cos(th) + 0.5 * np.sin(ph)  # noqa: E731
    return fp.FokkerPlanck(g, energy=energy, temperature=0.7, mobility=_rotation(0.9)), None


CASES = {"sphere": lambda: sphere(10)[0], "disc": lambda: disc(9)[0], "torus": lambda: torus(12)[0]}


@pytest.mark.parametrize("name", sorted(CASES))
def test_identities_hold_on_curved_grids(name):
    model = CASES[name]()
    op = fp.discretize(model)
    assert model.has_antisymmetric and not op.reversible and op.gibbs_stationary
    L = op.generator
    V = model.grid.volumes.ravel()
    scale = np.abs(L).max()
    assert np.abs(V @ L).max() <= 1e-14 * scale * V.max()  # mass
    q = np.exp(op.log_equilibrium).ravel()
    assert np.abs(L @ q).max() <= 1e-13 * scale * q.max()  # Gibbs exactly stationary
    off = L.tocoo()
    assert off.data[off.row != off.col].min() >= 0.0  # M-matrix: backward Euler keeps p ≥ 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_current_has_the_schemes_divergence(name):
    model = CASES[name]()
    g = model.grid
    op = fp.discretize(model)
    p = np.random.default_rng(1).random(g.shape) + 0.5
    fluxes = op.face_fluxes(p)
    div = np.zeros(g.shape)
    for a, f in enumerate(fluxes):
        total = f * np.broadcast_to(g.flux_areas(a), f.shape)
        if g.periodic[a]:
            div += total - np.roll(total, 1, axis=a)
        else:
            hi = [slice(None)] * g.ndim
            lo = [slice(None)] * g.ndim
            hi[a], lo[a] = slice(1, None), slice(0, -1)
            div += total[tuple(hi)] - total[tuple(lo)]
    rate = (op.generator @ p.ravel()).reshape(g.shape) * g.volumes
    assert np.abs(div + rate).max() <= 1e-12 * np.abs(rate).max()


def _coarsen(fine, p_fine, coarse):
    mass = (fine.volumes * p_fine).reshape(coarse.shape[0], 2, coarse.shape[1], 2).sum(axis=(1, 3))
    return mass / coarse.volumes


@pytest.mark.parametrize("make", [sphere, disc], ids=["sphere", "disc"])
def test_second_order_globally_and_next_to_the_pole_or_centre(make):
    """Self-convergence n → 2n → 4n; the ring error is that of the cells nearest the pole."""
    runs = []
    for n in (16, 32, 64):
        model, start = make(n)
        g = model.grid
        p0 = start(*g.mesh())
        p0 = p0 / np.sum(g.volumes * p0)
        p = model.solve(p0, 0.3, 0.3 / 200, method="tr_bdf2", save_at=[]).p.values[-1]
        runs.append((g, p))
    glob, ring = [], []
    for (gc, pc), (gf, pf) in zip(runs, runs[1:]):
        diff = np.abs(_coarsen(gf, pf, gc) - pc)
        glob.append(np.sum(gc.volumes * diff))
        k = gc.shape[0] // 8  # the same physical cap on both grids
        ring.append(np.sum(gc.volumes[:k] * diff[:k]) / np.sum(gc.volumes[:k]))
    assert 1.8 < np.log2(glob[0] / glob[1]) < 2.3, glob
    assert 1.8 < np.log2(ring[0] / ring[1]) < 2.3, ring
