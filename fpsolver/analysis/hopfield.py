r"""The continuous Hopfield network (the theory notes' Definition 15, Theorem 16).

Visible units v ∈ ℝ^{d_v} and hidden units h ∈ ℝ^{d_h}, Lagrangians
L_v(v), L_h(h) with activations g = ∂L_v, f = ∂L_h, couplings U
(d_v × d_h) and input I. The deterministic dynamics (Definition 15) is

.. math::

    \dot v = U f(h) - v + I, \qquad \dot h = U^{\mathsf T} g(v) - h,

and the energy

.. math::

    E(v, h) = [(v - I)\cdot g(v) - L_v(v)] + [h\cdot f(h) - L_h(h)] - g(v)^{\mathsf T} U f(h).

**Its gradient.** With H_v = ∂²L_v, H_h = ∂²L_h (so ∂g/∂v = H_v),

.. math::

    \nabla_v E = H_v(v)\,\big(v - I - U f(h)\big), \qquad
    \nabla_h E = H_h(h)\,\big(h - U^{\mathsf T} g(v)\big).

(The notes print −[U f + v − I]·∂g and −[Uᵀ g + h]·∂f: the signs of v, I
and h are slipped; a finite difference of E decides, see the tests.) Hence
the ODE is *exactly* −K ∇E with K = diag(H_v⁻¹, H_h⁻¹): the noise-free
limit of the Fokker–Planck model with energy E and mobility K, for any
Lagrangians with invertible Hessians.

**The Fokker–Planck model** (:meth:`Network.model`): energy E, mobility
K = diag(H_v⁻¹, H_h⁻¹), temperature T; its Itô SDE is
dx = −K ∇E dt + T ∇·K dt + sqrt(2 T K) dW and its stationary density is
exp(−E/T)/Z (the T ∇·K term is what keeps it so when K varies; it is zero
for constant K). For Lagrangians that are sums over units, L(x) =
Σ_i l_i(x_i) (:meth:`Lagrangian.elementwise`, :meth:`Lagrangian.log_cosh`
with activation tanh, :meth:`Lagrangian.softplus` with the logistic
activation, diagonal quadratics) the Hessians are diagonal and K is a
diagonal mobility, K_ii = 1/l_i''(x_i), position-dependent unless the
activation is linear; the grid and the particles both take it. Coupled
Lagrangians (non-diagonal Hessians) give a full tensor mobility K(x),
constant for quadratics, which the grid discretises; the particle backend
takes diagonal mobilities only.

**Learning U and I** (:meth:`Network.parametric_energy`): ∂E/∂U_ij =
−g_i(v) f_j(h) and ∂E/∂I_i = −g_i(v), so Recall and Learn's update of U is
lr (⟨g fᵀ⟩_clamped − ⟨g fᵀ⟩_free): Hebb's rule on the data minus the same
correlation in the free-running network (the notes' Remark 17).

**Theorem 16 as printed** (:meth:`Network.particles`):

.. math::

    dv = K_v\,[U f(h) - v + I]\,dt + \sqrt{2T}\,dW_v, \qquad
    dh = K_h\,[U^{\mathsf T} g(v) - h]\,dt + \sqrt{2T}\,dW_h,

with dW ~ N(0, K dt) as in the notes' Theorem 8 (``noise="mobility"``)
or a standard Wiener increment (``noise="standard"``). Its drift is
−K² ∇E, not −K ∇E: in the linear case it is the Fokker–Planck process
exactly when K_v and K_h are identities (g(v) = v, f(h) = h, where also
both noise readings agree); otherwise it is another linear diffusion whose
stationary covariance solves K²H Σ + Σ H K² = 2D (D = T K or T I), not
T H⁻¹. :meth:`Network.linear_coefficients` gives both processes in the
form dx = −B (x − x*) dt + sqrt(2D) dW for
:func:`fpsolver.core.analytic.linear_moments`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.grid import Grid
from ..core.model import Model

__all__ = ["Lagrangian", "Network"]


@dataclass(frozen=True)
class Lagrangian:
    """A Lagrangian L(x) with its gradient (the activation) and Hessian.

    Build with :meth:`quadratic` (L = ½ xᵀ A x, linear activation A x),
    :meth:`log_cosh` (activation tanh), :meth:`softplus` (logistic
    activation), :meth:`elementwise` (any L = Σ_i l(x_i)) or
    :meth:`from_functions`. All callables act on arrays of shape ``(..., d)``;
    `curvature`, where there is one, gives the diagonal of the Hessian
    (``(..., d)``) of a Lagrangian that is a sum over units.

    Examples
    --------
    >>> import numpy as np
    >>> L = Lagrangian.quadratic([2.0, 0.5])
    >>> float(L.value(np.array([1.0, 2.0]))), L.gradient(np.array([1.0, 2.0])).tolist()
    (2.0, [2.0, 1.0])
    >>> L.diagonal, L.quadratic_matrix.tolist()
    (True, [[2.0, 0.0], [0.0, 0.5]])
    """

    dim: int
    value: Callable[[np.ndarray], Any]
    gradient: Callable[[np.ndarray], Any]
    hessian: Callable[[np.ndarray], Any]
    quadratic_matrix: np.ndarray | None = None
    curvature: Callable[[np.ndarray], Any] | None = None

    @classmethod
    def quadratic(cls, a: Any) -> Lagrangian:
        """L = ½ xᵀ A x: `a` is the diagonal of A (one value per unit) or the SPD matrix A."""
        m = np.asarray(a, dtype=float)
        m = np.diag(np.atleast_1d(m)) if m.ndim <= 1 else m
        if m.ndim != 2 or m.shape[0] != m.shape[1] or not np.allclose(m, m.T):
            raise ValueError(f"a quadratic Lagrangian needs a symmetric matrix, got {a!r}")
        if not np.all(np.linalg.eigvalsh(m) > 0):
            raise ValueError(
                f"the Hessian of a Lagrangian must be positive definite (Theorem 16), got {a!r}"
            )
        m.setflags(write=False)
        return cls(
            m.shape[0],
            lambda x: 0.5 * np.einsum("...i,ij,...j->...", x, m, x),
            lambda x: np.einsum("ij,...j->...i", m, x),
            lambda x: np.broadcast_to(m, (*np.shape(x)[:-1], *m.shape)),
            m,
        )

    @classmethod
    def elementwise(cls, dim: int, value, gradient, curvature) -> Lagrangian:
        """L(x) = Σ_i l(x_i) from the scalar l, l' (the activation) and l'' > 0.

        The Hessian is diagonal, diag l''(x_i): the mobility K = H⁻¹ is a
        position-dependent diagonal one (:meth:`Network.model`).

        Examples
        --------
        >>> import numpy as np
        >>> L = Lagrangian.elementwise(2, lambda x: x**4 / 12 + x**2 / 2,
        ...                            lambda x: x**3 / 3 + x, lambda x: x**2 + 1)
        >>> x = np.array([1.0, 2.0])
        >>> L.hessian(x).tolist(), L.separable
        ([[2.0, 0.0], [0.0, 5.0]], True)
        """
        for name, f in (("value", value), ("gradient", gradient), ("curvature", curvature)):
            if not callable(f):
                raise TypeError(f"`{name}` must be a callable of arrays, got {f!r}")
        d = int(dim)
        if d < 1:
            raise ValueError(f"`dim` must be a positive number of units, got {dim!r}")

        def curv(x: np.ndarray) -> np.ndarray:
            return np.asarray(curvature(np.asarray(x, dtype=float)), dtype=float)

        return cls(
            d,
            lambda x: np.sum(value(np.asarray(x, dtype=float)), axis=-1),
            lambda x: np.asarray(gradient(np.asarray(x, dtype=float)), dtype=float),
            lambda x: curv(x)[..., :, None] * np.eye(d),
            None,
            curv,
        )

    @classmethod
    def log_cosh(cls, dim: int, beta: float = 1.0) -> Lagrangian:
        """L = Σ_i ln cosh(β x_i)/β: activation tanh(β x), l'' = β / cosh²(β x).

        Examples
        --------
        >>> import numpy as np
        >>> L = Lagrangian.log_cosh(1, beta=2.0)
        >>> x = np.array([0.3])
        >>> bool(np.isclose(L.gradient(x)[0], np.tanh(0.6))), float(L.curvature(np.zeros(1))[0])
        (True, 2.0)
        """
        b = _positive(beta, "beta")

        def value(x: np.ndarray) -> np.ndarray:  # ln cosh y = |y| + ln(1 + e^{−2|y|}) − ln 2
            y = np.abs(b * x)
            return (y + np.log1p(np.exp(-2.0 * y)) - np.log(2.0)) / b

        return cls.elementwise(dim, value, lambda x: np.tanh(b * x),
                               lambda x: b / np.cosh(b * x) ** 2)  # fmt: skip

    @classmethod
    def softplus(cls, dim: int, beta: float = 1.0) -> Lagrangian:
        """L = Σ_i ln(1 + e^{β x_i})/β: the logistic activation σ(β x), l'' = β σ (1 − σ).

        Examples
        --------
        >>> import numpy as np
        >>> L = Lagrangian.softplus(1)
        >>> float(L.gradient(np.zeros(1))[0]), float(L.curvature(np.zeros(1))[0])
        (0.5, 0.25)
        """
        from scipy.special import expit

        b = _positive(beta, "beta")
        return cls.elementwise(
            dim,
            lambda x: np.logaddexp(0.0, b * x) / b,
            lambda x: expit(b * x),
            lambda x: b * expit(b * x) * expit(-b * x),
        )

    @classmethod
    def from_functions(cls, dim: int, value, gradient, hessian) -> Lagrangian:
        """A general Lagrangian from its value, gradient (``(..., d)``) and Hessian
        (``(..., d, d)``)."""
        for name, f in (("value", value), ("gradient", gradient), ("hessian", hessian)):
            if not callable(f):
                raise TypeError(f"`{name}` must be a callable of arrays (..., d), got {f!r}")
        return cls(int(dim), value, gradient, hessian)

    @property
    def diagonal(self) -> bool:
        """Quadratic with a diagonal Hessian (constant diagonal mobility)."""
        m = self.quadratic_matrix
        return m is not None and bool(np.all(m == np.diag(np.diag(m))))

    @property
    def separable(self) -> bool:
        """A sum over units: the Hessian is diagonal everywhere (diagonal mobility)."""
        return self.curvature is not None or self.diagonal

    def curvatures(self, x: Any) -> np.ndarray:
        """The diagonal of the Hessian at `x` (shape ``(..., d)``), for separable Lagrangians."""
        x = np.asarray(x, dtype=float)
        if self.curvature is not None:
            return self.curvature(x)
        if not self.diagonal:
            raise ValueError("the Hessian of this Lagrangian is not diagonal")
        m = np.diag(self.quadratic_matrix)  # type: ignore[arg-type]
        return np.broadcast_to(m, (*x.shape[:-1], self.dim))


def _positive(value: Any, name: str) -> float:
    x = float(value)
    if not (np.isfinite(x) and x > 0):
        raise ValueError(f"`{name}` must be a positive number, got {value!r}")
    return x


def _lagrangian(spec: Any, name: str, dim: int) -> Lagrangian:
    if isinstance(spec, Lagrangian):
        lag = spec
    else:
        if np.ndim(spec) == 0:  # one value for every unit: L = a |x|²/2
            spec = np.full(dim, spec, dtype=float)
        try:
            lag = Lagrangian.quadratic(spec)
        except ValueError as err:
            raise ValueError(f"`{name}`: {err}") from None
    if lag.dim != dim:
        raise ValueError(f"`{name}` acts on {lag.dim} units, U has {dim} for it")
    return lag


class Network:
    """A continuous Hopfield network (see the module notes).

    Parameters
    ----------
    U : array_like
        Couplings, shape ``(d_v, d_h)`` (a scalar for one unit each).
    I : array_like
        Input to the visible units, shape ``(d_v,)``.
    L_v, L_h : Lagrangian or array_like
        Lagrangians of the visible and hidden units: a :class:`Lagrangian`,
        or the diagonal (or matrix) A of a quadratic ½ xᵀ A x (one number:
        the same for every unit).

    Examples
    --------
    >>> import numpy as np
    >>> net = Network(U=0.4, I=0.3, L_v=2.0, L_h=0.5)
    >>> v, h = np.array([0.2]), np.array([-0.1])
    >>> dv, dh = net.rhs(v, h)
    >>> gv, gh = net.energy_gradient(v, h)
    >>> K_v, K_h = net.mobility()
    >>> bool(np.allclose(dv, -K_v @ gv)), bool(np.allclose(dh, -K_h @ gh))
    (True, True)
    """

    def __init__(self, U: Any, I: Any, L_v: Any, L_h: Any) -> None:  # noqa: E741
        u = np.asarray(U, dtype=float)
        u = u.reshape(1, 1) if u.ndim == 0 else u
        if u.ndim != 2 or not np.all(np.isfinite(u)):
            raise ValueError(f"`U` must be a finite (d_v, d_h) matrix, got {U!r}")
        if u.size == 0:
            raise ValueError(
                f"`U` has shape {u.shape}: a network needs at least one visible and one hidden unit"
            )
        inp = np.atleast_1d(np.asarray(I, dtype=float))
        if inp.shape != (u.shape[0],) or not np.all(np.isfinite(inp)):
            raise ValueError(f"`I` must hold {u.shape[0]} finite values (one per visible unit), "
                             f"got {I!r}")  # fmt: skip
        self.U, self.I = u, inp
        self.dv, self.dh = u.shape
        self.L_v = _lagrangian(L_v, "L_v", self.dv)
        self.L_h = _lagrangian(L_h, "L_h", self.dh)

    def __repr__(self) -> str:
        return f"Network(d_v={self.dv}, d_h={self.dh})"

    # -- Definition 15 ----------------------------------------------------
    def energy(self, v: Any, h: Any) -> np.ndarray:
        """E(v, h) for arrays of shape ``(..., d_v)`` and ``(..., d_h)``."""
        v, h = np.asarray(v, dtype=float), np.asarray(h, dtype=float)
        g, f = self.L_v.gradient(v), self.L_h.gradient(h)
        ev = np.sum((v - self.I) * g, axis=-1) - self.L_v.value(v)
        eh = np.sum(h * f, axis=-1) - self.L_h.value(h)
        return ev + eh - np.einsum("...i,ij,...j->...", g, self.U, f)

    def energy_gradient(self, v: Any, h: Any) -> tuple[np.ndarray, np.ndarray]:
        """(∇_v E, ∇_h E) = (H_v (v − I − U f(h)), H_h (h − Uᵀ g(v))) (module notes)."""
        v, h = np.asarray(v, dtype=float), np.asarray(h, dtype=float)
        g, f = self.L_v.gradient(v), self.L_h.gradient(h)
        rv = v - self.I - np.einsum("ij,...j->...i", self.U, f)
        rh = h - np.einsum("ji,...j->...i", self.U, g)
        hv, hh = self.L_v.hessian(v), self.L_h.hessian(h)
        return np.einsum("...ij,...j->...i", hv, rv), np.einsum("...ij,...j->...i", hh, rh)

    def rhs(self, v: Any, h: Any) -> tuple[np.ndarray, np.ndarray]:
        """The ODE right-hand side (dv/dt, dh/dt) = (U f(h) − v + I, Uᵀ g(v) − h)."""
        v, h = np.asarray(v, dtype=float), np.asarray(h, dtype=float)
        g, f = self.L_v.gradient(v), self.L_h.gradient(h)
        dv = np.einsum("ij,...j->...i", self.U, f) - v + self.I
        return dv, np.einsum("ji,...j->...i", self.U, g) - h

    def ode(self, v0: Any, h0: Any, t_end: float, *, t_eval: Sequence[float] | None = None,
            rtol: float = 1e-10, atol: float = 1e-12):  # fmt: skip
        """Integrate the deterministic dynamics (scipy's RK45 / DOP853).

        Returns
        -------
        xarray.Dataset
            ``v`` (time, visible) and ``h`` (time, hidden).
        """
        import xarray as xr
        from scipy.integrate import solve_ivp

        dv = self.dv

        def f(_t: float, y: np.ndarray) -> np.ndarray:
            a, b = self.rhs(y[:dv], y[dv:])
            return np.concatenate([a, b])

        y0 = np.concatenate([np.atleast_1d(v0), np.atleast_1d(h0)]).astype(float)
        sol = solve_ivp(f, (0.0, float(t_end)), y0, method="DOP853", t_eval=t_eval,
                        rtol=rtol, atol=atol)  # fmt: skip
        if not sol.success:
            raise RuntimeError(f"the ODE solver failed: {sol.message}")
        return xr.Dataset(
            {"v": (("time", "visible"), sol.y[:dv].T), "h": (("time", "hidden"), sol.y[dv:].T)},
            coords={"time": sol.t},
        )

    def settle(self, v: Any, h: Any, *, t_end: float = 50.0, dt: float = 0.05
               ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Many starts at once: classical RK4 on the ODE to `t_end` (recall of stored patterns).

        Parameters
        ----------
        v, h : array_like
            Starts, shapes ``(..., d_v)`` and ``(..., d_h)``.
        t_end, dt : float
            Time and RK4 step (fourth order; error of the end state about
            dt⁴ times the ODE's time scales).

        Returns
        -------
        v, h : ndarray
            The states at `t_end`.

        Examples
        --------
        >>> import numpy as np
        >>> net = Network(U=1.5, I=0.0, L_v=Lagrangian.log_cosh(1), L_h=Lagrangian.log_cosh(1))
        >>> v, h = net.settle([[0.3], [-0.2]], [[0.1], [-0.4]])
        >>> np.sign(v[:, 0]).tolist()        # each start falls to its own memory
        [1.0, -1.0]
        """
        v, h = np.array(v, dtype=float), np.array(h, dtype=float)
        n = max(1, int(np.ceil(float(t_end) / float(dt) - 1e-9)))
        k = float(t_end) / n
        for _ in range(n):
            a1, b1 = self.rhs(v, h)
            a2, b2 = self.rhs(v + 0.5 * k * a1, h + 0.5 * k * b1)
            a3, b3 = self.rhs(v + 0.5 * k * a2, h + 0.5 * k * b2)
            a4, b4 = self.rhs(v + k * a3, h + k * b3)
            v = v + k / 6 * (a1 + 2 * a2 + 2 * a3 + a4)
            h = h + k / 6 * (b1 + 2 * b2 + 2 * b3 + b4)
        return v, h

    # -- Theorem 16 -------------------------------------------------------
    def mobility(self, v: Any = None, h: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """K_v = H_v⁻¹ and K_h = H_h⁻¹ (constant for quadratic Lagrangians; else at v, h)."""
        mv, mh = self.L_v.quadratic_matrix, self.L_h.quadratic_matrix
        hv = mv if mv is not None else self.L_v.hessian(np.asarray(v, dtype=float))
        hh = mh if mh is not None else self.L_h.hessian(np.asarray(h, dtype=float))
        return np.linalg.inv(hv), np.linalg.inv(hh)

    def hessian(self) -> np.ndarray:
        """The (constant) Hessian of E for quadratic Lagrangians, shape (d, d), d = d_v + d_h."""
        a, b = self.L_v.quadratic_matrix, self.L_h.quadratic_matrix
        if a is None or b is None:
            raise ValueError("the Hessian of E is constant only for quadratic Lagrangians")
        c = a @ self.U @ b
        return np.block([[a, -c], [-c.T, b]])

    def fixed_point(self, v0: Any = None, h0: Any = None, *, t_end: float = 200.0) -> np.ndarray:
        """x* = (v*, h*) where the ODE (and both SDE drifts) vanish.

        Without a start: the unique fixed point of quadratic Lagrangians (a
        linear solve). With a start (v0, h0): the ODE's rest point reached
        from it (integrated to `t_end`, then polished by Newton's method on
        the right-hand side to rounding), for any Lagrangians.

        Examples
        --------
        >>> import numpy as np
        >>> net = Network(U=1.5, I=0.0, L_v=Lagrangian.log_cosh(1), L_h=Lagrangian.log_cosh(1))
        >>> x = net.fixed_point([1.0], [1.0])      # one of two stable states
        >>> bool(x[0] > 1.0 and np.isclose(x[0], x[1]))
        True
        >>> bool(np.abs(np.concatenate(net.rhs(x[:1], x[1:]))).max() < 1e-12)
        True
        """
        if v0 is None and h0 is None:
            a = self.L_v.quadratic_matrix
            rhs = np.concatenate([a @ self.I, np.zeros(self.dh)])
            return np.linalg.solve(self.hessian(), rhs)
        sol = self.ode(v0, h0, t_end, t_eval=[float(t_end)])
        y = np.concatenate([sol["v"].values[-1], sol["h"].values[-1]])
        dv, dh = self.dv, self.dh

        def f(y: np.ndarray) -> np.ndarray:
            return np.concatenate(self.rhs(y[:dv], y[dv:]))

        for _ in range(8):  # Newton with the exact Jacobian [[−1, U H_h], [Uᵀ H_v, −1]]
            jac = -np.eye(dv + dh)
            jac[:dv, dv:] = self.U @ self.L_h.hessian(y[dv:])
            jac[dv:, :dv] = self.U.T @ self.L_v.hessian(y[:dv])
            step = np.linalg.solve(jac, -f(y))
            if np.abs(f(y + step)).max() >= np.abs(f(y)).max():
                break
            y = y + step
        return y

    def linear_coefficients(self, temperature: float, process: str = "fokker_planck",
                            noise: str = "mobility") -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """(B, D) with dx = −B (x − x*) dt + sqrt(2D) dW for quadratic Lagrangians.

        ``process="fokker_planck"``: B = K H, D = T K (stationary covariance T H⁻¹).
        ``process="printed"``: Theorem 16 as printed, B = K² H, D = T K
        (``noise="mobility"``) or T I (``noise="standard"``).
        """
        hess = self.hessian()
        kv, kh = self.mobility()
        k = np.block([[kv, np.zeros((self.dv, self.dh))], [np.zeros((self.dh, self.dv)), kh]])
        if process == "fokker_planck":
            return k @ hess, temperature * k
        if process != "printed":
            raise ValueError(f"`process` must be 'fokker_planck' or 'printed', got {process!r}")
        return k @ k @ hess, temperature * _noise_matrix(k, noise)

    def model(self, grid: Grid, temperature: float, *, cls: type = Model, **kwargs: Any) -> Model:
        """The Fokker–Planck model: energy E, mobility diag(H_v⁻¹, H_h⁻¹), temperature T.

        Constant mobility for diagonal quadratic Lagrangians; for other
        Lagrangians that are sums over units a callable diagonal mobility
        1/l''(x) (the particles then add the Itô term T ∇·K); for coupled
        Lagrangians (non-diagonal Hessians) a full tensor mobility, constant
        for quadratics (the grid handles it; the particle backend does not).

        Parameters
        ----------
        grid : Grid
            d_v + d_h axes: the visible units first, then the hidden ones.
        temperature : float
        cls : type
            The model class (default :class:`~fpsolver.core.model.Model`;
            pass ``fp.FokkerPlanck`` for its conveniences).
        **kwargs
            Passed on (e.g. ``boundary``).

        Examples
        --------
        >>> import fpsolver as fp
        >>> net = Network(U=0.4, I=0.3, L_v=2.0, L_h=0.5)
        >>> grid = fp.Grid(v=(-3, 3, 30), h=(-5, 5, 40))
        >>> m = net.model(grid, 0.5, cls=fp.FokkerPlanck)
        >>> m.mobility_cells()[:, 0, 0].tolist()
        [0.5, 2.0]
        >>> tanh = Network(U=1.5, I=0.0, L_v=Lagrangian.log_cosh(1), L_h=Lagrangian.log_cosh(1))
        >>> mt = tanh.model(grid, 0.2, cls=fp.FokkerPlanck)
        >>> q = mt.equilibrium().values.ravel()
        >>> bool(np.abs(mt.generator() @ q).max() < 1e-11 * q.max())   # L q = 0: Gibbs stationary
        True
        """
        if grid.ndim != self.dv + self.dh:
            raise ValueError(
                f"`grid` needs {self.dv + self.dh} axes (visible first, then hidden), "
                f"got {grid.ndim}: {grid.names}"
            )
        dv = self.dv
        k: Any
        if self.L_v.diagonal and self.L_h.diagonal:
            kv, kh = self.mobility()
            k = np.concatenate([np.diag(kv), np.diag(kh)])
        elif self.L_v.quadratic_matrix is not None and self.L_h.quadratic_matrix is not None:
            kv, kh = self.mobility()  # coupled quadratic: a constant full tensor
            k = np.block([[kv, np.zeros((dv, self.dh))], [np.zeros((self.dh, dv)), kh]])
            kwargs.setdefault("mobility_kind", "tensor")
        elif self.L_v.separable and self.L_h.separable:

            def k(*axes: np.ndarray) -> list[np.ndarray]:
                x = np.stack(np.broadcast_arrays(*axes), axis=-1)
                c = np.concatenate(
                    [self.L_v.curvatures(x[..., :dv]), self.L_h.curvatures(x[..., dv:])], axis=-1
                )
                return list(np.moveaxis(1.0 / c, -1, 0))
        else:
            k = self._tensor_mobility()
            kwargs.setdefault("mobility_kind", "tensor")

        def energy(*axes: np.ndarray) -> np.ndarray:
            x = np.stack(np.broadcast_arrays(*axes), axis=-1)
            return self.energy(x[..., :dv], x[..., dv:])

        def gradient(*axes: np.ndarray) -> list[np.ndarray]:
            x = np.stack(np.broadcast_arrays(*axes), axis=-1)
            gv, gh = self.energy_gradient(x[..., :dv], x[..., dv:])
            return [c for c in np.moveaxis(np.concatenate([gv, gh], axis=-1), -1, 0)]

        return cls(grid, energy, temperature, mobility=k, energy_gradient=gradient, **kwargs)

    # -- learning U and I (Remark 17) -------------------------------------
    def parameters(self, learn: Sequence[str] = ("U", "I")) -> np.ndarray:
        """θ for :meth:`parametric_energy`: U row by row, then I (those named in `learn`)."""
        parts = {"U": self.U.ravel(), "I": self.I}
        return np.concatenate([parts[n] for n in _learned(learn)])

    def parameter_names(self, learn: Sequence[str] = ("U", "I")) -> list[str]:
        """Names of the entries of θ: ``U[i,j]`` and ``I[i]`` (units counted from 1)."""
        names = {
            "U": [f"U[{i + 1},{j + 1}]" for i in range(self.dv) for j in range(self.dh)],
            "I": [f"I[{i + 1}]" for i in range(self.dv)],
        }
        return [x for n in _learned(learn) for x in names[n]]

    def with_parameters(self, theta: Any, learn: Sequence[str] = ("U", "I")) -> Network:
        """The same Lagrangians with U and/or I read from θ (see :meth:`parameters`)."""
        learn = _learned(learn)
        t = np.asarray(theta, dtype=float).ravel()
        sizes = {"U": self.dv * self.dh, "I": self.dv}
        if t.size != sum(sizes[n] for n in learn):
            raise ValueError(
                f"`theta` must hold {sum(sizes[n] for n in learn)} values for {learn}, got {t.size}"
            )
        u, inp, k = self.U, self.I, 0
        for n in learn:
            chunk, k = t[k : k + sizes[n]], k + sizes[n]
            if n == "U":
                u = chunk.reshape(self.dv, self.dh)
            else:
                inp = chunk
        return Network(U=u, I=inp, L_v=self.L_v, L_h=self.L_h)

    def parametric_energy(self, learn: Sequence[str] = ("U", "I")):
        """E(v, h; θ) with θ = (U, I) for :func:`fpsolver.recall_and_learn`, exact gradients.

        ∂E/∂U_ij = −g_i(v) f_j(h), ∂E/∂I_i = −g_i(v): the learning step on U
        is Hebbian, lr (⟨g fᵀ⟩_clamped − ⟨g fᵀ⟩_free). The grid axes are the
        visible units, then the hidden ones.

        Returns
        -------
        fpsolver.analysis.learning.ParametricEnergy

        Examples
        --------
        >>> import numpy as np
        >>> net = Network(U=[[0.5], [-0.2]], I=[0.1, 0.0], L_v=1.0, L_h=Lagrangian.log_cosh(1))
        >>> E = net.parametric_energy()
        >>> pts = [np.array([0.3]), np.array([-0.4]), np.array([0.8])]
        >>> theta = net.parameters()
        >>> bool(np.isclose(E.values(("v1", "v2", "h"), pts, theta)[0],
        ...                 net.energy([0.3, -0.4], [0.8])))
        True
        >>> E.theta_gradient(("v1", "v2", "h"), pts, theta)[:, 0].round(4).tolist()
        [-0.1992, 0.2656, -0.3, 0.4]
        """
        from .learning import ParametricEnergy

        learn, dv = _learned(learn), self.dv

        def split(args: tuple) -> tuple[np.ndarray, np.ndarray, Network]:
            x = np.stack(np.broadcast_arrays(*[np.asarray(a, dtype=float) for a in args[:-1]]),
                         axis=-1)  # fmt: skip
            return x[..., :dv], x[..., dv:], self.with_parameters(args[-1], learn)

        def energy(*args: Any) -> np.ndarray:
            v, h, net = split(args)
            return net.energy(v, h)

        def theta_gradient(*args: Any) -> list[np.ndarray]:
            v, h, net = split(args)
            g, f = net.L_v.gradient(v), net.L_h.gradient(h)
            out = []
            if "U" in learn:
                out += [-g[..., i] * f[..., j] for i in range(dv) for j in range(net.dh)]
            if "I" in learn:
                out += [-g[..., i] for i in range(dv)]
            return out

        def space_gradient(*args: Any) -> list[np.ndarray]:
            v, h, net = split(args)
            gv, gh = net.energy_gradient(v, h)
            return list(np.moveaxis(np.concatenate([gv, gh], axis=-1), -1, 0))

        return ParametricEnergy(energy, theta_gradient=theta_gradient,
                                space_gradient=space_gradient)  # fmt: skip

    def _tensor_mobility(self):
        """K(x) = diag(H_v(v)⁻¹, H_h(h)⁻¹) as a callable returning a nested d × d list."""
        dv, d = self.dv, self.dv + self.dh

        def k(*axes: np.ndarray) -> list[list[np.ndarray]]:
            x = np.stack(np.broadcast_arrays(*axes), axis=-1)
            full = np.zeros((*x.shape[:-1], d, d))
            full[..., :dv, :dv] = np.linalg.inv(self.L_v.hessian(x[..., :dv]))
            full[..., dv:, dv:] = np.linalg.inv(self.L_h.hessian(x[..., dv:]))
            return [[full[..., i, j] for j in range(d)] for i in range(d)]

        return k

    def sde_drift(self, v: Any, h: Any) -> tuple[np.ndarray, np.ndarray]:
        """Drift of Theorem 16 as printed: (K_v [U f − v + I], K_h [Uᵀ g − h])."""
        dv, dh = self.rhs(v, h)
        kv, kh = self.mobility(v, h)
        return np.einsum("...ij,...j->...i", kv, dv), np.einsum("...ij,...j->...i", kh, dh)

    def particles(self, start: Any, *, temperature: float, t_end: float, dt: float,
                  save_every: float | None = None, noise: str = "mobility",
                  seed: Any = None):  # fmt: skip
        """Euler–Maruyama particles of Theorem 16's SDE exactly as printed (in ℝ^d, no walls).

        Parameters
        ----------
        start : ndarray
            Initial positions, shape ``(n, d_v + d_h)``.
        temperature, t_end, dt : float
        save_every : float, optional
            Save the moments every `save_every` (default: at 0 and `t_end`).
        noise : {"mobility", "standard"}
            dW ~ N(0, K dt) (the notes' Theorem 8) or N(0, I dt).
        seed : int, optional

        Returns
        -------
        xarray.Dataset
            ``mean`` (time, axis) and ``covariance`` (time, axis, axis2) of
            the particles; ``attrs["n"]``.
        """
        x = np.array(start, dtype=float)
        if x.ndim != 2 or x.shape[1] != self.dv + self.dh:
            raise ValueError(f"`start` must have shape (n, {self.dv + self.dh}), got {x.shape}")
        kv, kh = self.mobility()  # quadratic Lagrangians: constant K
        k = np.block([[kv, np.zeros((self.dv, self.dh))], [np.zeros((self.dh, self.dv)), kh]])
        chol = np.linalg.cholesky(2.0 * temperature * _noise_matrix(k, noise))
        rng = np.random.default_rng(seed)
        times = _save_times(float(t_end), save_every)
        means, covs, t, dv = [], [], 0.0, self.dv
        for target in times:
            n_steps = max(0, int(np.ceil((target - t) / dt - 1e-9)))
            h_step = (target - t) / n_steps if n_steps else 0.0
            for _ in range(n_steps):
                a, b = self.sde_drift(x[:, :dv], x[:, dv:])
                x += h_step * np.concatenate([a, b], axis=1)
                x += np.sqrt(h_step) * rng.standard_normal(x.shape) @ chol.T
            t = target
            means.append(x.mean(axis=0))
            covs.append(np.cov(x, rowvar=False))
        return _moments_dataset(self, times, means, covs, {"n": x.shape[0], "dt": dt,
                                                           "noise": noise})  # fmt: skip


def _learned(learn: Any) -> tuple[str, ...]:
    names = (learn,) if isinstance(learn, str) else tuple(learn)
    if not names or any(n not in ("U", "I") for n in names) or len(set(names)) != len(names):
        raise ValueError(f"`learn` must name 'U', 'I' or both, once each; got {learn!r}")
    return tuple(n for n in ("U", "I") if n in names)


def _noise_matrix(k: np.ndarray, noise: str) -> np.ndarray:
    if noise == "mobility":
        return k
    if noise == "standard":
        return np.eye(k.shape[0])
    raise ValueError(f"`noise` must be 'mobility' or 'standard', got {noise!r}")


def _save_times(t_end: float, save_every: float | None) -> np.ndarray:
    if not (np.isfinite(t_end) and t_end >= 0):
        raise ValueError(f"`t_end` must be a non-negative number, got {t_end!r}")
    if save_every is None:
        return np.array([0.0, t_end]) if t_end > 0 else np.array([0.0])
    k = int(np.floor(t_end / save_every + 1e-9))
    times = save_every * np.arange(k + 1)
    return times if np.isclose(times[-1], t_end) else np.append(times, t_end)


def _moments_dataset(net: Network, times, means, covs, attrs: dict):
    import xarray as xr

    names = [f"v{i + 1}" for i in range(net.dv)] + [f"h{i + 1}" for i in range(net.dh)]
    return xr.Dataset(
        {
            "mean": (("time", "axis"), np.array(means)),
            "covariance": (("time", "axis", "axis2"), np.array(covs).reshape(len(times),
                                                                            len(names), -1)),
        },
        coords={"time": times, "axis": names, "axis2": names},
        attrs=attrs,
    )  # fmt: skip
