r"""Learning an energy: Lemma 13 on the grid, the exact data likelihood, persistent chains.

A parametric energy E(x; θ) (:class:`ParametricEnergy`) defines the
discrete Gibbs density q_θ = exp(−E/T)/Z_h(θ) with Z_h = Σ V exp(−E/T).
The free energy of q_θ is F(θ) = −T ln Z_h(θ), and differentiating the
finite sum gives the discrete form of the theory notes' Lemma 13, exactly
(no quadrature error: the derivative of the discrete Z_h is the discrete
average)

.. math::

    \frac{\partial}{\partial\theta^\alpha}\big(-T\ln Z_h\big)
    = \sum_i V_i\, q_i\, \frac{\partial E_i}{\partial\theta^\alpha}
    = \Big\langle \frac{\partial E}{\partial\theta^\alpha} \Big\rangle_{q_\theta}.

:func:`free_energy_gradient` returns both sides' ingredients.

**Visible data.** With the axes split into visible v and hidden h
(:mod:`fpsolver.analysis.latent`), the visible marginal of q_θ is
m_θ(v) = Z_h(v; θ)/Z_h(θ), and the exact grid log-likelihood of data
v_1 … v_n (energies interpolated linearly between visible cell layers) is

.. math::

    \ell(\theta) = \frac1n\sum_i \ln Z_h(v_i;\theta) - \ln Z_h(\theta),
    \qquad
    -T\,\frac{\partial \ell}{\partial\theta}
    = \frac1n\sum_i \langle \partial_\theta E(v_i,\cdot)\rangle_{q_\theta(\cdot\mid v_i)}
    - \langle \partial_\theta E \rangle_{q_\theta},

Lemma 13 applied to Z_h(v) (the clamped, data term) and to Z_h (the free,
model term). So −T ℓ(θ) = F_clamped(θ) − F_free(θ), with
F_clamped = −(T/n) Σ_i ln Z_h(v_i) and F_free = −T ln Z_h, is the free
energy that recall-and-learn descends (:func:`grid_learning_terms`).

**Gauge.** q_θ does not change under E → E + c(θ). The theory notes fix
this by E(x; θ) → E(x; θ) − E(x*; θ) for a chosen x*: both F_clamped and
F_free then shift by −E(x*; θ), so their difference, ℓ, and the update
direction are unchanged, while each of them stops drifting with an
additive constant in θ.

**Particles.** :class:`LangevinChains` holds persistent Euler–Maruyama
chains of dx = −K ∇E dt + sqrt(2 T K) dW (constant diagonal K; reflecting
walls mirror, periodic axes wrap), with some axes optionally clamped, for
the particle variant of recall-and-learn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import logsumexp

from ..core import diagnostics as dg
from ..core.grid import Grid, field_caller
from .latent import restrict, split_axes

__all__ = [
    "ParametricEnergy",
    "free_energy_gradient",
    "LearningTerms",
    "grid_learning_terms",
    "LangevinChains",
]

_EPS3 = float(np.finfo(float).eps ** (1.0 / 3.0))


class ParametricEnergy:
    """An energy E(x; θ) with its gradients in θ and in x.

    Parameters
    ----------
    func : callable
        ``func(*axes, theta)``: the energy at points (one array per axis)
        for the parameter vector ``theta`` (1-D array). Axis names and
        ``theta`` may also be keyword parameters (as for model energies).
    theta_gradient : callable, optional
        ``theta_gradient(*axes, theta)``: one array per parameter, ∂E/∂θ^α.
        Default: central differences with step h_α = `step`·max(1, |θ^α|),
        error (h_α²/6) ∂³E/∂θ³ (second order).
    space_gradient : callable, optional
        ``space_gradient(*axes, theta)``: one array per axis, ∇_x E (for
        particles). Default: central differences, step ε^(1/3)·max(1, |x|).
    step : float
        Relative step of the θ differences (1e-4: error about 1e-9 relative
        for smooth energies, above the rounding of about 1e-12).
    reference : sequence of float, optional
        The gauge point x*: the energy becomes E(x; θ) − E(x*; θ) (and its
        gradients likewise). See :meth:`gauged`.

    Examples
    --------
    >>> import numpy as np
    >>> E = ParametricEnergy(lambda x, theta: 0.5 * theta[1] * (x - theta[0]) ** 2)
    >>> x = np.array([0.0, 1.0])
    >>> E.values(("x",), [x], [0.5, 2.0]).tolist()
    [0.25, 0.25]
    >>> np.round(E.theta_gradient(("x",), [x], [0.5, 2.0]), 8).tolist()
    [[1.0, -1.0], [0.125, 0.125]]
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        theta_gradient: Callable[..., Any] | None = None,
        space_gradient: Callable[..., Any] | None = None,
        step: float = 1e-4,
        reference: Sequence[float] | None = None,
    ) -> None:
        for name, f in (("energy", func), ("theta_gradient", theta_gradient),
                        ("space_gradient", space_gradient)):  # fmt: skip
            if f is not None and not callable(f):
                raise TypeError(f"`{name}` must be a callable f(*axes, theta), got {f!r}")
        if not (np.isfinite(step) and 0 < step < 1):
            raise ValueError(f"`step` must lie in (0, 1), got {step!r}")
        self.func = func
        self._theta_gradient = theta_gradient
        self._space_gradient = space_gradient
        self.step = float(step)
        self.reference = None if reference is None else tuple(float(r) for r in reference)

    @classmethod
    def of(cls, energy: Any) -> ParametricEnergy:
        """`energy` itself if it is a ParametricEnergy, else ``ParametricEnergy(energy)``."""
        return energy if isinstance(energy, ParametricEnergy) else cls(energy)

    def gauged(self, reference: Sequence[float]) -> ParametricEnergy:
        """The same energy with the gauge E(x; θ) − E(x*; θ), x* = `reference`."""
        return ParametricEnergy(
            self.func,
            theta_gradient=self._theta_gradient,
            space_gradient=self._space_gradient,
            step=self.step,
            reference=reference,
        )

    def _call(self, f: Callable, names: Sequence[str], points: Sequence[Any], theta) -> Any:
        return field_caller(f, (*names, "theta"))([*points, np.asarray(theta, dtype=float)])

    def _raw(self, names, points, theta) -> np.ndarray:
        shape = np.broadcast_shapes(*(np.shape(p) for p in points))
        out = np.asarray(self._call(self.func, names, points, theta), dtype=float)
        return np.broadcast_to(out, shape)

    def _raw_theta_gradient(self, names, points, theta) -> np.ndarray:
        theta = np.asarray(theta, dtype=float)
        shape = np.broadcast_shapes(*(np.shape(p) for p in points))
        if self._theta_gradient is not None:
            out = self._call(self._theta_gradient, names, points, theta)
            if not isinstance(out, (list, tuple)) and np.ndim(out) == 0:
                raise ValueError(
                    f"`theta_gradient` must return one array per parameter ({theta.size}), "
                    f"got {out!r}"
                )
            comps = [np.asarray(c, dtype=float) for c in out]
            if len(comps) != theta.size:
                raise ValueError(
                    f"`theta_gradient` returned {len(comps)} components for {theta.size} parameters"
                )
            for a, c in enumerate(comps):
                try:
                    comps[a] = np.broadcast_to(c, shape)
                except ValueError:
                    raise ValueError(
                        f"`theta_gradient` component {a} has shape {c.shape}, which does not "
                        f"broadcast to the points' shape {shape}"
                    ) from None
            return np.stack(comps)
        grads = []
        for a in range(theta.size):
            h = self.step * max(1.0, abs(theta[a]))
            up, down = theta.copy(), theta.copy()
            up[a] += h
            down[a] -= h
            grads.append((self._raw(names, points, up) - self._raw(names, points, down)) / (2 * h))
        return np.stack(grads) if grads else np.zeros((0, *shape))

    def values(self, names: Sequence[str], points: Sequence[Any], theta) -> np.ndarray:
        """E(x; θ) at `points` (one array per axis named `names`), gauge applied."""
        e = self._raw(names, points, theta)
        if self.reference is not None:
            e = e - float(self._raw(names, [np.float64(r) for r in self.reference], theta))
        return np.asarray(e, dtype=float)

    def theta_gradient(self, names: Sequence[str], points: Sequence[Any], theta) -> np.ndarray:
        """∂E/∂θ at `points`, shape ``(n_parameters, *points_shape)``, gauge applied."""
        g = self._raw_theta_gradient(names, points, theta)
        if self.reference is not None:
            ref = [np.float64(r) for r in self.reference]
            g = g - self._raw_theta_gradient(names, ref, theta).reshape((-1,) + (1,) * (g.ndim - 1))
        return g

    def space_gradient(self, names: Sequence[str], points: Sequence[Any], theta) -> list:
        """∇_x E at `points` (one array per axis); the gauge does not change it."""
        if self._space_gradient is not None:
            out = self._call(self._space_gradient, names, points, theta)
            out = [out] if len(names) == 1 and np.ndim(out) == np.ndim(points[0]) else list(out)
            return [np.asarray(c, dtype=float) for c in out]
        grads = []
        for a in range(len(points)):
            x = np.asarray(points[a], dtype=float)
            h = _EPS3 * np.maximum(1.0, np.abs(x))
            up, down = list(points), list(points)
            up[a], down[a] = x + h, x - h
            grads.append((self._raw(names, up, theta) - self._raw(names, down, theta)) / (2 * h))
        return grads


def _theta(theta: Any) -> np.ndarray:
    t = np.atleast_1d(np.asarray(theta, dtype=float))
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)):
        raise ValueError(f"`theta` must be a non-empty 1-D array of finite numbers, got {theta!r}")
    return t


def free_energy_gradient(
    grid: Grid, energy: Any, theta: Any, temperature: float
) -> tuple[float, np.ndarray]:
    """F_h(θ) = −T ln Z_h(θ) and its θ-gradient ⟨∂E/∂θ⟩_{q_θ} (Lemma 13, discrete).

    Parameters
    ----------
    grid : Grid
    energy : ParametricEnergy or callable
        E(x; θ) (a callable ``func(*axes, theta)`` is wrapped).
    theta : array_like
    temperature : float

    Returns
    -------
    free_energy : float
        −T ln Σ V exp(−E(x_i; θ)/T), by log-sum-exp.
    gradient : ndarray
        Σ V q_θ ∂E/∂θ, exactly the θ-derivative of `free_energy` (up to the
        accuracy of ∂E/∂θ itself).

    Examples
    --------
    >>> import numpy as np
    >>> from fpsolver.core.grid import Grid
    >>> g = Grid(x=(-10, 10, 400))
    >>> F, dF = free_energy_gradient(g, lambda x, theta: 0.5 * theta[0] * x**2, [2.0], 1.0)
    >>> bool(abs(F + 0.5 * np.log(np.pi)) < 1e-12), bool(abs(dF[0] - 0.25) < 1e-12)
    (True, True)
    """
    energy = ParametricEnergy.of(energy)
    theta = _theta(theta)
    pts = grid.mesh()
    e = energy.values(grid.names, pts, theta)
    g = energy.theta_gradient(grid.names, pts, theta)
    q = np.exp(dg.log_gibbs(e, temperature, grid.volumes))
    w = grid.volumes * q
    grad = np.array([float(np.sum(w * ga)) for ga in g])
    return -temperature * dg.log_partition(e, temperature, grid.volumes), grad


@dataclass(frozen=True)
class LearningTerms:
    """The exact grid quantities of one learning step at θ.

    Attributes
    ----------
    free_free_energy : float
        F_free = −T ln Z_h(θ) (gauge applied).
    clamped_free_energy : float
        F_clamped = −(T/n) Σ_i ln Z_h(v_i; θ) (gauge applied); for a fully
        visible model ln Z_h(v) = −E(v)/T.
    log_likelihood : float
        ℓ = (F_free − F_clamped)/T, the mean log-density of the data under
        the visible marginal of q_θ (per unit visible volume).
    model_term, data_term : ndarray
        ⟨∂E/∂θ⟩_{q_θ} and (1/n) Σ_i ⟨∂E/∂θ(v_i, ·)⟩_{q_θ(· ∣ v_i)}.
    gibbs : ndarray
        q_θ on the grid.
    energy : ndarray
        E(·; θ) on the grid (gauge applied).
    """

    free_free_energy: float
    clamped_free_energy: float
    log_likelihood: float
    model_term: np.ndarray
    data_term: np.ndarray
    gibbs: np.ndarray
    energy: np.ndarray

    @property
    def free_energy(self) -> float:
        """F_clamped − F_free = −T ℓ, the free energy recall-and-learn descends."""
        return self.clamped_free_energy - self.free_free_energy

    @property
    def gradient(self) -> np.ndarray:
        """∂(F_clamped − F_free)/∂θ = data term − model term."""
        return self.data_term - self.model_term


def clamped_terms(
    grid: Grid,
    fields: tuple[np.ndarray, np.ndarray],
    temperature: float,
    visible: Sequence[str],
    data: np.ndarray,
) -> tuple[float, np.ndarray]:
    """Mean ln Z_h(v_i) and the mean clamped average of ∂E/∂θ for energy and gradient `fields`.

    ``fields = (E, G)`` on the grid (G with a leading parameter axis);
    `data` has shape ``(n, len(visible))``.
    """
    energy, grad = fields
    vis = [grid.axis(n) for n in grid.names if n in visible]
    if len(vis) == grid.ndim:  # fully visible: Z(v) = exp(-E(v)/T)
        e = restrict(grid, energy, vis, data)
        g = restrict(grid, grad, vis, data)
        return float(np.mean(-e / temperature)), g.mean(axis=1)
    _, _, hidden = split_axes(grid, visible)
    e = restrict(grid, energy, vis, data)  # (n, *hidden)
    g = restrict(grid, grad, vis, data)  # (P, n, *hidden)
    axes = tuple(range(1, e.ndim))
    lz = logsumexp(-e / temperature, axis=axes, b=hidden.volumes)
    w = np.exp(-e / temperature - lz.reshape((-1,) + (1,) * hidden.ndim)) * hidden.volumes
    data_term = np.sum(g * w, axis=tuple(range(2, g.ndim))).mean(axis=1)
    return float(lz.mean()), data_term


def grid_learning_terms(
    grid: Grid,
    energy: Any,
    theta: Any,
    temperature: float,
    *,
    data: np.ndarray,
    visible: Sequence[str],
) -> LearningTerms:
    """Free and clamped free energies, the exact log-likelihood and both gradient terms at θ.

    Parameters
    ----------
    grid : Grid
    energy : ParametricEnergy or callable
    theta : array_like
    temperature : float
    data : ndarray
        Visible samples, shape ``(n, len(visible))`` (see
        :func:`fpsolver.analysis.latent.visible_samples`).
    visible : sequence of str
        The visible axes (all axes for a fully visible model).

    Returns
    -------
    LearningTerms

    Examples
    --------
    >>> import numpy as np
    >>> from fpsolver.core.grid import Grid
    >>> g = Grid(x=(-6, 6, 300))
    >>> data = np.array([[0.5], [1.5]])           # mean 1, variance 1/4
    >>> E = lambda x, theta: 0.5 * theta[1] * (x - theta[0]) ** 2
    >>> t = grid_learning_terms(g, E, [1.0, 4.0], 1.0, data=data, visible=["x"])
    >>> bool(np.allclose(t.gradient, 0.0, atol=1e-6))    # the maximum of the likelihood
    True
    """
    energy = ParametricEnergy.of(energy)
    theta = _theta(theta)
    pts = grid.mesh()
    e = energy.values(grid.names, pts, theta)
    g = energy.theta_gradient(grid.names, pts, theta)
    log_q = dg.log_gibbs(e, temperature, grid.volumes)
    q = np.exp(log_q)
    model_term = np.array([float(np.sum(grid.volumes * q * ga)) for ga in g])
    f_free = -temperature * dg.log_partition(e, temperature, grid.volumes)
    mean_lz, data_term = clamped_terms(grid, (e, g), temperature, visible, data)
    f_clamped = -temperature * mean_lz
    return LearningTerms(
        f_free,
        f_clamped,
        (f_free - f_clamped) / temperature,
        model_term,
        np.asarray(data_term, dtype=float),
        q,
        e,
    )


class LangevinChains:
    """Persistent Euler–Maruyama chains of dx = −K ∇E dt + sqrt(2 T K) dW in a grid's box.

    Parameters
    ----------
    grid : Grid
        The box: reflecting walls on bounded axes (mirrored), periodic axes wrap.
    positions : ndarray
        Shape ``(m, n_moving)``: the moving coordinates of the m chains.
    moving : sequence of int
        Axes that move; the others are clamped at `fixed`.
    fixed : ndarray, optional
        Shape ``(m, ndim − n_moving)``: the clamped coordinates of each chain.
    temperature : float
    mobility : float or sequence of float
        Constant diagonal K (one value or one per axis of the grid).
    rng : numpy.random.Generator

    Examples
    --------
    >>> import numpy as np
    >>> from fpsolver.core.grid import Grid
    >>> g = Grid(x=(-5, 5, 10))
    >>> ch = LangevinChains(g, np.zeros((4000, 1)), moving=[0], temperature=1.0,
    ...                     rng=np.random.default_rng(0))
    >>> ch.run(lambda pts: [pts[0]], steps=400, dt=0.01)   # E = x²/2
    >>> bool(abs(ch.positions.var() - 1.0) < 0.1)
    True
    """

    def __init__(
        self,
        grid: Grid,
        positions: np.ndarray,
        *,
        moving: Sequence[int],
        fixed: np.ndarray | None = None,
        temperature: float,
        mobility: float | Sequence[float] = 1.0,
        rng: np.random.Generator,
    ) -> None:
        self.grid = grid
        self.moving = [int(a) for a in moving]
        self.clamped = [a for a in range(grid.ndim) if a not in self.moving]
        self.positions = np.array(positions, dtype=float).reshape(-1, len(self.moving))
        m = self.positions.shape[0]
        self.fixed = np.zeros((m, 0)) if fixed is None else np.asarray(fixed, float).reshape(m, -1)
        if self.fixed.shape[1] != len(self.clamped):
            raise ValueError(
                f"`fixed` needs {len(self.clamped)} clamped coordinates per chain, "
                f"got shape {self.fixed.shape}"
            )
        k = np.broadcast_to(np.asarray(mobility, dtype=float), (grid.ndim,))
        if not np.all(np.isfinite(k) & (k > 0)):
            raise ValueError(f"`mobility` must be positive and finite, got {mobility!r}")
        self.k = k[self.moving]
        self.temperature = float(temperature)
        self.rng = rng

    def points(self) -> list[np.ndarray]:
        """One coordinate array per grid axis (moving and clamped), each of length m."""
        pts: list[Any] = [None] * self.grid.ndim
        for j, a in enumerate(self.moving):
            pts[a] = self.positions[:, j]
        for j, a in enumerate(self.clamped):
            pts[a] = self.fixed[:, j]
        return pts

    def run(self, gradient: Callable[[list[np.ndarray]], Sequence[Any]], *, steps: int,
            dt: float) -> None:  # fmt: skip
        """Advance every chain by `steps` Euler–Maruyama steps of size `dt`, in place.

        ``gradient(points)`` returns ∇E per grid axis at the chains' points;
        only the moving components are used.
        """
        sigma = np.sqrt(2.0 * self.temperature * self.k * dt)
        g = self.grid
        for _ in range(int(steps)):
            grad = gradient(self.points())
            noise = self.rng.standard_normal(self.positions.shape)
            for j, a in enumerate(self.moving):
                x = self.positions[:, j]
                x += -self.k[j] * dt * np.asarray(grad[a]) + sigma[j] * noise[:, j]
                lo, hi = float(g.edges[a][0]), float(g.edges[a][-1])
                if g.periodic[a]:
                    x[:] = lo + np.mod(x - lo, hi - lo)
                else:
                    width = hi - lo
                    x[:] = hi - np.abs(np.mod(x - lo, 2 * width) - width)
