r"""Time stepping of mean-field models: the nonlinear implicit steps and the solve.

:func:`implicit_step` solves the stabilised backward-Euler step of
:mod:`fpsolver.discrete.meanfield` by Newton's method: the Jacobian
J = I − h L(Ẽ) − h ∂_E[L(Ẽ) p] (W * · + φ'' + s) is applied matrix-free and
each Newton system is solved by GMRES preconditioned with the LU
factorisation of the frozen step matrix I − h L(Ẽ(p_k)). A Newton iterate
with a non-positive entry is replaced by the Picard iterate
(I − h L(Ẽ(p_k)))⁻¹ pⁿ, and a converged Newton iterate is polished by one
such solve, so the accepted density solves an M-matrix system: positive,
with exactly the mass of pⁿ. **Convergence test**: the step's L¹ residual
Σ V |p − pⁿ − h L(Ẽ(p)) p| ≤ `tol` · Σ V pⁿ (default 1e-10), evaluated at
the accepted density. The free-energy inequality of the module notes then
holds up to O(tol).

**BDF2** (``method="bdf2"``, :func:`bdf2_step`): the variable-step
second-order backward differentiation formula (Hairer & Wanner, *Solving
ODEs II* (1996) §V.1), ω = h/h_prev, a = (1 + 2ω)/(1 + ω),

    a p^{n+1} − (1 + ω) p^n + ω²/(1 + ω) p^{n−1} = h L(E[p^{n+1}]) p^{n+1},

fully implicit in the energy, started by one stabilised backward-Euler step.
It is the same nonlinear problem x − b = h' L(E[x]) x with b the BDF2
right-hand side and h' = h/a, solved by the same Newton–GMRES iteration
without the stabilisation: s (p^{n+1} − p^n) is O(h) and would cap the order
at one; its O(h²) form s (p^{n+1} − 2p^n + p^{n−1}) keeps order two but made
F rise at large steps in our runs (1e-4 on the Kuramoto ring at dt = 2,
against 3e-7 without it), so BDF2 goes without. Mass: Σ V b = Σ V p^n
exactly, so the mass is kept to rounding. Positivity is **not** guaranteed:
the converged x solves (I − h' L) x = b with an M-matrix, so x > 0 whenever
b ≥ 0, but b has negative entries where the density fell by more than a
factor (1 + ω)²/ω² (4 at constant steps) in one step. A BDF2 step with a
non-positive entry is therefore redone as a stabilised backward-Euler step of
the same size (positive for every h), counted in the dataset attribute
``bdf2_fallbacks``; the next step is BDF2 again. The step ratio ω stays ≤ 2
(a step after a shortened one grows at most twofold), inside the
zero-stability bound 1 + √2 of variable-step BDF2. The free-energy
inequality is proved only for the stabilised backward Euler; for BDF2 it is
observed (tests), not guaranteed.

A step whose iteration does not converge in `max_iter` iterations (or
diverges) is retried with half the step, up to `max_halvings` times; then
:class:`MeanFieldConvergenceError` names t and the residual (the frames
saved so far in ``err.partial``). A step is never accepted unconverged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.sparse.linalg import LinearOperator, gmres

from .._version import __version__
from ..core import diagnostics as dg
from ..core.initial import density_array
from ..core.meanfield import MeanFieldModel
from ..core.schedule import SaveSchedule, positive
from ..discrete.lu import sparse_lu
from ..discrete.meanfield import MeanFieldGenerator
from .trackers import build_dataset

__all__ = [
    "MEANFIELD_METHODS",
    "MeanFieldConvergenceError",
    "bdf2_step",
    "implicit_step",
    "relax",
    "solve_meanfield",
]

#: The time steppers of a mean-field solve (the first is the default).
MEANFIELD_METHODS = ("backward_euler", "bdf2")


class MeanFieldConvergenceError(RuntimeError):
    """The nonlinear implicit step failed at time `t` even after retrying smaller.

    Attributes
    ----------
    t : float
        Start of the step that failed.
    residual : float
        The last L¹ residual of the Picard iteration (relative to the mass).
    partial : xarray.Dataset or None
        The frames saved before the failure (from a solve).
    """

    def __init__(self, message: str, t: float, residual: float, partial: Any = None) -> None:
        super().__init__(message)
        self.t, self.residual, self.partial = float(t), float(residual), partial


class _NotConverged(Exception):
    def __init__(self, residual: float) -> None:
        self.residual = residual


def implicit_step(
    gen: MeanFieldGenerator,
    p: np.ndarray,
    h: float,
    *,
    stabilised: bool = True,
    tol: float = 1e-10,
    max_iter: int = 30,
) -> tuple[np.ndarray, int, float]:
    """Solve x − p = h L(Ẽ(x)) x by Newton–GMRES (module notes).

    With ``stabilised=True`` this is one stabilised backward-Euler step from
    `p`, Ẽ = E[x] + s (x − p); with ``stabilised=False`` the energy is
    E[x] (a BDF2 step passes its right-hand side as `p` and its h/a as `h`).
    Returns ``(x, iterations, residual)``; raises ``_NotConverged``. The
    mass of `x` is Σ V p to rounding.

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> from fpsolver.core.meanfield import MeanFieldModel
    >>> g = fp.Grid(x=(-3, 3, 40))
    >>> m = MeanFieldModel(g, lambda x: x**2 / 2, interaction=lambda x: -np.exp(-x**2), local=0.5)
    >>> gen = MeanFieldGenerator(m)
    >>> p0 = fp.gaussian(g, 1.0, 0.2).values.ravel()
    >>> p1, its, res = implicit_step(gen, p0, 0.05)
    >>> res <= 1e-10, bool(p1.min() > 0)
    (True, True)
    >>> bool(m.free_energy(p1.reshape(40)) < m.free_energy(p0.reshape(40)))
    True
    >>> abs(float(g.volumes @ p1) - float(g.volumes @ p0)) < 1e-14
    True
    """
    rhs = np.asarray(p, float).ravel()
    anchor = rhs if stabilised else None  # the density the stabilisation refers to
    V = gen.volumes
    mass = float(np.sum(V * rhs))
    it, exact = rhs, True  # `exact`: `it` solves a linear M-matrix system (exact mass)
    residual, first, history = np.inf, None, []
    for k in range(max_iter + 1):
        A = gen.step_matrix(it, anchor, h)
        r = A @ it - rhs
        residual = float(np.sum(V * np.abs(r))) / mass
        if exact and residual <= tol:
            return it, k, residual
        if not np.isfinite(residual) or (first is not None and residual > 1e3 * first):
            break
        first = residual if first is None else first
        history.append(residual)
        if k == max_iter or (len(history) > 4 and history[-1] > 0.5 * history[-5]):
            break  # out of iterations, or stagnating
        lu = sparse_lu(A)
        if residual <= tol:  # Newton has converged: polish by one M-matrix solve
            it, exact = lu.solve(rhs), True
            continue
        cand = it + _newton_direction(gen, A, lu, it, anchor, r, h)
        if np.all(cand > 0):
            it, exact = cand, False
        else:  # a Picard step (positive whenever rhs is)
            it, exact = lu.solve(rhs), True
    raise _NotConverged(residual)


def bdf2_step(
    gen: MeanFieldGenerator,
    p: np.ndarray,
    p_prev: np.ndarray,
    h: float,
    h_prev: float,
    *,
    tol: float = 1e-10,
    max_iter: int = 30,
) -> tuple[np.ndarray, int, float]:
    """One variable-step BDF2 step from `p` (and `p_prev`, a step `h_prev` earlier).

    Solves a x − (1 + ω) p + ω²/(1 + ω) p_prev = h L(E[x]) x, ω = h/h_prev,
    a = (1 + 2ω)/(1 + ω) (Hairer & Wanner II §V.1), fully implicit in the
    energy (no stabilisation). The result may have negative entries where
    the right-hand side has (module notes); the caller checks.
    Returns ``(x, iterations, residual)``; raises ``_NotConverged``.

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> from fpsolver.core.meanfield import MeanFieldModel
    >>> g = fp.Grid(x=(-3, 3, 40))
    >>> m = MeanFieldModel(g, lambda x: x**2 / 2, interaction=lambda x: -np.exp(-x**2))
    >>> gen = MeanFieldGenerator(m)
    >>> p0 = fp.gaussian(g, 1.0, 0.2).values.ravel()
    >>> p1, _, _ = implicit_step(gen, p0, 0.05)
    >>> p2, its, res = bdf2_step(gen, p1, p0, 0.05, 0.05)
    >>> res <= 1e-10, abs(float(g.volumes @ p2) - float(g.volumes @ p0)) < 1e-14
    (True, True)
    """
    w = h / h_prev
    a = (1 + 2 * w) / (1 + w)
    p, p_prev = np.ravel(p), np.ravel(p_prev)
    rhs = ((1 + w) * p - (w * w / (1 + w)) * p_prev) / a
    return implicit_step(gen, rhs, h / a, stabilised=False, tol=tol, max_iter=max_iter)


def _newton_direction(gen, A, lu, it, anchor, r, h) -> np.ndarray:
    """Solve J δ = −r by GMRES, preconditioned by the LU of I − h L(Ẽ(it))."""
    response = gen.energy_derivative_operator(gen.step_energy(it, anchor), it)
    n, stabilised = it.size, anchor is not None

    def jv(v: np.ndarray) -> np.ndarray:
        return A @ v - h * response(gen.energy_jacobian(it, v, stabilised=stabilised))

    J = LinearOperator((n, n), matvec=jv, dtype=float)
    M = LinearOperator((n, n), matvec=lu.solve, dtype=float)
    delta, _ = gmres(J, -r, M=M, rtol=1e-12, atol=0.0, restart=40, maxiter=5)
    return delta


class _Stepper:
    """Steps of `method` with halving on failure; BDF2 keeps the previous density."""

    def __init__(self, gen, method, *, tol, max_iter, max_halvings) -> None:
        self.gen, self.method = gen, method
        self.tol, self.max_iter, self.max_halvings = tol, max_iter, max_halvings
        self.prev: tuple[np.ndarray, float] | None = None
        #: BDF2 steps that came out non-positive and were redone by backward Euler.
        self.fallbacks = 0

    def step(self, p: np.ndarray, t: float, h: float) -> tuple[np.ndarray, float, int]:
        """A step of at most `h`, halved on failure; returns (p_new, h_used, iterations)."""
        residual = np.inf
        for _ in range(self.max_halvings + 1):
            try:
                new, its, residual = self._try(p, h)
            except _NotConverged as err:
                residual = err.residual
                h *= 0.5
                continue
            self.prev = (p, h) if self.method == "bdf2" else None
            return new, h, its
        raise MeanFieldConvergenceError(
            f"mean-field implicit step did not converge at t={t:g}: L1 residual {residual:.3g} "
            f"above `tol`={self.tol:g} after {self.max_halvings} halvings of the step (down to "
            f"h={2 * h:.3g}); use a smaller `dt` or a larger `max_iter`",
            t,
            residual,
        )

    def _try(self, p: np.ndarray, h: float) -> tuple[np.ndarray, int, float]:
        kw = dict(tol=self.tol, max_iter=self.max_iter)
        if self.prev is not None:
            p_prev, h_prev = self.prev
            new, its, residual = bdf2_step(self.gen, p, p_prev, h, h_prev, **kw)
            if np.all(new > 0):
                return new, its, residual
            self.fallbacks += 1  # BDF2 lost positivity: redo the step by backward Euler
        return implicit_step(self.gen, p, h, **kw)


class _Frames:
    """Saved frames and their diagnostics."""

    def __init__(self, model: MeanFieldModel) -> None:
        self.model = model
        g = model.grid
        self.V = g.volumes
        self._c = [g._along(a, g.centers[a]) for a in range(g.ndim)]
        self._w = [g._along(a, g.widths[a]) for a in range(g.ndim)]
        self.times: list[float] = []
        self.frames: list[np.ndarray] = []
        self.infos: list[dict[str, Any]] = []

    def add(self, t: float, p: np.ndarray, h: float, iterations: int) -> None:
        m, V = self.model, self.V
        pg = np.reshape(p, V.shape)
        E = m.effective_energy(pg)
        info = {
            "mass": dg.mass(V, pg),
            "mean_energy": dg.mean_energy(V, m.energy, pg),
            "entropy": dg.entropy(V, pg),
            "free_energy": m.free_energy(pg),
            "relative_entropy": dg.relative_entropy(V, dg.log_gibbs(E, m.temperature, V), pg),
            "negative_mass": float(np.sum(V * (np.maximum(pg, 0) - pg))),
            "step_size": h,
            "interaction_energy": m.interaction_energy(pg),
            "picard_iterations": float(iterations),
        }
        info["mean"], info["covariance"] = dg.moments(V, self._c, self._w, pg)
        frame = np.array(pg, float)
        frame.setflags(write=False)
        self.times.append(float(t))
        self.frames.append(frame)
        self.infos.append(info)

    def dataset(self, attrs: dict[str, Any]):
        import xarray as xr

        ds = build_dataset(self.model.grid, self.times, self.frames, self.infos, attrs)
        ds["relative_entropy"].attrs["long_name"] = (
            "KL(p||q[p]) to the Gibbs density of E[p] (0 at a self-consistent stationary state)"
        )
        ds["free_energy"].attrs["long_name"] = "mean-field free energy F[p]"
        extra = {
            "interaction_energy": "1/2 sum(V p (W*p)) + sum(V phi(p))",
            "picard_iterations": "Picard iterations of the last step",
        }
        for name, long_name in extra.items():
            ds[name] = xr.Variable(
                "time", np.array([d[name] for d in self.infos], float), {"long_name": long_name}
            )
        return ds


def solve_meanfield(
    model: MeanFieldModel,
    p0: Any,
    t_end: float,
    dt: float | None = None,
    method: str | None = None,
    *,
    save_every: float | None = None,
    save_at: Sequence[float] | None = None,
    tol: float = 1e-10,
    max_iter: int = 30,
    max_halvings: int = 8,
    max_steps: int = 1_000_000,
    callback: Callable[[float, np.ndarray], Any] | None = None,
    unsupported: dict[str, Any] | None = None,
):
    """Integrate a mean-field model with the stabilised implicit step (module notes).

    Parameters
    ----------
    model : MeanFieldModel
    p0 : array, DataArray or callable
    t_end : float
    dt : float
        The step (required; steps land on the save times).
    method : {"backward_euler", "bdf2"}, optional
        ``"backward_euler"`` (default): the stabilised implicit step, first
        order, positive and free-energy decreasing for every `dt`.
        ``"bdf2"``: variable-step BDF2, second order, started by one
        backward-Euler step; a step that comes out non-positive is redone
        by backward Euler (counted in the attribute ``bdf2_fallbacks``).
    save_every, save_at : optional
        As for :func:`fpsolver.solve` (a :class:`~fpsolver.SaveSchedule`: one
        or the other, no time beyond `t_end`); default: every `dt`.
    tol : float
        Picard convergence test: L¹ residual ≤ tol · mass.
    max_iter, max_halvings : int
        Picard iterations per try; halvings of a failing step before the error.
    max_steps : int
    callback : callable, optional
        ``callback(t, p)`` at every saved frame.

    Returns
    -------
    xarray.Dataset
        ``p``, ``mass``, ``mean_energy`` (⟨E₀⟩), ``entropy``, ``free_energy``
        (F[p]), ``relative_entropy`` (KL(p‖q[p]) to the Gibbs density of
        E[p]), ``interaction_energy``, ``step_size``, ``picard_iterations``,
        ``mean``, ``covariance``.

    Raises
    ------
    MeanFieldConvergenceError
        A step failed after `max_halvings` halvings; ``err.partial`` holds the frames so far.
    """
    method = _check_arguments(method, dt, t_end, unsupported)
    t_end, dt = positive(t_end, "t_end"), positive(dt, "dt")
    tol = positive(tol, "tol")
    gen = MeanFieldGenerator(model)
    p = density_array(model.grid, p0, "p0").ravel()
    frames = _Frames(model)
    frames.add(0.0, p, np.nan, 0)
    attrs = _attrs(model, gen, method, dt, tol)
    stepper = _Stepper(gen, method, tol=tol, max_iter=max_iter, max_halvings=max_halvings)
    every = save_every if save_every is not None or save_at is not None else dt
    schedule = SaveSchedule(t_end, every=every, at=save_at)  # every dt without either
    t, steps, h_next, its = 0.0, 0, dt, 0
    try:
        for target in schedule.targets():
            while t < target * (1 - 1e-14):
                h = min(h_next, target - t)
                p, h_used, its = stepper.step(p, t, h)
                t = target if h_used == target - t else t + h_used
                if h_used < h or method == "bdf2":  # BDF2: ratio of steps at most 2
                    h_next = min(dt, 2 * h_used)
                steps += 1
                if steps >= max_steps:
                    raise RuntimeError(f"`max_steps`={int(max_steps)} reached at t={t:g}")
            frames.add(t, p, h_used, its)
            if callback is not None:
                callback(t, frames.frames[-1])
    except MeanFieldConvergenceError as err:
        attrs.update(stopped=str(err), t_reached=frames.times[-1])
        err.partial = frames.dataset(dict(attrs, steps=steps))
        raise
    attrs.update(steps=steps, assemblies=gen.assemblies, bdf2_fallbacks=stepper.fallbacks)
    return frames.dataset(attrs)


def _check_arguments(method: Any, dt: Any, t_end: Any, unsupported: dict | None) -> str:
    """Refuse what a mean-field solve does not take; return the method name."""
    for key, value in (unsupported or {}).items():
        if value:
            raise ValueError(f"`{key}` is not supported for a mean-field model (got {value!r})")
    if method is not None and method not in MEANFIELD_METHODS:
        valid = ", ".join(repr(m) for m in MEANFIELD_METHODS)
        raise ValueError(f"`method` must be one of {valid} for a mean-field model, got {method!r}")
    if dt is None:
        raise ValueError("a mean-field solve needs a step `dt` (e.g. dt=0.01)")
    if isinstance(t_end, str):
        raise ValueError(f"`t_end` must be a time for a mean-field model, got {t_end!r}")
    return "backward_euler" if method is None else method


def _attrs(
    model: MeanFieldModel, gen: MeanFieldGenerator, method: str, dt: float, tol: float
) -> dict:
    return {
        "title": "Fokker-Planck solution of a mean-field model (fpsolver)",
        "method": method,
        "mean_field": 1,
        "dt": dt,
        "temperature": model.temperature,
        "picard_tol": tol,
        "stabilisation": gen.stabilisation,
        "interaction_method": "none" if model.interaction is None else model.interaction.method,
        "boundary": model.boundary.describe(model.grid.names),
        "fpsolver_version": __version__,
        **model.grid.to_attrs(),
    }


def relax(
    model: MeanFieldModel,
    p0: Any,
    *,
    dt: float = 0.1,
    tol: float = 1e-10,
    picard_tol: float | None = None,
    dt_max: float = 100.0,
    max_steps: int = 20_000,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Relax `p0` to a stationary state by implicit steps of growing size.

    The step doubles after every step that converged in at most 8 Picard
    iterations (up to `dt_max`) and halves on failure. Converged when both
    the change of a step Σ V|p^{n+1} − pⁿ| and the self-consistency
    residual KL(p‖q[p]) (q[p] ∝ exp(−E[p]/T)) fall below `tol`.

    Returns
    -------
    p : ndarray
        The last density (grid shape).
    info : dict
        ``converged``, ``t``, ``steps``, ``change``, ``relative_entropy``.
    """
    gen = MeanFieldGenerator(model)
    V = model.grid.volumes
    p = density_array(model.grid, p0, "p0").ravel()
    ptol = tol if picard_tol is None else picard_tol
    stepper = _Stepper(gen, "backward_euler", tol=ptol, max_iter=30, max_halvings=12)
    h, t, change, kl = positive(dt, "dt"), 0.0, np.inf, np.inf
    cap = positive(dt_max, "dt_max")
    steps = 0
    while steps < max_steps:
        steps += 1
        new, h_used, its = stepper.step(p, t, h)
        cap = h_used if h_used < h else cap  # a step failed: never try that large again
        change = float(np.sum(V.ravel() * np.abs(new - p)))
        p, t = new, t + h_used
        pg = p.reshape(model.grid.shape)
        kl = dg.relative_entropy(
            V, dg.log_gibbs(model.effective_energy(pg), model.temperature, V), pg
        )
        if change <= tol and kl <= tol:
            break
        h = min(cap, 2 * h_used) if its <= 8 else h_used
    info = dict(converged=change <= tol and kl <= tol, t=t, steps=steps, change=change)
    info["relative_entropy"] = kl
    return p.reshape(model.grid.shape), info
