r"""Time integrators for dp/dt = L p: a registry of steppers.

A stepper sees only the generator L and a
:class:`~fpsolver.discrete.linsolve.LinearSolver` for ``(I − c L) x = b``. As
with :class:`scipy.integrate.OdeSolver`, each stepper owns its state and its
step-size control: :meth:`Stepper.step_to` takes one accepted step towards a
stop time and lands on it exactly; capabilities are class attributes
(``order``, ``adaptive``, ``uses_linear_solver``,
``unconditionally_positive``), so the loop (:func:`fpsolver.integrate.driver.integrate`)
never asks which class it holds. Steppers never print or write files. The
tests iterate over :data:`METHODS`.

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
                          sizes from a ladder dt0·2^k (reused factorisations)
separable          exact  exp(t L) = ⊗ exp(t L_a) for separable models: one
                          step per save interval, no dt; p ≥ 0 exactly
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

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.schedule import LAND, positive, substeps
from ..discrete.linsolve import LinearSolver
from ..discrete.operator import Model, Operator, as_operator
from ..discrete.separable import SeparableGenerator, from_generator

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
    "SeparableExact",
    "spatial_error_estimate",
    "get_stepper",
    "make_stepper",
]


class Stepper:
    """Base class: advance p by steps that land exactly on stop times.

    Subclasses set ``name``, ``order`` and implement :meth:`step`. Methods
    with memory (BDF2) expose it through :meth:`get_state`/:meth:`set_state`
    so that a checkpointed run resumes bit for bit.

    Parameters
    ----------
    L : sparse matrix
        The generator.
    linear : LinearSolver, optional
        Solver for ``(I − c L) x = b`` (default: LU on `L`).
    dt : float, optional
        The step size of fixed-step methods (the first step and ladder base
        of adaptive ones).
    rtol, atol : float
        Error tolerances of adaptive methods.
    volumes : ndarray, optional
        Cell volumes (adaptive methods measure errors in Σ V|e|).

    Attributes
    ----------
    steps, rejected_steps : int
        Steps attempted (accepted and rejected) and rejected so far.
    last_step : float
        Size of the last accepted step.
    """

    name: str = ""
    order: int = 0
    #: True when the method chooses its own step sizes (no `dt` needed).
    adaptive: bool = False
    #: True when the method solves (I − c L) x = b (needs a LinearSolver).
    uses_linear_solver: bool = True
    #: True when the method keeps p ≥ 0 and F non-increasing for any dt.
    unconditionally_positive: bool = False
    #: How many factorisations the method keeps (sets the linear solver's memory budget).
    cached_matrices: int = 4

    def __init__(
        self,
        L: Any,
        linear: LinearSolver | None = None,
        *,
        dt: float | None = None,
        rtol: float | None = 1e-4,
        atol: float = 1e-8,
        volumes: np.ndarray | None = None,
    ) -> None:
        self.L = L
        if linear is None and self.uses_linear_solver:
            linear = LinearSolver(L)
        self.linear = linear
        self.dt = None if dt is None else positive(dt, "dt")
        self.rtol = None if rtol is None else float(rtol)
        self.atol = float(atol)
        self.shape = None if volumes is None else np.shape(volumes)
        self.volumes = None if volumes is None else np.asarray(volumes, float).ravel()
        self.steps = 0
        self.rejected_steps = 0
        self.last_step = math.nan
        self._plan: deque[float] = deque()
        self._plan_target: float | None = None

    def step(self, p: np.ndarray, dt: float) -> np.ndarray:  # pragma: no cover - abstract
        """Return p after one step of size `dt` (p is flat)."""
        raise NotImplementedError

    def step_to(self, t: float, p: np.ndarray, t_stop: float) -> tuple[float, np.ndarray]:
        """One accepted step from `t` towards `t_stop`, landing on it exactly.

        Fixed-step methods cover each interval with :func:`substeps` of
        ``dt``; ``t_stop = inf`` means plain steps of ``dt``.
        """
        if self.dt is None:
            raise ValueError(f"`dt` is required for method={self.name!r} (a positive time step)")
        if math.isinf(t_stop):
            h, landing = self.dt, False
        else:
            if self._plan_target != t_stop or not self._plan:
                self._plan = deque(substeps(t_stop - t, self.dt))
                self._plan_target = t_stop
            h = self._plan.popleft()
            landing = not self._plan
        p = self.step(p, h)
        self.steps += 1
        self.last_step = h
        return (t_stop if landing else t + h), p

    def reset(self) -> None:
        """Forget any history (the next step starts afresh)."""

    def get_state(self) -> dict[str, Any]:
        """History and counters needed to continue exactly (arrays and floats)."""
        return {
            "steps": self.steps,
            "rejected_steps": self.rejected_steps,
            "last_step": self.last_step,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore history and counters from :meth:`get_state`."""
        self.steps = int(state.get("steps", 0))
        self.rejected_steps = int(state.get("rejected_steps", 0))
        self.last_step = float(state.get("last_step", math.nan))

    @property
    def factorizations(self) -> int:
        """Factorisations built so far by the linear solver."""
        return 0 if self.linear is None else self.linear.factorizations

    def align(self, interval: float) -> None:
        """Adapt the step sizes to land on multiples of `interval` (adaptive methods)."""

    def plan(self, span: float) -> None:
        """Tell the stepper the length of the run ahead (adaptive methods may use it)."""

    def watch(self, times: Sequence[float]) -> None:
        """Times the caller saves the state at (adaptive methods may hold their error there)."""

    def products_estimate(self, span: float) -> float | None:
        """Products L·p needed to cover `span`, where the method's cost is dominated by them.

        None for methods whose cost is dominated by linear solves.
        """
        return None


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

    def __init__(self, L: Any, linear: LinearSolver | None = None, **options: Any) -> None:
        super().__init__(L, linear, **options)
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
        state = super().get_state()
        if self._prev is not None:
            state.update(prev=self._prev.copy(), dt_prev=self._dt_prev)
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
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


#: The default time-error target of :class:`AdaptiveTRBDF2` (no `rtol`): this
#: fraction of the grid's own error, :func:`spatial_error_estimate` of the density.
TIME_ERROR_FRACTION = 0.7

#: Steps of the trial run with which the global control starts. The trial is
#: the run whenever it meets the target, so it is sized to be the run of the
#: usual case (on the benchmark problems the coarsest rung meeting the target
#: is t_end/4 to t_end/16): then the run costs one factorisation.
PILOT_STEPS = 8

#: Steps of the trial run when the linear solver is iterative. There is no
#: factorisation to lose, and a solve's iterations fall as the step shrinks, so
#: a run of 16 steps costs little more than one of 8 and meets the target more
#: often: a rejected trial costs a whole run (``benchmarks/accuracy.md``, P6 at
#: 128³: the 8-step trial was rejected, default / best 1.68; 16 steps: 0.90).
PILOT_STEPS_ITERATIVE = 16

#: Global control: a trial run whose densities go negative by more than this
#: fraction of the mass is too coarse, and a step that does is redone damped
#: (the level from which the diagnostics warn).
NEGATIVE_TOL = 1e-8

#: Global control, refining without watched save times: the step is chosen
#: for an estimated time error of this fraction of the target (the h² law
#: and the estimate hold to about 10 %, ``benchmarks/adaptive.md``).
REFINE_MARGIN = 0.8

#: Global control with CG on the symmetric form (no `linear_rtol` given):
#: the solves of a run may spend this fraction of the time-error target, by
#: their bound Σ rtol·Σ V|b| (:attr:`LinearSolver.solve_error`), so each
#: stops at rtol = fraction·target/(mass·(2n + 1)) for a run of n steps
#: (two solves a step, three in the damped first one) instead of a fixed
#: 1e-7 (``benchmarks/accuracy.md``, P6 at 64³: a third fewer CG iterations).
SOLVE_ERROR_FRACTION = 0.05

#: The linear solver kinds whose tolerance the global control sets (CG on the
#: symmetric form, with or without AMG).
TUNED_KINDS = ("cg", "amg")

#: Direct linear solver kinds: the sparse LU and the separable stand-in (fast
#: diagonalisation). Any other kind is iterative and gets the longer trial.
DIRECT_KINDS = ("lu", "separable")

#: The range of that linear tolerance: at most 1e-4 (looser solves pollute
#: the local error estimate, measured on P6), at least 1e-12 (rounding).
SOLVE_RTOL_RANGE = (1e-12, 1e-4)

#: A damped first step that still leaves more than this fraction of the mass
#: negative (a sharp start with a long step) is replaced by backward Euler.
GROSS_NEGATIVE = 1e-6


def _second_differences(q: np.ndarray, V: np.ndarray) -> float:
    """Σ_a Σ V|δ²_a q| over the interior cells of each axis with at least 3 cells."""
    total = 0.0
    for a in range(V.ndim):
        if V.shape[a] < 3:
            continue
        inner = [slice(None)] * V.ndim
        inner[a] = slice(1, -1)
        total += float(np.sum(V[tuple(inner)] * np.abs(np.diff(q, 2, axis=a))))
    return total


def spatial_error_estimate(
    p: np.ndarray,
    volumes: np.ndarray,
    *,
    rate: np.ndarray | None = None,
    span: float = 0.0,
) -> float:
    r"""The L¹ scale of a grid's own error on the density `p` at the end of a run.

    The larger of two cheap (one pass over p) estimates:

    - the *representation* error Σ_a Σ V|δ²_a p|/24: a cell value of a
      smooth density differs from its cell average by h_a² ∂²_a p/24 per axis
      (the midpoint rule's error), and h_a² ∂²_a p ≈ δ²_a p. The scheme's
      discrete Gibbs state holds point values, so near equilibrium this is
      its whole error;
    - the *accumulated truncation* error span·Σ_a Σ V|δ²_a (L p)|/12, given
      ``rate`` = L p: a second-order difference operator acting on point
      values errs by τ ≈ h_a² ∂²_a(L p)/12 per axis (the second difference's
      h²∂⁴/12), and the error e obeys e' = L e + τ (the error transport
      equation; Banks, Hittinger, Connors & Woodward, *Comput. Methods Appl.
      Mech. Engrg.* 213–216 (2012) 1–15). With τ(s) = c δ²L e^{sL}p₀ and δ²
      commuting with L, e(T) = ∫₀^T e^{(T−s)L} τ(s) ds = T c δ²(L p(T)): what
      a drifting density, whose cell values are no Gibbs state, accumulates.

    On the benchmark problems (``benchmarks/accuracy.py``), taken on the
    solution at t_end, the representation term alone is 0.86–1.26 times the
    measured L¹ spatial error of the grid for the relaxing problems (P2, P4,
    P5, P6) but 0.26 times it for the drifting Gaussian of P1, and the
    accumulated term 0.86–1.52 times it on all five; the larger of the two
    is 0.94 (P1), 1.05–1.11 (P2), 1.45–1.52 (P4), 1.05–1.15 (P5) and
    1.08–1.47 (P6) times it, on every grid of the scan. (Their signed sum
    overestimates the relaxing problems by up to 1.9×: the two parts
    partly cancel there.) It is a statement of how accurate the grid can
    be, which the time stepping need not beat.

    Parameters
    ----------
    p : ndarray
        Density (flat or of the grid's shape).
    volumes : ndarray
        Cell volumes, of the grid's shape.
    rate : ndarray, optional
        L p, the generator applied to `p` (flat or of the grid's shape);
        without it only the representation term counts.
    span : float
        Length of the run that ended at `p` (the accumulation time).

    Examples
    --------
    >>> import numpy as np
    >>> x = (np.arange(100) + 0.5) / 100
    >>> p = np.exp(-((x - 0.5) ** 2) / 0.02); V = np.full(100, 0.01)
    >>> est = spatial_error_estimate(p, V)
    >>> exact = np.sum(V * np.abs(p - np.sqrt(0.02 * np.pi) / 2 / 0.01 * (  # cell averages
    ...     __import__("scipy.special").special.erf((x + 0.005 - 0.5) / np.sqrt(0.02))
    ...     - __import__("scipy.special").special.erf((x - 0.005 - 0.5) / np.sqrt(0.02)))))
    >>> bool(abs(est / exact - 1) < 0.05)
    True
    >>> spatial_error_estimate(p, V, rate=np.zeros(100), span=1.0) == est  # at rest
    True
    """
    V = np.asarray(volumes, float)
    estimate = _second_differences(np.asarray(p, float).reshape(V.shape), V) / 24.0
    if rate is not None and span > 0:
        moving = _second_differences(np.asarray(rate, float).reshape(V.shape), V)
        estimate = max(estimate, span * moving / 12.0)
    return estimate


def _solve_rtol(target: float, mass: float, steps: int) -> float:
    """The linear tolerance for which the 2·steps + 1 solves of a run spend
    :data:`SOLVE_ERROR_FRACTION` of `target` (clipped to :data:`SOLVE_RTOL_RANGE`)."""
    low, high = SOLVE_RTOL_RANGE
    share = SOLVE_ERROR_FRACTION * target / max(mass * (2 * steps + 1), 1e-300)
    return min(max(share, low), high)


def _towards(t: float, t_stop: float, h: float) -> tuple[float, bool]:
    """The step from `t` towards `t_stop` of nominal size `h`: (step, lands on t_stop).

    The last step is the remainder ``t_stop − t``, except within rounding of
    `h`, where `h` itself is kept: its matrix is the cached one.
    """
    landing = h >= (t_stop - t) * (1 - LAND)
    if landing and abs(t_stop - t - h) > LAND * h:
        h = t_stop - t
    return h, landing


class AdaptiveTRBDF2(TRBDF2):
    r"""TR-BDF2 with its own step control: a global time-error target, or a per-step `rtol`.

    **Global control** (the default, ``rtol=None``; needs the length of the
    run, :meth:`plan`). For a time-independent generator the step operators
    R(h L) and exp(h L) commute, so the time error at the end of a run is

    .. math::

        p_N - e^{T L} p_0 = \sum_n \Bigl(\prod_{m>n} R_m\Bigr)(R_n - e^{h_n L})
        \Bigl(\prod_{m<n} e^{h_m L}\Bigr) p_0
        \approx \sum_n \ell_{h_n}(p_N),

    where ℓ_h(p) = (R(hL) − e^{hL}) p is the local error of one step of size h
    *taken at the final state*: the large local errors of the first steps
    sit in stiff components that later steps damp, and only what survives
    counts. Measured on the benchmark problems, each step of a fixed-step
    run contributes the same amount to the final error, equal to the last
    step's local error, to within 10 % (``benchmarks/adaptive.md``). So:

    1. a trial run of :data:`PILOT_STEPS` steps of one rung h₀
       (:data:`PILOT_STEPS_ITERATIVE` with an iterative linear solver) gives p_N, and
       G₀ = ‖ℓ_{h₀}(p_N)‖ · Σ_n (h_n/h₀)³ estimates its time error;
    2. the target is G* = atol + :data:`TIME_ERROR_FRACTION` ·
       :func:`spatial_error_estimate` (p_N, with L p_N over the run's span):
       the time error is kept below 0.7 of what the grid itself misses (its
       representation error, or the truncation error a drifting density
       accumulates, whichever is larger);
    3. the same estimate and target are formed at every save time the
       caller asked for (``save_every``/``save_at``, :meth:`watch`), from the
       trial state there: early in a fast transient the time error is not
       yet damped, and a frame asked for is held to the grid's error as the
       last one is (the frames of the default output, one per step, are
       not watched);
    4. if G₀ ≤ G* (and every watched ratio ≤ 1) the trial run is the result
       (its states are replayed: one factorisation for the whole run);
       otherwise the run takes one finer step size, at one factorisation,
       from the h² law of a second-order method's global error: with no
       save time watched, the equal steps of length span/n with n the
       smallest count such that G₀/G* · (h₀ n/span)^−2 ≤
       :data:`REFINE_MARGIN` (any n, landing on t_end); with watched save
       times, the rung h₀ 2^−j of the aligned ladder (which lands on every
       one of them), with j the smallest integer such that the largest
       ratio G/G* times 4^−j is ≤ 1;
    5. the estimate for the run actually taken is recomputed at its end and
       reported (:attr:`time_error_estimate`);
    6. with CG (symmetric form) and no `linear_rtol`, the solves
       of a run of n steps stop at rtol = :data:`SOLVE_ERROR_FRACTION` ·
       G*/(mass·(2n + 1)), so their error bound Σ rtol·Σ V|b| spends at most
       that fraction of the target (for the trial, G* is guessed from the
       start's representation error, 1–3× the final target on the
       benchmark problems), and the trial is accepted only when G₀ plus the
       bound its solves committed is ≤ G*.

    The local error ℓ_h is estimated by the trapezoidal residual filtered
    twice by the step's matrix, ``(I − γh/2 L)⁻² r``: once filtered (Hosea &
    Shampine 1996) the estimate tends to a constant 1/γ of a stiff mode's
    amplitude whereas the true error |R(z)| falls like 0.48/|z|; the second
    filter makes the ratio estimate/true error 0.8–1.2 for every z = hλ < 0
    (0.8 at z = −5, 1.2 as z → −∞; the scalar test equation).

    **Per-step control** (an explicit `rtol`; with a given `dt` or a run
    without a known end such as ``t_end="equilibrium"``, rtol = 1e-4). The embedded
    estimate, filtered once, must satisfy Σ V|e| ≤ atol + rtol·Σ V|p|
    (the L¹ error committed in one step, relative to the mass). Step sizes
    come from a ladder dt0·2^k, so factorisations are reused. After an
    accepted step with error ratio err the ladder climbs
    ⌊log₂(0.9 err^(−1/3))⌋ rungs (at most four at once), after a rejection
    it drops ⌈log₂(err/0.9)/3⌉ rungs. dt0 defaults to 1/max|L_ii| (a cell's
    diffusion time), and the first step to the rung below
    0.01 Σ V|p| / Σ V|L p| (Hairer, Nørsett & Wanner, *Solving ODEs I*,
    §II.4). Passing `dt` makes it both the ladder base and the first step.

    With a ladder base that divides the save interval (as :func:`fpsolver.solve`
    chooses), every step lands on the save times without a new
    factorisation.

    Attributes
    ----------
    time_error_target, time_error_estimate, spatial_error : float or None
        Global control: G*, the estimated L¹ time error at the end of the
        planned run (set when the run lands there), and the spatial error
        estimate G* was made from.
    """

    name = "adaptive"
    order = 2
    adaptive = True
    cached_matrices = 2  # the current rung and the one below

    def __init__(self, L: Any, linear: LinearSolver | None = None, **options: Any) -> None:
        super().__init__(L, linear, **options)
        if not ((self.rtol is None or self.rtol > 0) and self.atol >= 0):
            raise ValueError(
                f"`rtol` must be > 0 and `atol` >= 0, got rtol={self.rtol}, atol={self.atol}"
            )
        guess = self.dt is None
        if guess:
            self.dt = 1.0 / max(float(np.max(np.abs(L.diagonal()))), 1e-300)
        elif self.rtol is None:
            self.rtol = 1e-4  # a given dt: the ladder of the per-step control
        if self.volumes is None:
            self.volumes = np.ones(L.shape[0])
        self.level = 0
        self._first_guess = guess
        self._aligned = False
        self._t_end: float | None = None
        self._span: float | None = None
        self._cubes = 0.0
        self._replay: deque[tuple[float, float, np.ndarray]] = deque()
        self._replay_start: float | None = None
        self._watch: tuple[float, ...] = ()
        self.time_error_target: float | None = None
        self.time_error_estimate: float | None = None
        self.spatial_error: float | None = None

    @property
    def global_control(self) -> bool:
        """Whether the step follows a global time-error target (no `rtol`)."""
        return self.rtol is None

    def align(self, interval: float) -> None:
        """Make the ladder base divide `interval` (when the base was not given).

        Every rung up to `interval` then divides it, so steps land on the
        save times k·interval without a remainder step and its extra
        factorisation.
        """
        if self._first_guess and interval > 0:
            self.dt = interval / 2.0 ** max(0, math.ceil(math.log2(interval / self.dt)))
            self._aligned = True

    def plan(self, span: float) -> None:
        """The run covers `span` from its first step (global control needs it)."""
        self._span = float(span)
        if not self._aligned:
            self.align(self._span)

    def watch(self, times: Sequence[float]) -> None:
        """Save times the caller asked for: global control holds its target there too."""
        self._watch = tuple(sorted(float(t) for t in times))

    def _first_level(self, p: np.ndarray) -> int:
        """The rung below 1 % of the time over which the density changes (0 without a guess)."""
        rate = float(np.sum(self.volumes * np.abs(self.L @ p)))
        size = float(np.sum(self.volumes * np.abs(p)))
        if not (rate > 0 and size > 0):
            return 0
        return max(0, math.floor(math.log2(0.01 * size / rate / self.dt)))

    def step_with_error(self, p: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """One step and its local error estimate, filtered once (flat arrays)."""
        new, Lp, _ = self._stages(p, dt)
        r = new - p - 0.5 * dt * (Lp + self.L @ new)
        return new, self.linear.solve(0.5 * GAMMA * dt, r, conserve=False)

    def local_error(self, p: np.ndarray, dt: float) -> float:
        """Σ V|ℓ_dt(p)|: the twice-filtered estimate of one step's local L¹ error from `p`."""
        _, est = self.step_with_error(p, dt)
        est = self.linear.solve(0.5 * GAMMA * dt, est, conserve=False)
        return float(np.sum(self.volumes * np.abs(est)))

    def step_to(self, t: float, p: np.ndarray, t_stop: float) -> tuple[float, np.ndarray]:
        if self.global_control:
            if self._t_end is None:
                span = self._span if self._span is not None else t_stop - t
                if not math.isfinite(span) or span <= 0:
                    self.rtol = 1e-4  # no end in sight: per-step control
                    return self._local_step(t, p, t_stop)
                self._choose_level(t, p, span)
            return self._global_step(t, p, t_stop)
        return self._local_step(t, p, t_stop)

    # -- global control ----------------------------------------------------------
    def damped_step(self, p: np.ndarray, dt: float) -> np.ndarray:
        """A first step with the trapezoidal stage replaced by two backward-Euler steps.

        If its BDF2 stage still leaves negative mass (very sharp data), the
        step is one backward-Euler step of dt instead, which never does.

        Both backward-Euler steps (of γ dt/2) use the step's own matrix and
        keep p ≥ 0; the trapezoidal rule would map stiff components of rough
        initial data to about −1 times themselves. One first-order step
        leaves the global order 2 (Rannacher, Numer. Math. 43 (1984) 309–327).
        """
        c = 0.5 * GAMMA * dt
        mid = self.linear.solve(c, self.linear.solve(c, p, p), p)
        rhs = (mid - (1 - GAMMA) ** 2 * p) / (GAMMA * (2 - GAMMA))
        new = self.linear.solve(c, rhs, mid)
        V = self.volumes
        if np.sum(V * np.maximum(-new, 0.0)) > GROSS_NEGATIVE * np.sum(V * np.abs(p)):
            # The BDF2 stage can still undershoot grossly on very sharp data:
            # one backward-Euler step of dt keeps p ≥ 0 for every dt (an M-matrix).
            new = self.linear.solve(dt, p, p)
        return new

    def _undershoot_checked(self, p: np.ndarray, h: float) -> np.ndarray:
        """A step, redone damped when it leaves more than NEGATIVE_TOL of the mass below 0.

        A smaller rung does not cure such undershoots (they come from stiff
        remnants in the tails, measured: the same or larger at h/2), so
        they do not make the global control refine; the damped step does.
        """
        new = self.step(p, h)
        V = self.volumes
        if np.sum(V * np.maximum(-new, 0.0)) > NEGATIVE_TOL * np.sum(V * np.abs(p)):
            new = self.damped_step(p, h)
        return new

    def _run(self, t: float, p: np.ndarray, t_end: float, k: int):
        """Steps of rung k from (t, p) to t_end (the first one damped): the states and Σ h³."""
        h_k, cubes, states = math.ldexp(self.dt, k), 0.0, []
        while True:
            h, landing = _towards(t, t_end, h_k)
            p = self._undershoot_checked(p, h) if states else self.damped_step(p, h)
            self.steps += 1
            cubes += h**3
            t_next = t_end if landing else t + h
            states.append((t, t_next, p))
            t = t_next
            if landing:
                return states, cubes

    def _estimate(self, p: np.ndarray, k: int, cubes: float) -> float:
        """G = ‖ℓ_h(p)‖ Σ_n (h_n/h)³ with h the rung k (p: the state before the last step)."""
        h = math.ldexp(self.dt, k)
        return self.local_error(p, h) * cubes / h**3

    def _choose_level(self, t: float, p: np.ndarray, span: float) -> None:
        """The trial run, the target, and the rung of the run (see the class notes)."""
        self._t_end, self._replay_start = t + span, t
        iterative = self.linear is not None and self.linear.kind not in DIRECT_KINDS
        pilot = PILOT_STEPS_ITERATIVE if iterative else PILOT_STEPS
        k0 = math.floor(math.log2(span / pilot / self.dt) + LAND)
        V, mass = self.volumes.reshape(self.shape), float(np.sum(self.volumes * np.abs(p)))
        # CG on the symmetric form only: BiCGStab's error is rough, and loose
        # solves leave negative densities (measured on a rotating drift)
        tune = self.linear.kind in TUNED_KINDS and not self.linear.rtol_given
        if tune:  # the trial's target is not known yet: the start's representation error
            guess = self.atol + TIME_ERROR_FRACTION * spatial_error_estimate(p, V)
            self.linear.rtol = _solve_rtol(guess, mass, round(span / math.ldexp(self.dt, k0)))
        spent = self.linear.solve_error
        states, cubes = self._run(t, p, self._t_end, k0)
        spent = self.linear.solve_error - spent
        before = states[-2][2] if len(states) > 1 else p
        g0 = self._estimate(before, k0, cubes)
        final = states[-1][2]
        self.spatial_error = spatial_error_estimate(final, V, rate=self.L @ final, span=span)
        target = self.atol + TIME_ERROR_FRACTION * self.spatial_error
        self.time_error_target = target
        ratio = max(g0 / target, self._watched_ratio(t, p, states, k0))
        if max(ratio, (g0 + spent) / target) <= 1.0:
            self.level, self._replay = k0, deque(states)
            self._cubes, self.time_error_estimate = cubes, g0
            self.steps -= len(states)  # replayed, counted once below
            return
        self.rejected_steps += len(states)
        if self.linear is not None:
            self.linear.release()  # the trial's factors: not needed again
        h0 = math.ldexp(self.dt, k0)
        if self._watch:  # save times to land on: a rung of the aligned ladder
            j = max(1, math.ceil(0.5 * math.log2(max(ratio, 1.0))))
            self.level, n = k0 - j, math.ceil(span / h0 * 2**j * (1 - LAND))
        else:  # only t_end to land on: the step count the h² law asks for, not a power of 2
            n = math.ceil(span / h0 * math.sqrt(max(ratio, 1.0) / REFINE_MARGIN) * (1 - LAND))
            n = max(n, len(states) + 1)
            self.dt, self.level = span / n, 0
        if tune:
            self.linear.rtol = _solve_rtol(target, mass, n)

    def _watched_ratio(self, t0: float, p0: np.ndarray, states: list, k0: int) -> float:
        """max G_k / G*_k over the watched times inside the trial run (0 without any).

        The state of the first trial step ending at or after a watched time
        stands for it; G_k and G*_k are the estimate and target of the class
        notes for the run from t0 to that step's end (steps after the first:
        the first one is damped, its error is not that of a TR-BDF2 step).
        """
        ends = [tb for _, tb, _ in states]
        picked = sorted({
            next(m for m, tb in enumerate(ends) if tb >= tw * (1 - LAND))
            for tw in self._watch
            if t0 < tw < ends[-1] * (1 - LAND)
        } - {0, len(states) - 1})  # fmt: skip
        h, worst, V = math.ldexp(self.dt, k0), 0.0, self.volumes.reshape(self.shape)
        for m in picked:
            cubes = sum((tb - ta) ** 3 for ta, tb, _ in states[: m + 1])
            g = self.local_error(states[m - 1][2], h) * cubes / h**3
            pm = states[m][2]
            spatial = spatial_error_estimate(pm, V, rate=self.L @ pm, span=ends[m] - t0)
            worst = max(worst, g / (self.atol + TIME_ERROR_FRACTION * spatial))
        return worst

    def _global_step(self, t: float, p: np.ndarray, t_stop: float) -> tuple[float, np.ndarray]:
        h, landing = _towards(t, t_stop, math.ldexp(self.dt, self.level))
        t_next = t_stop if landing else t + h
        if self._replay and self._replay[0][0] == t and self._replay[0][1] == t_next:
            new = self._replay.popleft()[2]
        else:
            first = self._replay_start is not None and t == self._replay_start
            self._replay.clear()
            new = self.damped_step(p, h) if first else self._undershoot_checked(p, h)
            self._cubes += h**3
            if self._t_end is not None and t_next >= self._t_end * (1 - LAND) and t < self._t_end:
                self.time_error_estimate = self._estimate(p, self.level, self._cubes)
        self.steps += 1
        self.last_step = h
        return t_next, new

    # -- per-step control --------------------------------------------------------
    def _local_step(self, t: float, p: np.ndarray, t_stop: float) -> tuple[float, np.ndarray]:
        V, dt0 = self.volumes, self.dt
        if self._first_guess and self.steps == 0:
            self.level = self._first_level(p)
        while True:
            k = self.level
            h, landing = _towards(t, t_stop, math.ldexp(dt0, k))
            new, est = self.step_with_error(p, h)
            err = float(np.sum(V * np.abs(est))) / (
                self.atol + self.rtol * float(np.sum(V * np.abs(new)))
            )
            self.steps += 1
            if np.isfinite(err) and err <= 1.0:
                break
            self.rejected_steps += 1
            drop = 1 if not np.isfinite(err) else max(1, math.ceil(math.log2(err / 0.9) / 3))
            self.level = min(k, math.floor(math.log2(h / dt0))) - drop
            if math.ldexp(dt0, self.level) < 1e-14 * max(1.0, abs(t)):
                raise RuntimeError(f"adaptive step size underflow at t={t:g}")
        self.last_step = h
        if not landing and err < 0.9 / 8:
            up = math.floor(math.log2(0.9 / max(err, 1e-300) ** (1.0 / 3.0)))
            self.level = k + min(max(up, 1), 4)
        return (t_stop if landing else t + h), new

    def get_state(self) -> dict[str, Any]:
        state = {**super().get_state(), "level": self.level, "dt0": self.dt}
        if self._t_end is not None:
            state.update(t_end_planned=self._t_end, cubes=self._cubes)
            state.update(time_error_target=self.time_error_target)
            state.update(spatial_error=self.spatial_error)
            if self.linear.kind in TUNED_KINDS:
                state.update(linear_rtol=self.linear.rtol)
        if self.rtol is not None:
            state["rtol"] = self.rtol
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.level = int(state.get("level", 0))
        self.dt = float(state.get("dt0", self.dt))
        if "rtol" in state:
            self.rtol = float(state["rtol"])
        if "t_end_planned" in state:
            self._t_end = float(state["t_end_planned"])
            self._cubes = float(state["cubes"])
            self.time_error_target = float(state["time_error_target"])
            self.spatial_error = float(state["spatial_error"])
            if "linear_rtol" in state:
                self.linear.rtol = float(state["linear_rtol"])
        self._replay.clear()


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
    uses_linear_solver = False

    def products_estimate(self, span: float) -> float:
        """About 2·span·max|L_ii| + 20 per step: the Krylov/Taylor degree of
        :func:`~scipy.sparse.linalg.expm_multiply` grows with ‖dt L‖₁ ≈ 2 dt max|L_ii|
        (Al-Mohy & Higham 2011)."""
        norm = 2.0 * float(np.max(np.abs(self.L.diagonal()), initial=0.0))
        steps = math.ceil(span / self.dt) if self.dt else 1
        return span * norm + 20.0 * steps

    def step(self, p: np.ndarray, dt: float) -> np.ndarray:
        from scipy.sparse.linalg import expm_multiply

        return expm_multiply(dt * self.L, p)


class SeparableExact(Stepper):
    r"""Exact propagation of a separable model: ``pⁿ⁺¹ = ⊗_a exp(dt L_a) pⁿ``.

    When the generator is a Kronecker sum L = ⊕_a L_a of one-axis generators
    (:mod:`fpsolver.discrete.separable`), exp(dt L) applies one dense
    n_a × n_a propagator along each axis: exact in time for any dt (order
    :data:`EXACT`), so :meth:`step_to` jumps straight to the stop time and
    no `dt` is needed (``adaptive`` in the sense that the method chooses its
    steps). Open-ended runs (to equilibrium) take steps dt0·2^k, with dt0 =
    `dt` or 0.1/Σ_a max_i (−(L_a)_ii). The propagators are entrywise
    non-negative and conserve mass to rounding; one set is computed per
    distinct step length (equal save intervals share one).

    Parameters
    ----------
    L : sparse matrix, Operator or SeparableGenerator
        The generator (its factors are read off it, which needs `volumes`
        of the grid shape), an operator (its ``separable``), or the factors.
    linear : ignored
        The stepper's ``L`` is the Kronecker sum as a
        :class:`~scipy.sparse.linalg.LinearOperator` (nothing assembled),
        its ``linear`` a
        :class:`~fpsolver.discrete.separable.SeparableSolver` on the same
        factors (``kind`` "separable"; its ``factorizations`` count the
        one-axis propagators built).
    **options
        As for :class:`Stepper`.

    Raises
    ------
    ValueError
        If the generator is not separable.

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> g = fp.Grid(x=(-3, 3, 24), y=(-3, 3, 20))
    >>> m = fp.FokkerPlanck(g, energy=lambda x, y: x**2 / 2 + y**2 / 2)
    >>> s = make_stepper("separable", m)
    >>> t, p = s.step_to(0.0, fp.gaussian(g, (1, 0), 0.1).values.ravel(), 2.0)
    >>> t, s.steps, s.linear.kind, bool(p.min() >= 0)
    (2.0, 1, 'separable', True)
    """

    name = "separable"
    order = EXACT
    adaptive = True
    uses_linear_solver = False
    cached_matrices = 0

    def __init__(self, L: Any, linear: Any = None, **options: Any) -> None:
        shaped = options.get("volumes")
        super().__init__(L, None, **options)
        self.separable = _separable_of(L, shaped)
        self.L = self.separable.as_linear_operator()  # L p without assembling L
        self.linear = self.separable.solver()
        if self.dt is None:
            rate = sum(float(np.max(-np.diag(g))) for g in self.separable.generators)
            self.dt = 0.1 / max(rate, 1e-300)
        self.level = 0

    def step(self, p: np.ndarray, dt: float) -> np.ndarray:
        return self.separable.propagate(p, dt)

    def step_to(self, t: float, p: np.ndarray, t_stop: float) -> tuple[float, np.ndarray]:
        """One exact step: to `t_stop`, or of dt0·2^k when `t_stop` is inf."""
        landing = not math.isinf(t_stop)
        h = t_stop - t if landing else math.ldexp(self.dt, self.level)
        p = self.step(p, h)
        self.level += 0 if landing else 1
        self.steps += 1
        self.last_step = h
        return (t_stop if landing else t + h), p

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "level": self.level}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.level = int(state.get("level", 0))


def _separable_of(L: Any, volumes: Any) -> SeparableGenerator:
    """The factors of `L` (a generator with grid-shaped `volumes`, an operator, or factors)."""
    if isinstance(L, SeparableGenerator):
        return L
    if isinstance(L, Operator):
        sep = L.separable
    elif volumes is None or np.ndim(volumes) < 1:
        raise ValueError("method='separable' needs `volumes` of the grid shape with a matrix `L`")
    else:
        sep = from_generator(L, volumes)
    if sep is None:
        raise ValueError(
            "method='separable' needs a separable model: the generator is not a Kronecker "
            "sum of one-axis generators (energy a sum of one-axis terms, each mobility and "
            "force component varying along its own axis only, at most "
            "4096 cells an axis); use method='adaptive' or 'exponential'"
        )
    return sep


#: The registry: method name → stepper class (each declares ``order``).
METHODS: dict[str, type[Stepper]] = {
    cls.name: cls
    for cls in (
        BackwardEuler,
        CrankNicolson,
        BDF2,
        TRBDF2,
        Exponential,
        AdaptiveTRBDF2,
        SeparableExact,
    )
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


def make_stepper(
    method: str,
    model: Model | Operator,
    *,
    dt: float | None = None,
    rtol: float | None = None,
    atol: float = 1e-8,
    linear_solver: str = "auto",
    linear_rtol: float | None = None,
) -> Stepper:
    """The stepper registered as `method`, set up for `model` (or its operator).

    Implicit methods get a :class:`~fpsolver.discrete.linsolve.LinearSolver`
    chosen by `linear_solver` (see
    :func:`~fpsolver.discrete.linsolve.choose_linear_solver`) with the mass
    correction enabled.

    Examples
    --------
    >>> import fpsolver as fp
    >>> m = fp.FokkerPlanck(fp.Grid(x=(-3, 3, 30)), energy=lambda x: x**2 / 2)
    >>> s = make_stepper("bdf2", m, dt=0.1)
    >>> s.order, s.adaptive, s.linear.kind
    (2, False, 'lu')
    """
    cls = get_stepper(method)
    op = as_operator(model)
    if dt is None and not cls.adaptive:
        raise ValueError(f"`dt` is required for method={method!r} (a positive time step)")
    if cls is SeparableExact:  # its factors, without assembling L
        return cls(op, dt=dt, rtol=rtol, atol=atol, volumes=op.grid.volumes)
    linear = None
    if cls.uses_linear_solver:
        linear = LinearSolver.for_model(
            op, linear_solver, rtol=linear_rtol, memory_factors=cls.cached_matrices
        )
        linear.set_volumes(op.grid.volumes)
    return cls(op.generator, linear, dt=dt, rtol=rtol, atol=atol, volumes=op.grid.volumes)
