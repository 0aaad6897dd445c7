r"""The Scharfetter–Gummel operator of a mean-field model at a given density.

The links of the external model (E₀, T, K, walls) are built once
(:class:`~fpsolver.discrete.operator.Operator` of the frozen base model);
at a density the energy E₀ + U adds (U_j − U_i)/T to every link's δ, so
L(E) is the generator of the frozen model with the array energy E — the
same matrix as ``Operator(model.at(p)).generator`` — assembled without
re-evaluating weights. Mass, positivity of the off-diagonals and the exact
zero flux of the Gibbs density of E hold for every E (:mod:`fpsolver.discrete.sg`).

The implicit step (:mod:`fpsolver.integrate.meanfield`) solves

.. math::

    p^{n+1} - p^n = h\,L(\tilde E)\,p^{n+1},\qquad
    \tilde E = E_0 + W * p^{n+1} + \varphi'(p^{n+1}) + s\,(p^{n+1} - p^n),

with the stabilisation s = max(0, −λ_min/2), λ_min the lowest eigenvalue
of p ↦ W * p in the V-weighted inner product
(:attr:`~fpsolver.core.interaction.Interaction.lowest_eigenvalue`).

**Discrete free-energy inequality.** Let Δ = p^{n+1} − p^n and μ̃ =
Ẽ + T ln p^{n+1}. Convexity of p ln p and of φ gives the entropy and φ
parts of F^{n+1} − F^n ≤ Σ V (T ln p^{n+1} + φ'(p^{n+1})) Δ (Σ V Δ = 0),
and for the quadratic part ½⟨p, Wp⟩ = ½⟨p, W p⟩_V exactly
⟨Wp^{n+1}, Δ⟩_V − ½⟨Δ, WΔ⟩_V ≤ ⟨Wp^{n+1} + sΔ, Δ⟩_V, because
⟨Δ, WΔ⟩_V ≥ λ_min ⟨Δ, Δ⟩_V ≥ −2s⟨Δ, Δ⟩_V. So F^{n+1} − F^n ≤ Σ V μ̃ Δ =
h Σ V μ̃ L(Ẽ) p^{n+1} = −h Σ_links F_ij (μ̃_j − μ̃_i) ≤ 0, since each SG
flux F_ij = w B(δ) e^{−Ẽ_i/T}(e^{μ̃_i/T} − e^{μ̃_j/T}) has the sign of
μ̃_i − μ̃_j. This holds for **every** h > 0. Without the stabilisation
(the fully implicit step, E at the new density) the same argument needs
½⟨p, Wp⟩ convex, i.e. W positive semidefinite on the grid (λ_min ≥ 0); an
attractive interaction such as the Kuramoto kernel −J cos violates it, and
s makes the concave part explicit: the stabilised convex splitting of Eyre
(MRS Proc. 529 (1998) 39–46), applied to the exponential-fitting
discretisation of aggregation–diffusion equations (Carrillo, Chertock &
Huang, Commun. Comput. Phys. 17 (2015) 233–258; Bailo, Carrillo & Hu,
Commun. Math. Sci. 18 (2020) 1259–1303). The term s Δ vanishes at a
stationary state, so stationary states are exactly the self-consistent
Gibbs states p ∝ exp(−E[p]/T); it adds an O(h) time error, of the same
order as backward Euler's. The second-order BDF2 step solves the same kind
of equation, x − b = h' L(E[x]) x, without the stabilisation (``p_old=None``
in :meth:`MeanFieldGenerator.step_energy`); no free-energy inequality is
claimed for it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from ..core.meanfield import MeanFieldModel
from . import sg
from .operator import Operator

__all__ = ["MeanFieldGenerator", "bernoulli_derivative"]


def bernoulli_derivative(z: np.ndarray | float) -> np.ndarray:
    """B'(z) = B(z)(1 − B(−z))/z for B(z) = z/(e^z − 1); −1/2 at 0, overflow-free.

    Examples
    --------
    >>> bernoulli_derivative(np.array([0.0, -800.0, 800.0])).tolist()
    [-0.5, -1.0, -0.0]
    """
    z = np.asarray(z, float)
    small = np.abs(z) < 1e-2
    zs = np.where(small, z, 0.0)
    series = -0.5 + zs / 6.0 - zs**3 / 180.0
    zl = np.where(small, 1.0, z)
    large = sg.bernoulli(zl) * (1.0 - sg.bernoulli(-zl)) / zl
    return np.where(small, series, large)


class MeanFieldGenerator:
    """L(E) of a mean-field model for any array energy E (see the module notes).

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> from fpsolver.core.meanfield import MeanFieldModel
    >>> g = fp.Grid(x=(-3, 3, 30))
    >>> m = MeanFieldModel(g, lambda x: x**2 / 2, interaction=lambda x: np.exp(-x**2))
    >>> gen = MeanFieldGenerator(m)
    >>> p = fp.gaussian(g, 0.5, 0.3).values
    >>> L = gen.generator(m.effective_energy(p))
    >>> ref = fp.discretize(m.at(p)).generator
    >>> float(abs(L - ref).max()) < 1e-12, float(abs(g.volumes @ L).max()) < 1e-13
    (True, True)
    """

    def __init__(self, model: MeanFieldModel) -> None:
        if not isinstance(model, MeanFieldModel):
            raise TypeError(f"`model` must be a mean-field model, got {type(model).__name__}")
        self.model = model
        self.grid = model.grid
        self.temperature = model.temperature
        self.volumes = np.asarray(model.grid.volumes, float).ravel()
        self._links = Operator(model.base).links
        self._e0 = np.asarray(model.energy, float).ravel()
        lam = 0.0 if model.interaction is None else model.interaction.lowest_eigenvalue
        #: The stabilisation s = max(0, −λ_min/2) of the concave part of W.
        self.stabilisation = max(0.0, -0.5 * lam)
        self.assemblies = 0

    def generator(self, energy: np.ndarray) -> sp.csr_array:
        """The generator L of the frozen model with cell energies `energy`."""
        U = np.asarray(energy, float).ravel() - self._e0
        T = self.temperature
        links = [replace(ln, delta=ln.delta + (U[ln.dst] - U[ln.src]) / T) for ln in self._links]
        self.assemblies += 1
        return sg.generator_matrix(self.volumes, links, ())

    def step_energy(self, p_new: np.ndarray, p_old: np.ndarray | None) -> np.ndarray:
        """Ẽ = E₀ + W * p_new + φ'(p_new) + s (p_new − p_old), flat; E[p_new] if `p_old` is None."""
        E = self.model.effective_energy(p_new).ravel()
        if self.stabilisation and p_old is not None:
            E = E + self.stabilisation * (np.ravel(p_new) - np.ravel(p_old))
        return E

    def energy_derivative(self, energy: np.ndarray, p: np.ndarray, u: np.ndarray) -> np.ndarray:
        """d/dε [L(E + ε u) p] at ε = 0: the response of the fluxes of `p` to a change `u` of E."""
        return self.energy_derivative_operator(energy, p)(u)

    def energy_derivative_operator(self, energy: np.ndarray, p: np.ndarray):
        """u ↦ d/dε [L(E + ε u) p] at ε = 0, with the per-link factors computed once.

        Examples
        --------
        >>> import numpy as np, fpsolver as fp
        >>> from fpsolver.core.meanfield import MeanFieldModel
        >>> g = fp.Grid(x=(-3, 3, 20))
        >>> m = MeanFieldModel(g, lambda x: x**2 / 2, interaction=lambda x: np.exp(-x**2))
        >>> gen = MeanFieldGenerator(m)
        >>> p, u = fp.gaussian(g, 0.5, 0.3).values, np.sin(g.centers[0])
        >>> E = m.effective_energy(p)
        >>> fd = (gen.generator(E + 1e-6 * u) @ p.ravel() - gen.generator(E - 1e-6 * u) @ p.ravel())
        >>> bool(np.abs(gen.energy_derivative_operator(E, p)(u) - fd / 2e-6).max() < 1e-8)
        True
        """
        U = np.asarray(energy, float).ravel() - self._e0
        p = np.ravel(p)
        T, n = self.temperature, self.volumes.size
        parts = []
        for ln in self._links:
            a, b = ln.src.ravel(), ln.dst.ravel()
            d = np.broadcast_to(ln.delta, ln.src.shape).ravel() + (U[b] - U[a]) / T
            w = np.broadcast_to(ln.weight, ln.src.shape).ravel()
            parts.append(
                (a, b, w * (bernoulli_derivative(d) * p[a] + bernoulli_derivative(-d) * p[b]) / T)
            )
        src = np.concatenate([a for a, _, _ in parts])
        dst = np.concatenate([b for _, b, _ in parts])
        coef = np.concatenate([c for _, _, c in parts])
        V = self.volumes

        def apply(u: np.ndarray) -> np.ndarray:
            u = np.ravel(u)
            dF = coef * (u[dst] - u[src])
            return (np.bincount(dst, dF, n) - np.bincount(src, dF, n)) / V

        return apply

    def energy_jacobian(
        self, p_new: np.ndarray, v: np.ndarray, *, stabilised: bool = True
    ) -> np.ndarray:
        """(∂Ẽ/∂p_new) v = W * v + φ''(p_new) v + s v (s = 0 unless `stabilised`), flat."""
        m, shape = self.model, self.grid.shape
        out = (self.stabilisation if stabilised else 0.0) * np.ravel(v)
        if m.interaction is not None:
            out = out + m.interaction(np.reshape(v, shape)).ravel()
        if m.local is not None:
            if np.isfinite(m.local[2]):
                out = out + m.local[2] * np.ravel(v)
            else:  # φ'' by a central difference of φ'
                pn = np.ravel(p_new)
                eps = 1e-6 * max(float(np.max(np.abs(pn))), 1e-300)
                d2 = (np.ravel(m.local[1](pn + eps)) - np.ravel(m.local[1](pn - eps))) / (2 * eps)
                out = out + d2 * np.ravel(v)
        return out

    def step_matrix(self, p_new: np.ndarray, p_old: np.ndarray | None, h: float) -> sp.csc_matrix:
        """I − h L(Ẽ(p_new, p_old)), the matrix of the implicit step (an M-matrix)."""
        L = self.generator(self.step_energy(p_new, p_old))
        n = self.volumes.size
        return sp.csc_matrix(sp.identity(n, format="csc") - h * L)

    def residual(self, p_new: np.ndarray, p_old: np.ndarray, h: float) -> float:
        """Σ V |p_new − p_old − h L(Ẽ) p_new| / Σ V p_old: the step's L¹ residual."""
        r = self.step_matrix(p_new, p_old, h) @ p_new - p_old
        return float(np.sum(self.volumes * np.abs(r)) / np.sum(self.volumes * p_old))
