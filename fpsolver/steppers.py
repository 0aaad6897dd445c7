r"""Time integrators for dp/dt = L p: a registry of steppers.

A stepper sees only the generator L and a :class:`~fpsolver.linsolve.LinearSolver`
for ``(I − c L) x = b``; the driver (:func:`fpsolver.solve.solve`) owns the
time loop, saving and diagnostics. Steppers never print or write files.
Every class declares its ``order``; the tests iterate over :data:`METHODS`.

=================  =====  ==================================================
method             order  guarantees
=================  =====  ==================================================
backward_euler     1      L-stable; p ≥ 0, mass conserved and the discrete
                          free energy non-increasing for **every** dt
crank_nicolson     2      A-stable, not L-stable: stiff components of rough
                          data ring (may go negative) at large dt
bdf2               2      variable-step BDF2, one backward-Euler start step;
                          A-stable (L-stable as dt → ∞)
tr_bdf2            2      L-stable one-step TR-BDF2 (γ = 2 − √2); both stages
                          share one matrix, so one factorisation per dt
exponential        exact  expm_multiply(dt L) p: exact in time for this
                          semi-discretisation; a reference for small problems
adaptive           2      TR-BDF2 with an embedded error estimate and step
                          sizes from a ladder dt0·2^k (see solve)
=================  =====  ==================================================

All methods conserve mass to rounding (L has zero V-weighted column sums
and every stage is a linear combination of such solves).

References
----------
Hairer & Wanner, *Solving Ordinary Differential Equations II* (1996), §V.1
(BDF) and §IV.3 (stability). Bank et al., IEEE Trans. CAD 4 (1985) 436–451
and Hosea & Shampine, Appl. Numer. Math. 20 (1996) 21–37 (TR-BDF2 and its
error estimate). Al-Mohy & Higham, SIAM J. Sci. Comput. 33 (2011) 488–511
(expm_multiply).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .linsolve import LinearSolver

__all__ = [
    "METHODS",
    "EXACT",
    "Stepper",
    "BackwardEuler",
    "CrankNicolson",
    "BDF2",
    "TRBDF2",
    "Exponential",
    "AdaptiveTRBDF2",
    "get_stepper",
]


class Stepper:
    """Base class: advance p by one step of size dt.

    Subclasses set ``name``, ``order`` and implement :meth:`step`. Methods
    with memory (BDF2) expose it through :meth:`get_state`/:meth:`set_state`
    so that a checkpointed run resumes bit for bit.

    Parameters
    ----------
    L : sparse matrix
        The generator.
    linear : LinearSolver, optional
        Solver for ``(I − c L) x = b`` (default: LU on `L`).
    """

    name: str = ""
    order: int = 0
    #: True when the method keeps p ≥ 0 and F non-increasing for any dt.
    unconditionally_positive: bool = False

    def __init__(self, L: Any, linear: LinearSolver | None = None) -> None:
        self.L = L
        self.linear = linear if linear is not None else LinearSolver(L)

    def step(self, p: np.ndarray, dt: float) -> np.ndarray:  # pragma: no cover - abstract
        """Return p after one step of size `dt` (p is flat)."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget any history (the next step starts afresh)."""

    def get_state(self) -> dict[str, Any]:
        """History needed to continue exactly (arrays and floats)."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore history from :meth:`get_state`."""

    @property
    def factorizations(self) -> int:
        """Factorisations built so far by the linear solver."""
        return self.linear.factorizations


class BackwardEuler(Stepper):
    r"""Backward Euler: ``(I − dt L) pⁿ⁺¹ = pⁿ``. Order 1.

    I − dt L is an M-matrix (L has non-negative off-diagonals), so pⁿ⁺¹ ≥ 0
    for every dt, and the discrete free energy never increases (the
    discrete Jordan–Kinderlehrer–Otto argument: F_h is convex and L is a
    discrete gradient flow of it).

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> m = fp.FokkerPlanck(fp.Grid(x=(-3, 3, 30)), energy=lambda x: x**2 / 2)
    >>> s = BackwardEuler(m.generator())
    >>> p = s.step(np.ones(30) / 6, 1e8)
    >>> bool(np.allclose(p, np.exp(m.log_equilibrium())))
    True
    """

    name = "backward_euler"
    order = 1
    unconditionally_positive = True

    def step(self, p: np.ndarray, dt: float) -> np.ndarray:
        return self.linear.solve(dt, p, p)


class CrankNicolson(Stepper):
    r"""Crank–Nicolson: ``(I − dt/2 L) pⁿ⁺¹ = (I + dt/2 L) pⁿ``. Order 2.

    A-stable but not L-stable: modes with dt·|λ| ≫ 1 are multiplied by
    ≈ −1 each step, so rough data ring and p may turn negative.

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> m = fp.FokkerPlanck(fp.Grid(x=(-3, 3, 30)), energy=lambda x: x**2 / 2)
    >>> CrankNicolson(m.generator()).order
    2
    """

    name = "crank_nicolson"
    order = 2

    def step(self, p: np.ndarray, dt: float) -> np.ndarray:
        h = 0.5 * dt
        return self.linear.solve(h, p + h * (self.L @ p), p)


class BDF2(Stepper):
    r"""Variable-step BDF2. Order 2.

    With ω = dtₙ/dtₙ₋₁,

    .. math::

        \Bigl(I - \tfrac{1+\omega}{1+2\omega}\,dt_n L\Bigr) p^{n+1}
        = \frac{(1+\omega)^2 p^n - \omega^2 p^{n-1}}{1+2\omega},

    zero-stable for ω < 1 + √2 (the driver keeps ω ≤ 2). The first step
    (no history) is backward Euler; its O(dt²) local error keeps the global
    order 2. A constant dt uses two matrices (start and BDF2).

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> m = fp.FokkerPlanck(fp.Grid(x=(-3, 3, 30)), energy=lambda x: x**2 / 2)
    >>> s = BDF2(m.generator()); p = np.ones(30) / 6
    >>> for _ in range(10):
    ...     p = s.step(p, 0.1)
    >>> s.factorizations
    2
    """

    name = "bdf2"
    order = 2

    def __init__(self, L: Any, linear: LinearSolver | None = None) -> None:
        super().__init__(L, linear)
        self.reset()

    def reset(self) -> None:
        self._prev: np.ndarray | None = None
        self._dt_prev = 0.0

    def step(self, p: np.ndarray, dt: float) -> np.ndarray:
        if self._prev is None:
            new = self.linear.solve(dt, p, p)
        else:
            w = dt / self._dt_prev
            rhs = ((1 + w) ** 2 * p - w * w * self._prev) / (1 + 2 * w)
            new = self.linear.solve(dt * (1 + w) / (1 + 2 * w), rhs, p)
        self._prev = p
        self._dt_prev = dt
        return new

    def get_state(self) -> dict[str, Any]:
        if self._prev is None:
            return {}
        return {"prev": self._prev.copy(), "dt_prev": self._dt_prev}

    def set_state(self, state: dict[str, Any]) -> None:
        if "prev" in state:
            self._prev = np.asarray(state["prev"], float).copy()
            self._dt_prev = float(state["dt_prev"])
        else:
            self.reset()


GAMMA = 2.0 - np.sqrt(2.0)

#: The ``order`` declared by a method that is exact in time.
EXACT = 99


class TRBDF2(Stepper):
    r"""TR-BDF2 with γ = 2 − √2: L-stable, one-step, order 2.

    A trapezoidal stage to t + γ dt, then BDF2 on (t, t + γ dt, t + dt):

    .. math::

        (I - \tfrac{\gamma dt}{2} L) p^* = (I + \tfrac{\gamma dt}{2} L) p^n, \qquad
        (I - \tfrac{1-\gamma}{2-\gamma} dt L) p^{n+1}
        = \frac{p^* - (1-\gamma)^2 p^n}{\gamma (2-\gamma)}.

    For γ = 2 − √2 both matrices coincide, so each dt needs one
    factorisation (Bank et al. 1985). The stability function tends to 0
    like O(1/(dt λ)), so one step of dt = 1e6 leaves ~1e-6 of the slowest
    mode. Beyond dt‖L‖ ≈ 1e10 the right-hand side (I + γdt/2 L)pⁿ of the
    trapezoidal stage loses digits to cancellation; for such steps use
    backward Euler, which has no explicit part.

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> m = fp.FokkerPlanck(fp.Grid(x=(-3, 3, 30)), energy=lambda x: x**2 / 2)
    >>> s = TRBDF2(m.generator()); p = s.step(np.ones(30) / 6, 0.1)
    >>> s.factorizations
    1
    """

    name = "tr_bdf2"
    order = 2

    def _stages(self, p: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = 0.5 * GAMMA * dt
        Lp = self.L @ p
        mid = self.linear.solve(c, p + c * Lp, p)
        rhs = (mid - (1 - GAMMA) ** 2 * p) / (GAMMA * (2 - GAMMA))
        return self.linear.solve(c, rhs, mid), Lp, mid

    def step(self, p: np.ndarray, dt: float) -> np.ndarray:
        return self._stages(p, dt)[0]


class AdaptiveTRBDF2(TRBDF2):
    r"""TR-BDF2 with an embedded local error estimate (for ``method="adaptive"``).

    The trapezoidal rule over the whole step, evaluated at the TR-BDF2
    result, leaves the residual

    .. math::

        r = p^{n+1} - p^n - \tfrac{dt}{2}\,(L p^n + L p^{n+1})
          \approx (C + \tfrac{1}{12})\,dt^3 p''' ,

    with C ≈ −0.0404 the TR-BDF2 error constant, so the local error is
    ≈ −C/(C + 1/12)·r ≈ 0.94 r. As in Hosea & Shampine (1996) the estimate
    is filtered by the step's own matrix, ``(I − γ dt/2 L)⁻¹ r``, so stiff
    components that the method damps do not inflate it. The step-size
    control (a ladder dt0·2^k that reuses factorisations) lives in the
    driver.
    """

    name = "adaptive"
    order = 2

    def step_with_error(self, p: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """One step and its local error estimate (flat arrays)."""
        new, Lp, _ = self._stages(p, dt)
        r = new - p - 0.5 * dt * (Lp + self.L @ new)
        return new, self.linear.solve(0.5 * GAMMA * dt, r, conserve=False)


class Exponential(Stepper):
    r"""Exact propagation ``pⁿ⁺¹ = exp(dt L) pⁿ`` by :func:`scipy.sparse.linalg.expm_multiply`.

    No time-discretisation error (the error is the spatial one only), so it
    serves as a reference; its cost grows with dt·‖L‖, so use it on small
    problems. Its ``order`` is :data:`EXACT` (no temporal error).

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> m = fp.FokkerPlanck(fp.Grid(x=(-3, 3, 30)), energy=lambda x: x**2 / 2)
    >>> p = Exponential(m.generator()).step(np.ones(30) / 6, 50.0)
    >>> bool(np.allclose(p, np.exp(m.log_equilibrium())))
    True
    """

    name = "exponential"
    order = EXACT

    def __init__(self, L: Any, linear: LinearSolver | None = None) -> None:
        self.L = L
        self.linear = linear if linear is not None else LinearSolver(L)

    def step(self, p: np.ndarray, dt: float) -> np.ndarray:
        from scipy.sparse.linalg import expm_multiply

        return expm_multiply(dt * self.L, p)


#: The registry: method name → stepper class (each declares ``order``).
METHODS: dict[str, type[Stepper]] = {
    cls.name: cls
    for cls in (BackwardEuler, CrankNicolson, BDF2, TRBDF2, Exponential, AdaptiveTRBDF2)
}


def get_stepper(method: str) -> type[Stepper]:
    """The stepper class registered as `method`.

    Examples
    --------
    >>> get_stepper("bdf2").order
    2
    """
    try:
        return METHODS[method]
    except KeyError:
        raise ValueError(
            f"`method` must be one of {', '.join(map(repr, METHODS))}, got {method!r}"
        ) from None
