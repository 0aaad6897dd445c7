r"""Recall and Learn (the theory notes' Algorithm 14) on the grid or with particles.

Given an energy E(x; θ), visible data v_1 … v_n and a temperature T,
every iteration k does

1. **Recall.** Relax a density p towards q_{θ_k} by the stochastic
   dynamics: on the grid, to equilibrium (the exact discrete Gibbs density,
   the t → ∞ limit of the Fokker–Planck flow) or for a fixed time τ with
   :func:`fpsolver.solve`, warm-started from the previous iteration's p;
   with particles, ``recall_steps`` Euler–Maruyama steps of persistent
   chains (positions carried from one iteration to the next). With hidden
   axes the clamped phase is recalled too: the exact conditional densities
   q(h | v_i) on the grid, or one persistent chain per data sample moving
   on the hidden axes with v clamped at v_i.
2. **Learn.** θ_{k+1} = θ_k − lr (data term − model term), with the model
   term ⟨∂E/∂θ⟩_p over the recalled density (the notes' replacement
   q → p in Lemma 13) and the data term the clamped average of ∂E/∂θ.
   With p = q this is gradient descent on F_clamped − F_free = −T ℓ(θ)
   (see :mod:`fpsolver.analysis.learning`).

The gauge fix of the notes, E → E − E(x*), is applied with x* the centre
of the grid's box unless another point is given; it changes neither q nor
the update, only the level of each reported free energy.

Why not the notes' step 2 as printed ("minimise −T ln Z_θ")? Without the
clamped term the data never enter, and in the E(x*) gauge −T ln Z_θ =
T ln q_θ(x*): descending it drives the density away from x*. The clamped
term is what makes the fixed point the maximum of the likelihood.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..analysis.latent import restrict, visible_samples
from ..analysis.learning import (
    LangevinChains,
    LearningTerms,
    ParametricEnergy,
    grid_learning_terms,
)
from ..core import diagnostics as dg
from ..core.grid import Grid, require_flat
from ..sampling.particles import histogram_free_energy
from .fokker_planck import FokkerPlanck
from .runs import solve

__all__ = ["LearningDiverged", "recall_and_learn"]


class LearningDiverged(FloatingPointError):
    """Recall and Learn stopped because the free energy blew up (or θ left the finite numbers).

    Attributes
    ----------
    result : xarray.Dataset or None
        The trajectory up to the last acceptable iteration (None if the first
        one already failed), as
        :func:`recall_and_learn` returns it (``attrs["stopped"]`` holds the
        message).
    """

    def __init__(self, message: str, result: Any) -> None:
        super().__init__(message)
        self.result = result


_RECALLS = ("grid", "particles")


class _GridRecall:
    """Step 1 on the grid: exact equilibrium, or a warm-started solve for time τ."""

    def __init__(self, grid: Grid, temperature: float, relax: Any, mobility: Any) -> None:
        self.grid, self.temperature, self.mobility = grid, temperature, mobility
        self.relax = relax
        self.p = np.full(grid.shape, 1.0 / float(np.sum(grid.volumes)))

    def __call__(self, energy: ParametricEnergy, theta: np.ndarray, terms: LearningTerms):
        grid, T = self.grid, self.temperature
        if self.relax == "equilibrium":
            self.p = terms.gibbs
        else:
            model = FokkerPlanck(grid, terms.energy, T, mobility=self.mobility)
            p0 = self.p / float(np.sum(grid.volumes * self.p))
            self.p = np.maximum(solve(model, p0, self.relax, save_at=[])["p"].values[-1], 0.0)
        g = energy.theta_gradient(grid.names, grid.mesh(), theta)
        w = grid.volumes * self.p
        model_term = np.array([float(np.sum(w * ga)) for ga in g])
        f_recall = dg.free_energy(grid.volumes, terms.energy, T, self.p)
        kl = dg.relative_entropy(grid.volumes, np.log(terms.gibbs), self.p)
        return model_term, terms.data_term, f_recall, kl


class _ParticleRecall:
    """Step 1 with persistent Euler–Maruyama chains (free and, with hidden axes, clamped).

    The chains start in equilibrium at θ0: the free ones drawn from the
    grid's Gibbs density (a cell with probability V q, uniform inside it),
    the clamped ones from q(h | v_i) on the hidden cells.
    """

    def __init__(self, grid: Grid, data: np.ndarray, first: LearningTerms, options: dict) -> None:
        self.grid, self.data = grid, data
        self.vis = [grid.axis(n) for n in options["visible"]]
        self.hid = [a for a in range(grid.ndim) if a not in self.vis]
        self.steps, self.dt = options["recall_steps"], options["dt"]
        rng = options["rng"]
        common = {"temperature": options["temperature"], "mobility": options["mobility"]}
        start = _draw(grid, range(grid.ndim), grid.volumes * first.gibbs, options["particles"], rng)
        self.free = LangevinChains(grid, start, moving=range(grid.ndim), rng=rng, **common)
        self.clamped = None
        if self.hid:
            weights = _posterior_weights(grid, first.energy, self.vis, data, options["temperature"])
            start = np.concatenate([_draw(grid, self.hid, w, 1, rng) for w in weights])
            self.clamped = LangevinChains(grid, start, moving=self.hid, fixed=data, rng=rng,
                                          **common)  # fmt: skip

    def __call__(self, energy: ParametricEnergy, theta: np.ndarray, terms: LearningTerms):
        names = self.grid.names

        def grad(pts):
            return energy.space_gradient(names, pts, theta)

        self.free.run(grad, steps=self.steps, dt=self.dt)
        model_term = energy.theta_gradient(names, self.free.points(), theta).mean(axis=1)
        if self.clamped is None:
            pts = [self.data[:, j] for j in range(len(self.vis))]
        else:
            self.clamped.run(grad, steps=self.steps, dt=self.dt)
            pts = self.clamped.points()
        data_term = energy.theta_gradient(names, pts, theta).mean(axis=1)
        cells = self.grid.cell_index(self.free.points())
        counts = np.bincount(cells, minlength=self.grid.size).reshape(self.grid.shape)
        n = self.free.positions.shape[0]
        f_recall = histogram_free_energy(
            counts, n, self.grid.volumes, terms.energy, self.free.temperature
        )[0]
        return model_term, data_term, f_recall, np.nan


def _draw(grid: Grid, axes: Any, weights: np.ndarray, n: int, rng) -> np.ndarray:
    """`n` points on `axes`: a cell with probability ∝ `weights`, uniform inside it."""
    axes = list(axes)
    w = np.asarray(weights, dtype=float).ravel()
    cells = rng.choice(w.size, size=n, p=w / w.sum())
    idx = np.unravel_index(cells, np.shape(weights))
    cols = []
    for j, a in enumerate(axes):
        e = grid.edges[a]
        cols.append(e[idx[j]] + rng.random(n) * (e[idx[j] + 1] - e[idx[j]]))
    return np.stack(cols, axis=1)


def _posterior_weights(grid, energy, vis, data, temperature: float) -> np.ndarray:
    """V_h q(h | v_i) on the hidden cells for every sample, shape ``(n, *hidden)``."""
    hid = [a for a in range(grid.ndim) if a not in vis]
    e = restrict(grid, energy, vis, data)
    log_w = -e / temperature
    log_w = log_w - log_w.max(axis=tuple(range(1, e.ndim)), keepdims=True)
    vol = np.ones([1] * len(hid))
    for j, a in enumerate(hid):
        shape = [1] * len(hid)
        shape[j] = -1
        vol = vol * grid.widths[a].reshape(shape)
    return np.exp(log_w) * vol


def _options(grid: Grid, recall: str, relax: Any, steps: Any, lr: Any) -> None:
    if not isinstance(grid, Grid):
        raise TypeError(f"`grid` must be an fpsolver.Grid, got {type(grid).__name__}")
    if recall not in _RECALLS:
        raise ValueError(f"`recall` must be one of {_RECALLS}, got {recall!r}")
    if not (relax == "equilibrium" or (np.ndim(relax) == 0 and float(relax) > 0)):
        raise ValueError(f"`relax` must be 'equilibrium' or a positive time, got {relax!r}")
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ValueError(f"`steps` must be a non-negative integer, got {steps!r}")
    rate = np.asarray(lr, dtype=float)
    if rate.ndim > 1 or not np.all(np.isfinite(rate) & (rate > 0)):
        raise ValueError(f"`lr` must be a positive number or one per parameter, got {lr!r}")


def recall_and_learn(
    energy: Any,
    theta0: Any,
    data: Any,
    grid: Grid,
    *,
    visible: Sequence[str] | None = None,
    temperature: float = 1.0,
    recall: str = "grid",
    steps: int = 100,
    lr: float | Sequence[float] = 0.1,
    relax: float | str = "equilibrium",
    mobility: float | Sequence[float] = 1.0,
    gauge: Sequence[float] | None = None,
    particles: int = 1000,
    recall_steps: int = 10,
    dt: float = 0.01,
    seed: Any = None,
    parameters: Sequence[str] | None = None,
    blowup: float | None = 10.0,
):
    """Fit θ of E(x; θ) to visible data by Recall and Learn (see the module notes).

    Parameters
    ----------
    energy : callable or ParametricEnergy
        ``E(*axes, theta)`` (see :class:`fpsolver.analysis.learning.ParametricEnergy`
        for exact gradients; by default ∂E/∂θ and ∇E are central differences).
    theta0 : array_like
        Initial parameters.
    data : array_like or mapping
        Visible samples: shape ``(n,)`` for one visible axis, ``(n, n_visible)``,
        or ``{axis: samples}``.
    grid : Grid
        Axes (v..., h...): the visible ones and the hidden ones.
    visible : sequence of str, optional
        The visible axes (default: every axis, a fully visible model).
    temperature : float
    recall : {"grid", "particles"}
        Step 1 on the grid (exact) or with persistent particle chains.
    steps : int
        Number of learning steps (the result has ``steps + 1`` iterations).
    lr : float or sequence of float
        Learning rate, or one per parameter (a diagonal preconditioner for
        parameters of very different stiffness).
    relax : "equilibrium" or float
        Grid recall: to equilibrium (exact Gibbs density) or for this time,
        warm-started (from the uniform density at the first iteration).
    mobility : float or sequence of float
        Constant diagonal mobility of the recall dynamics.
    gauge : sequence of float, optional
        The gauge point x* (default: the centre of the grid's box).
    particles, recall_steps, dt : int, int, float
        Particle recall: number of free chains, Euler–Maruyama steps per
        iteration and their size (O(dt) bias in the stationary law).
    seed : int, optional
        Seed of the particle chains.
    parameters : sequence of str, optional
        Names of the parameters (coordinate ``parameter``).
    blowup : float or None
        Stop when the exact free energy F_k exceeds the best value so far by
        more than `blowup` times max(F_0 − best, T) (an overshooting step may
        raise F a little; a learning rate past the stable range raises it
        without bound), or when F or θ stop being finite. None: only the
        latter.

    Raises
    ------
    LearningDiverged
        On a blow-up; its ``result`` holds the trajectory so far.

    Returns
    -------
    xarray.Dataset
        Over ``iteration`` (0 … steps): ``theta`` (iteration, parameter);
        the exact grid numbers at θ_k: ``log_likelihood``, ``free_energy``
        (F_clamped − F_free = −T ℓ), ``clamped_free_energy``,
        ``model_free_energy`` (−T ln Z_θ) and ``exact_gradient``; the
        recall: ``gradient`` (the direction used), ``recall_free_energy``
        (F_θ[p_k], for particles the histogram estimate) and, on the grid,
        ``relative_entropy`` KL(p_k ‖ q_θk).

    Examples
    --------
    >>> import numpy as np
    >>> import fpsolver as fp
    >>> from fpsolver.api.learning import recall_and_learn
    >>> grid = fp.Grid(x=(-5, 5, 200))
    >>> data = np.random.default_rng(0).normal(1.0, 0.5, 400)
    >>> E = lambda x, theta: 0.5 * np.exp(theta[1]) * (x - theta[0]) ** 2   # mean, log precision
    >>> fit = recall_and_learn(E, [0.0, 0.0], data, grid, steps=80, lr=0.3)
    >>> mu, log_prec = fit["theta"].values[-1]
    >>> bool(abs(mu - data.mean()) < 1e-4), bool(abs(log_prec + np.log(data.var())) < 5e-3)  # O(h²)
    (True, True)
    >>> bool(np.all(np.diff(fit["free_energy"].values) <= 1e-12))   # descends
    True
    """
    _options(grid, recall, relax, steps, lr)
    require_flat(grid, "recall_and_learn (data terms on Cartesian cells)")
    theta = np.atleast_1d(np.asarray(theta0, dtype=float)).copy()
    rate = np.broadcast_to(np.asarray(lr, dtype=float), theta.shape)
    names = list(grid.names) if visible is None else list(visible)
    samples = visible_samples(grid, data if isinstance(data, dict) else np.asarray(data), names)
    if gauge is None:
        gauge = [0.5 * (e[0] + e[-1]) for e in grid.edges]
    energy = ParametricEnergy.of(energy).gauged(gauge)
    if recall == "grid":
        step1: Any = _GridRecall(grid, temperature, relax, mobility)
    else:
        options = {"recall_steps": recall_steps, "dt": dt, "particles": particles,
                   "temperature": temperature, "mobility": mobility,
                   "rng": np.random.default_rng(seed)}  # fmt: skip
        options["visible"] = names
        first = grid_learning_terms(grid, energy, theta, temperature, data=samples, visible=names)
        step1 = _ParticleRecall(grid, samples, first, options)
    attrs = {"recall": recall, "lr": rate.copy(), "temperature": temperature, "relax": str(relax),
             "gauge": np.asarray(gauge, dtype=float), "visible": " ".join(names),
             "n_data": samples.shape[0]}  # fmt: skip
    rows: list = []
    for k in range(int(steps) + 1):
        with np.errstate(all="ignore"):
            terms = grid_learning_terms(grid, energy, theta, temperature, data=samples,
                                        visible=names)  # fmt: skip
            model_term, data_term, f_recall, kl = step1(energy, theta, terms)
        direction = data_term - model_term
        problem = _blowup(rows, terms.free_energy, direction, temperature, blowup)
        if problem:
            _stop(rows, parameters, attrs, f"at iteration {k} {problem}", lr)
        rows.append((theta.copy(), terms, direction, f_recall, kl))
        if k < steps:
            theta = theta - rate * direction
            if not np.all(np.isfinite(theta)):
                _stop(rows, parameters, attrs, f"theta became {theta.tolist()} at iteration "
                      f"{k + 1}", lr)  # fmt: skip
    return _dataset(rows, parameters, attrs)


def _blowup(rows: list, f: float, direction: np.ndarray, temperature: float,
            blowup: float | None) -> str:  # fmt: skip
    """Why the fit must stop at this iteration ('' if it need not)."""
    if not (np.isfinite(f) and np.all(np.isfinite(direction))):
        return f"the free energy or its gradient is not finite (F = {f!r})"
    if blowup is None or not rows:
        return ""
    f0 = float(rows[0][1].free_energy)
    best = min(float(r[1].free_energy) for r in rows)
    if f - best > blowup * max(f0 - best, temperature):
        return (
            f"the free energy grew to {f:.6g} (start {f0:.6g}, best so far {best:.6g}; more "
            f"than `blowup`={blowup:g} times max(start − best, T) above the best)"
        )
    return ""


def _stop(rows: list, parameters: Sequence[str] | None, attrs: dict, problem: str, lr: Any):
    message = (
        f"Recall and Learn stopped: {problem}. The learning rate `lr`={lr!r} is too large "
        "for this energy (the free energy grows without bound); lower it, or give one rate "
        f"per parameter. The {len(rows)} iterations so far are in this exception's `.result`."
    )
    result = _dataset(rows, parameters, attrs | {"stopped": message}) if rows else None
    raise LearningDiverged(message, result)


def _dataset(rows: list, parameters: Sequence[str] | None, attrs: dict):
    import xarray as xr

    theta = np.array([r[0] for r in rows])
    n_par = theta.shape[1]
    par = list(parameters) if parameters is not None else [f"theta_{i}" for i in range(n_par)]
    if len(par) != n_par:
        raise ValueError(f"`parameters` names {len(par)} parameters, theta has {n_par}")
    it = ("iteration",)
    both = ("iteration", "parameter")

    def series(f):
        return np.array([f(r) for r in rows], dtype=float)

    data = {
        "theta": (both, theta, {"long_name": "parameters"}),
        "gradient": (both, series(lambda r: r[2]), {"long_name": "update direction used"}),
        "exact_gradient": (both, series(lambda r: r[1].gradient),
                           {"long_name": "exact grid gradient of F_clamped - F_free"}),
        "log_likelihood": (it, series(lambda r: r[1].log_likelihood),
                           {"long_name": "exact grid mean log-likelihood of the data"}),
        "free_energy": (it, series(lambda r: r[1].free_energy),
                        {"long_name": "F_clamped - F_free = -T log-likelihood"}),
        "clamped_free_energy": (it, series(lambda r: r[1].clamped_free_energy),
                                {"long_name": "data-clamped free energy (gauge fixed)"}),
        "model_free_energy": (it, series(lambda r: r[1].free_free_energy),
                              {"long_name": "-T ln Z of the model (gauge fixed)"}),
        "recall_free_energy": (it, series(lambda r: r[3]),
                               {"long_name": "free energy of the recalled density"}),
        "relative_entropy": (it, series(lambda r: r[4]),
                             {"long_name": "KL(p || q_theta) after recall (grid only)"}),
    }  # fmt: skip
    coords = {"iteration": np.arange(len(rows)), "parameter": par}
    return xr.Dataset(data, coords=coords, attrs=attrs)
