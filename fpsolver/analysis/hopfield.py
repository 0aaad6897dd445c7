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
dx = −K ∇E dt + sqrt(2 T K) dW (+ T ∇·K, zero for constant K) and its
stationary density is exp(−E/T)/Z. The library's models take a diagonal
mobility, so this is built for quadratic Lagrangians with diagonal
Hessians (linear activations g = A v, f = B h, A and B diagonal);
non-diagonal Hessians need a full tensor mobility, not there yet.

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

    Build with :meth:`quadratic` (L = ½ xᵀ A x, linear activation A x) or
    :meth:`from_functions`. All callables act on arrays of shape ``(..., d)``.

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


def _lagrangian(spec: Any, name: str, dim: int) -> Lagrangian:
    if isinstance(spec, Lagrangian):
        lag = spec
    else:
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
        or the diagonal (or matrix) A of a quadratic ½ xᵀ A x.

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

    def fixed_point(self) -> np.ndarray:
        """x* = (v*, h*) where the ODE (and both SDE drifts) vanish (quadratic Lagrangians)."""
        a = self.L_v.quadratic_matrix
        rhs = np.concatenate([a @ self.I, np.zeros(self.dh)])
        return np.linalg.solve(self.hessian(), rhs)

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
        """
        if grid.ndim != self.dv + self.dh:
            raise ValueError(
                f"`grid` needs {self.dv + self.dh} axes (visible first, then hidden), "
                f"got {grid.ndim}: {grid.names}"
            )
        if not (self.L_v.diagonal and self.L_h.diagonal):
            raise ValueError(
                "the Fokker–Planck model needs quadratic Lagrangians with diagonal Hessians "
                "(a constant diagonal mobility K = H^-1); non-diagonal or position-dependent "
                "Hessians need a full tensor mobility, which the library does not have yet"
            )
        kv, kh = self.mobility()
        k = np.concatenate([np.diag(kv), np.diag(kh)])
        dv = self.dv

        def energy(*axes: np.ndarray) -> np.ndarray:
            x = np.stack(np.broadcast_arrays(*axes), axis=-1)
            return self.energy(x[..., :dv], x[..., dv:])

        def gradient(*axes: np.ndarray) -> list[np.ndarray]:
            x = np.stack(np.broadcast_arrays(*axes), axis=-1)
            gv, gh = self.energy_gradient(x[..., :dv], x[..., dv:])
            return [c for c in np.moveaxis(np.concatenate([gv, gh], axis=-1), -1, 0)]

        return cls(grid, energy, temperature, mobility=k, energy_gradient=gradient, **kwargs)

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
