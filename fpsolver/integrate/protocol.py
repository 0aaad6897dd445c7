r"""Time steppers for dp/dt = L(t) p: time-dependent models (protocols).

Each stepper evaluates L where its order needs it (t_n = start, t_{n+1} =
end of a step):

=================  =====  ==================================================
method             order  L evaluated at
=================  =====  ==================================================
backward_euler     1      t_{n+1}:  (I − h L(t_{n+1})) p^{n+1} = p^n
crank_nicolson     2      both ends: (I − h/2 L_{n+1}) p^{n+1}
                          = (I + h/2 L_n) p^n
bdf2               2      t_{n+1} (variable-step BDF2; a backward-Euler step
                          starts it and restarts it after a breakpoint)
tr_bdf2            2      t_n, t_n + γh (trapezoidal stage), t_{n+1} (BDF2
                          stage), γ = 2 − √2
ros2               2      t_n, t_{n+1}: products L p only; the one matrix
                          W = L(t_W) of an earlier time is factorised and
                          reused (a Rosenbrock W-method, γ = 1 + 1/√2)
ros2_accurate      2      as ros2 with γ = 1 − 1/√2 (TR-BDF2's time error)
adaptive           2      as tr_bdf2, with the embedded error estimate of
                          Hosea & Shampine (1996); step sizes land on every
                          save time and every breakpoint
=================  =====  ==================================================

Breakpoints: a step never straddles one. A step that ends on a breakpoint
evaluates L just before it (the time ``nextafter(t_b, −∞)``), the next one
starts just after it, so a protocol that jumps there (either way it is
continuous from one side) is integrated with the step's full order.

Every matrix I − c L(t) is new, so each needs a factorisation (sharing the
pattern, no symbolic work: :mod:`fpsolver.discrete.protocol`). With
``linear_solver="reuse"`` a factorisation is instead reused as the
preconditioner of a Richardson iteration on nearby times, refactorised when
the iteration stops contracting fast (see :class:`ProtocolLinearSolver`).
``ros2`` needs no exact solve with L(t): it is second order with any W, so
one factorisation serves until L has moved (:class:`ROS2Protocol`).

References: Hairer & Wanner, *Solving ODEs II* (1996) §V.1 (variable-step
BDF2); Bank et al., IEEE Trans. CAD 4 (1985) 436–451 and Hosea & Shampine,
Appl. Numer. Math. 20 (1996) 21–37 (TR-BDF2 and its error estimate);
Verwer, Spee, Blom & Hundsdorfer, SIAM J. Sci. Comput. 20 (1999) 1456–1480
and Hairer & Wanner II §IV.7 (ROS2 and W-methods).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np

from ..core.schedule import positive, substeps
from ..discrete.lu import sparse_lu
from ..discrete.protocol import Snapshot, TimeDependentGenerator

__all__ = [
    "PROTOCOL_METHODS",
    "ProtocolLinearSolver",
    "ProtocolStepper",
    "make_protocol_stepper",
]

GAMMA = 2.0 - math.sqrt(2.0)
#: γ of ROS2 (L-stable with W = L).
ROS2_GAMMA = 1.0 + 1.0 / math.sqrt(2.0)
#: γ of :class:`ROS2AccurateProtocol` (small error constant).
ROS2_ACCURATE_GAMMA = 1.0 - 1.0 / math.sqrt(2.0)


class ProtocolLinearSolver:
    """Solves (I − c L(t)) x = b for many t, reusing the sparsity pattern.

    Parameters
    ----------
    gen : TimeDependentGenerator
    kind : {"lu", "reuse", "auto"}
        ``"lu"``: a sparse LU per matrix (exact to rounding; backward Euler
        then keeps p ≥ 0 and the discrete second law exactly). ``"reuse"``:
        the LU of an earlier time with the same c preconditions a Richardson
        iteration x ← x + M⁻¹(b − A x) until Σ V|r| ≤ `rtol`·Σ V|b|; the
        iteration conserves mass exactly (every correction has zero
        V-weighted sum) and refactorises when a solve needs more than
        `max_iter` iterations. ``"auto"``: "reuse" from 20 000 cells, else "lu".
    rtol : float
        Richardson stopping test.
    """

    def __init__(
        self,
        gen: TimeDependentGenerator,
        kind: str = "auto",
        rtol: float = 1e-10,
        max_iter: int = 4,
    ) -> None:
        if kind not in ("auto", "lu", "reuse"):
            raise ValueError(
                f"`linear_solver` must be 'auto', 'lu' or 'reuse' for a time-dependent model, "
                f"got {kind!r}"
            )
        self.gen = gen
        self.kind = ("reuse" if gen.grid.size >= 20_000 else "lu") if kind == "auto" else kind
        self.rtol = float(rtol)
        self.max_iter = int(max_iter)
        self.factorizations = 0
        self.iterations = 0
        self._lu: OrderedDict[tuple[float, float], Any] = OrderedDict()

    def _factor(self, snap: Snapshot, c: float) -> Any:
        key = (snap.t, c)
        lu = self._lu.get(key)
        if lu is None:
            lu = sparse_lu(self.gen.shifted(snap, c))
            self.factorizations += 1
            self._lu[key] = lu
            while len(self._lu) > 6:
                self._lu.popitem(last=False)
        return lu

    def solve(self, snap: Snapshot, c: float, b: np.ndarray) -> np.ndarray:
        """x with (I − c L(snap.t)) x = b."""
        if self.kind == "lu" or (snap.t, c) in self._lu:
            return self._factor(snap, c).solve(b)
        near = [k for k in self._lu if k[1] == c]
        if not near:
            return self._factor(snap, c).solve(b)
        lu = self._lu[near[-1]]
        A = self.gen.shifted(snap, c)
        V = self.gen.volumes
        scale = self.rtol * float(np.sum(V * np.abs(b)))
        x = lu.solve(b)
        for _ in range(self.max_iter):
            r = b - A @ x
            self.iterations += 1
            if float(np.sum(V * np.abs(r))) <= scale:
                return x
            x = x + lu.solve(r)
        return self._factor(snap, c).solve(b)  # not contracting fast: refactorise


class ProtocolStepper:
    """Base class: one step of dp/dt = L(t) p from t to t + h.

    Subclasses set ``name``, ``order`` and implement :meth:`advance`. The
    driver (:func:`fpsolver.integrate.protocol_run.solve_protocol`) passes
    the evaluation times of the two ends (``ta``, ``tb``), which differ
    from t, t + h only by one ulp at a breakpoint.
    """

    name = ""
    order = 0
    adaptive = False
    #: Whether a solve with a stale factorisation (``linear_solver="reuse"``) is
    #: refined by Richardson iterations (reported as ``richardson_iterations``);
    #: a W-method solves with its stale W as it is.
    refines_stale_solves = True

    def __init__(
        self,
        gen: TimeDependentGenerator,
        *,
        dt: float | None = None,
        linear_solver: str = "auto",
        rtol: float = 1e-4,
        atol: float = 1e-8,
    ) -> None:
        self.gen = gen
        self.linear = ProtocolLinearSolver(gen, linear_solver)
        self.dt = None if dt is None else positive(dt, "dt")
        if self.dt is None and not self.adaptive:
            raise ValueError(f"`dt` is required for method={self.name!r} (a positive time step)")
        self.rtol, self.atol = float(rtol), float(atol)
        self.steps = 0
        self.rejected_steps = 0
        self.last_step = math.nan
        self._plan: list[float] = []
        self._plan_target: float | None = None

    @property
    def factorizations(self) -> int:
        """Factorisations built so far."""
        return self.linear.factorizations

    def reset(self) -> None:
        """Forget the history (after a breakpoint)."""

    def advance(self, p: np.ndarray, h: float, ta: float, tb: float) -> np.ndarray:
        """p after one step of size h (L at `ta`, `tb` and in between)."""
        raise NotImplementedError  # pragma: no cover

    def step_to(
        self, t: float, p: np.ndarray, t_stop: float, *, after_break: bool, to_break: bool
    ) -> tuple[float, np.ndarray, float, float]:
        """One accepted step towards `t_stop`; returns (t_new, p_new, ta, tb)."""
        if self._plan_target != t_stop or not self._plan:
            self._plan = list(reversed(substeps(t_stop - t, self.dt)))
            self._plan_target = t_stop
        h = self._plan.pop()
        landing = not self._plan
        t_new = t_stop if landing else t + h
        ta, tb = _ends(t, t_new, after_break, to_break and landing)
        p = self.advance(p, h, ta, tb)
        self.steps += 1
        self.last_step = h
        return t_new, p, ta, tb


def _ends(t: float, t_new: float, after_break: bool, to_break: bool) -> tuple[float, float]:
    ta = float(np.nextafter(t, math.inf)) if after_break else t
    tb = float(np.nextafter(t_new, -math.inf)) if to_break else t_new
    return ta, tb


class BackwardEulerProtocol(ProtocolStepper):
    """(I − h L(t_{n+1})) p^{n+1} = p^n. Order 1; p ≥ 0 for every h (with LU)."""

    name = "backward_euler"
    order = 1

    def advance(self, p: np.ndarray, h: float, ta: float, tb: float) -> np.ndarray:
        return self.linear.solve(self.gen(tb), h, p)


class CrankNicolsonProtocol(ProtocolStepper):
    """(I − h/2 L(t_{n+1})) p^{n+1} = (I + h/2 L(t_n)) p^n. Order 2."""

    name = "crank_nicolson"
    order = 2

    def advance(self, p: np.ndarray, h: float, ta: float, tb: float) -> np.ndarray:
        rhs = p + 0.5 * h * (self.gen(ta).L @ p)
        return self.linear.solve(self.gen(tb), 0.5 * h, rhs)


class BDF2Protocol(ProtocolStepper):
    """Variable-step BDF2 with L at t_{n+1}; backward-Euler start. Order 2."""

    name = "bdf2"
    order = 2

    def reset(self) -> None:
        self._prev: tuple[np.ndarray, float] | None = None

    def advance(self, p: np.ndarray, h: float, ta: float, tb: float) -> np.ndarray:
        prev = getattr(self, "_prev", None)
        snap = self.gen(tb)
        if prev is None:
            new = self.linear.solve(snap, h, p)
        else:
            p_old, h_old = prev
            w = h / h_old
            a = (1 + 2 * w) / (1 + w)
            rhs = ((1 + w) * p - w * w / (1 + w) * p_old) / a
            new = self.linear.solve(snap, h / a, rhs)
        self._prev = (p, h)
        return new


class TRBDF2Protocol(ProtocolStepper):
    """TR-BDF2 (γ = 2 − √2) with L at t_n, t_n + γh and t_{n+1}. Order 2, L-stable."""

    name = "tr_bdf2"
    order = 2

    def stages(self, p: np.ndarray, h: float, ta: float, tb: float):
        c = 0.5 * GAMMA * h
        La_p = self.gen(ta).L @ p
        mid = self.linear.solve(self.gen(ta + GAMMA * (tb - ta)), c, p + c * La_p)
        rhs = (mid - (1 - GAMMA) ** 2 * p) / (GAMMA * (2 - GAMMA))
        return self.linear.solve(self.gen(tb), c, rhs), La_p

    def advance(self, p: np.ndarray, h: float, ta: float, tb: float) -> np.ndarray:
        return self.stages(p, h, ta, tb)[0]


class ROS2Protocol(ProtocolStepper):
    r"""ROS2, a Rosenbrock W-method (γ = 1 + 1/√2): order 2 for any matrix W.

    Verwer, Spee, Blom & Hundsdorfer, SIAM J. Sci. Comput. 20 (1999)
    1456–1480, with W = L(t_W) for some earlier time t_W:

        (I − γh W) k1 = L(t_n) p^n
        (I − γh W) k2 = L(t_n + h)(p^n + h k1) − 2 k1
        p^{n+1} = p^n + 3h/2 k1 + h/2 k2

    The order conditions of a W-method hold for every W (Hairer & Wanner II,
    §IV.7), and since the time is carried as an extra variable with zero
    row in W, ∂L/∂t is not needed. So the LU of I − γh L(t_W) is reused for
    many steps: a step costs two solves with one factorisation, the
    products L(t_n) p and L(t_n + h) q, and one new assembly (L(t_n + h);
    L(t_n) is the last step's end, cached). With W = L(t_n) it is an
    L-stable Rosenbrock method.

    W is refactorised (`factorizations` counts it) with ``linear_solver="lu"``
    at every step, otherwise (``"reuse"``; ``"auto"`` from 20 000 cells) when

    - the step size h (hence γh) changes, or a breakpoint was crossed;
    - the generator has moved: max over the stored entries of
      |L_ij(t_n) − W_ij| / (|W_ij| + 10⁻⁶ max|W|) exceeds `refresh`
      (default 0.05). For a link this is about the change of its potential
      difference δ = ΔE/T since t_W, so the part of L that the stale W
      leaves explicit stays a small fraction of the implicit one, and
      stability is that of the plain method.

    Mass is conserved to rounding (Σ V k = 0 for both stages, as L and W
    conserve mass); like TR-BDF2 the method does not keep p ≥ 0 in general.

    `gamma`: with W = L the stability function is
    R(z) = (1 + (1 − 2γ) z)/(1 − γz)², A-stable for γ ≥ 1/4 and L-stable
    for γ = 1 ± 1/√2. The default γ = 1 + 1/√2 of Verwer et al. keeps
    R(z) > 0 for real z < 0 (stiff modes decay without changing sign) but
    has the error constant γ − γ² − 1/6 ≈ −1.37; γ = 1 − 1/√2 has 0.040,
    about that of TR-BDF2 (measured on the dragged trap:
    ``benchmarks/protocols.md``), and R(z) down to −0.21.

    Examples
    --------
    >>> import fpsolver as fp
    >>> from fpsolver.discrete.protocol import TimeDependentGenerator
    >>> m = fp.FokkerPlanck(fp.Grid(x=(-6, 6, 60)), energy=lambda x, t: (x - 0.1 * t) ** 2)
    >>> s = ROS2Protocol(TimeDependentGenerator(m), dt=0.05, linear_solver="reuse")
    >>> p = fp.gaussian(m.grid, 0.0, 1.0).values
    >>> for k in range(20):
    ...     p = s.advance(p, 0.05, 0.05 * k, 0.05 * (k + 1))
    >>> s.factorizations, bool(abs(m.grid.volumes @ p - 1) < 1e-14)
    (1, True)
    """

    refines_stale_solves = False
    name = "ros2"
    order = 2
    #: Default largest relative change of the entries of L before W is refreshed.
    REFRESH = 0.05

    def __init__(
        self,
        gen: TimeDependentGenerator,
        *,
        refresh: float = REFRESH,
        gamma: float = ROS2_GAMMA,
        **kw: Any,
    ) -> None:
        super().__init__(gen, **kw)
        self.gamma = float(gamma)
        if not self.gamma >= 0.25:
            raise ValueError(f"`gamma` must be at least 1/4 (A-stability), got {gamma!r}")
        self.refresh = float(refresh)
        if not self.refresh > 0:  # inf: refresh only when h changes or at a breakpoint
            raise ValueError(f"`refresh` must be positive (inf allowed), got {refresh!r}")
        self.reset()

    def reset(self) -> None:
        self._w: tuple[float, Any, np.ndarray, np.ndarray] | None = None

    def _moved(self, snap: Snapshot, c: float) -> bool:
        """Whether W must be refactorised for the step from `snap` with γh = c."""
        if self._w is None or self.linear.kind == "lu" or self._w[0] != c:
            return True
        data_w, inv = self._w[2], self._w[3]
        return float(np.max(np.abs(snap.L.data - data_w) * inv)) > self.refresh

    def factor(self, snap: Snapshot, c: float) -> Any:
        """The LU of I − c W, W = L(snap.t) when refreshed, else the stale one."""
        if self._moved(snap, c):
            data = snap.L.data
            floor = 1e-6 * float(np.max(np.abs(data))) if data.size else 1.0
            inv = 1.0 / (np.abs(data) + floor)
            self._w = (c, sparse_lu(self.gen.shifted(snap, c)), data, inv)
            self.linear.factorizations += 1
        return self._w[1]

    def advance(self, p: np.ndarray, h: float, ta: float, tb: float) -> np.ndarray:
        sa, sb = self.gen(ta), self.gen(tb)
        lu = self.factor(sa, self.gamma * h)
        k1 = lu.solve(sa.L @ p)
        k2 = lu.solve(sb.L @ (p + h * k1) - 2.0 * k1)
        return p + (1.5 * h) * k1 + (0.5 * h) * k2


class ROS2AccurateProtocol(ROS2Protocol):
    r"""ROS2 with γ = 1 − 1/√2: the W-method of :class:`ROS2Protocol` with a small error constant.

    The error constant γ − γ² − 1/6 is 0.040 instead of −1.37, so at equal
    step the time error is that of TR-BDF2 (``benchmarks/protocols.md``);
    still L-stable, but the stability function dips to −0.21 on the
    negative axis (stiff modes decay with alternating sign).

    Examples
    --------
    >>> import fpsolver as fp
    >>> from fpsolver.discrete.protocol import TimeDependentGenerator
    >>> m = fp.FokkerPlanck(fp.Grid(x=(-6, 6, 60)), energy=lambda x, t: (x - 0.1 * t) ** 2)
    >>> round(make_protocol_stepper("ros2_accurate", TimeDependentGenerator(m), dt=0.1).gamma, 4)
    0.2929
    """

    name = "ros2_accurate"

    def __init__(self, gen: TimeDependentGenerator, **kw: Any) -> None:
        kw.setdefault("gamma", ROS2_ACCURATE_GAMMA)
        super().__init__(gen, **kw)


class AdaptiveProtocol(TRBDF2Protocol):
    r"""TR-BDF2 with an embedded error estimate; steps land on save times and breakpoints.

    The residual of the trapezoidal rule over the step,
    r = p^{n+1} − p^n − h/2 (L_n p^n + L_{n+1} p^{n+1}), filtered by
    (I − γh/2 L_{n+1})⁻¹, estimates the local error (Hosea & Shampine 1996);
    a step is accepted when Σ V|e| ≤ atol + rtol·Σ V|p|, and the next step
    is h·min(4, max(0.2, 0.9 err^(−1/3))).
    """

    name = "adaptive"
    adaptive = True

    def _first(self, p: np.ndarray, t: float) -> float:
        if self.dt is not None:
            return self.dt
        V = self.gen.volumes
        rate = float(np.sum(V * np.abs(self.gen(t).L @ p)))
        size = float(np.sum(V * np.abs(p)))
        return 0.01 * size / rate if rate > 0 else 1.0

    def step_to(
        self, t: float, p: np.ndarray, t_stop: float, *, after_break: bool, to_break: bool
    ) -> tuple[float, np.ndarray, float, float]:
        V = self.gen.volumes
        h = getattr(self, "_next", None) or self._first(p, t)
        while True:
            landing = h >= (t_stop - t) * (1 - 1e-9)
            h = t_stop - t if landing else h
            t_new = t_stop if landing else t + h
            ta, tb = _ends(t, t_new, after_break, to_break and landing)
            new, La_p = self.stages(p, h, ta, tb)
            snap_b = self.gen(tb)
            r = new - p - 0.5 * h * (La_p + snap_b.L @ new)
            est = self.linear.solve(snap_b, 0.5 * GAMMA * h, r)
            err = float(np.sum(V * np.abs(est))) / (
                self.atol + self.rtol * float(np.sum(V * np.abs(p)))
            )
            self.steps += 1
            if np.isfinite(err) and err <= 1.0:
                break
            self.rejected_steps += 1
            h *= 0.2 if not np.isfinite(err) else max(0.2, 0.9 * err ** (-1 / 3))
            if h < 1e-14 * max(1.0, abs(t)):
                raise RuntimeError(f"adaptive step size underflow at t={t:g}")
        grow = min(4.0, max(0.2, 0.9 * max(err, 1e-12) ** (-1 / 3)))
        if not landing or grow < 1 or getattr(self, "_next", None) is None:
            self._next = h * grow
        self.last_step = h
        return t_new, new, ta, tb


#: Methods for time-dependent models: name → stepper class.
PROTOCOL_METHODS: dict[str, type[ProtocolStepper]] = {
    cls.name: cls
    for cls in (
        BackwardEulerProtocol,
        CrankNicolsonProtocol,
        BDF2Protocol,
        TRBDF2Protocol,
        ROS2Protocol,
        ROS2AccurateProtocol,
        AdaptiveProtocol,
    )
}


def make_protocol_stepper(
    method: str, gen: TimeDependentGenerator, **options: Any
) -> ProtocolStepper:
    """A stepper for the time-dependent generator `gen`.

    Examples
    --------
    >>> import fpsolver as fp
    >>> from fpsolver.discrete.protocol import TimeDependentGenerator
    >>> m = fp.FokkerPlanck(fp.Grid(x=(-3, 3, 30)), energy=lambda x, t: (x - t) ** 2)
    >>> make_protocol_stepper("tr_bdf2", TimeDependentGenerator(m), dt=0.1).order
    2
    """
    if method not in PROTOCOL_METHODS:
        raise ValueError(
            f"`method` must be one of {sorted(PROTOCOL_METHODS)} for a time-dependent model, "
            f"got {method!r}"
        )
    stepper = PROTOCOL_METHODS[method](gen, **options)
    stepper.reset()
    return stepper
