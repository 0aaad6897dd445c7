r"""Separable models: the generator as a Kronecker sum of one-axis generators.

When the energy is a sum of one-axis terms, E(x) = Σ_a E_a(x_a), each
mobility component K_a and force component F_a depends on x_a only (constants
included) and the walls are set per axis (they always are), every
Scharfetter–Gummel link along axis a has a weight over cell volume and a
potential difference that depend on x_a only. On a tensor grid the cell
volumes factorise, V = Π_a V_a, and the generator is the Kronecker sum

.. math::

    L = \bigoplus_a L_a = \sum_a I \otimes \cdots \otimes L_a \otimes \cdots \otimes I

of the one-axis generators L_a of the same model restricted to each axis.
Then (Horn & Johnson, *Topics in Matrix Analysis*, 1991, §4.4)

.. math::

    e^{tL} = \bigotimes_a e^{t L_a},

so exact time integration costs a few dense n_a × n_a matrix products per
axis and per distinct step, and O(N Σ_a n_a) per step to apply: one small
matrix product along each axis of the density array
(:meth:`SeparableGenerator.propagate`). Implicit systems (I − cL) x = b are
solved by fast diagonalisation (Lynch, Rice & Thomas, Numer. Math. 6 (1964)
185–199): with L_a = W_a Λ_a W_a⁻¹, x = (⊗ W_a) diag(1/(1 − c Σ_a λ)) (⊗ W_a⁻¹) b
(:class:`SeparableSolver`).

Detection (:func:`factorize`, used by :attr:`fpsolver.discretize(model).separable
<fpsolver.discrete.operator.Operator.separable>`) reads the model on its
cells: the energy must be additively separable,
E(i, j, k) − E(i, 0, 0) − E(0, j, 0) − E(0, 0, k) + 2 E(0, 0, 0) = 0 to
rounding relative to the largest magnitude of E (array and callable
energies alike); mobility component a and force component a must not vary
across the other axes.
Each factor is then built by the same Scharfetter–Gummel code on the
one-axis model (the axis's grid, energy, mobility, force and walls), so its
links are exactly the factors of the N-D links. :func:`from_generator` finds
the same structure in an assembled generator alone, and checks it entry by
entry.

Exact propagators are computed so that no guarantee is lost. With
c = max_i (−(L_a)_ii), A = L_a + cI is entrywise non-negative (L_a has
non-negative off-diagonals), so

.. math::

    e^{h L_a} = e^{-hc} \sum_k \frac{(hA)^k}{k!}, \qquad
    e^{t L_a} = \bigl(e^{h L_a}\bigr)^{2^s}, \quad h = t / 2^s,

sums and multiplies non-negative numbers only: the propagator is entrywise
non-negative in floating point (not just to rounding), and each entry is
accurate relative to its column (no cancellation). Without absorbing walls
every column is rescaled after each squaring so that its V-weighted sum is
exactly 1 (mass conserved to rounding); the factor then keeps its Gibbs
(or stationary) density to rounding, and the N-D Gibbs density, the
product of the one-axis ones, is left unchanged. (An eigendecomposition
route, D⁻¹ U e^{tΛ} Uᵀ D with the symmetric form S = D L D⁻¹, measured
errors of 1e-13 to 1e-11 of a column's peak and negative entries at short
times, because the scaling D amplifies rounding by up to e^{ΔE/2T}; it is
used here only for implicit solves, where that is the price of
diagonalising.)

Cost: about 9 + log₂(16 t ‖L_a‖₁) dense products of n_a × n_a matrices per
distinct step and distinct axis (a 512-cell axis: 0.2 s; identical axes
share their propagator), then 2 N Σ_a n_a flops per step.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..core.grid import Grid
from ..core.model import Model
from . import sg

__all__ = [
    "MAX_AXIS",
    "AUTO_MAX_AXIS",
    "AxisFactor",
    "SeparableGenerator",
    "SeparableSolver",
    "along_axes",
    "expm_nonneg",
    "factor_propagator",
    "factorize",
    "from_generator",
    "restrict",
]

#: Longest axis handled (dense n × n algebra per axis).
MAX_AXIS = 4096

#: Longest axis for which the exact path is the default (see
#: :attr:`SeparableGenerator.preferred`): every axis it handles. Its cost grows
#: like n³ an axis, as does that of time stepping to the grid's accuracy (n²
#: cells, steps ∝ n), with a far smaller constant: on one core 5.3 s at 1024²
#: and 18.5 s at 1536², where a sparse LU run of 100 steps takes 49 s and
#: 141 s, and the LU of a 2048² grid needs about 9 GiB
#: (``benchmarks/separable.md``).
AUTO_MAX_AXIS = MAX_AXIS

#: Relative tolerance of the separability tests on cell values.
_RTOL = 1e-12

#: Relative tolerance when matching generator entries (:func:`from_generator`).
_MATCH_RTOL = 1e-10

#: Norm of h·(L + cI) below which the Taylor series is summed, and its degree:
#: (1/16)^10 / 10! < 1e-18.
_TAYLOR_NORM = 1.0 / 16.0
_TAYLOR_DEGREE = 10

#: Largest condition number of an eigenvector basis used by the solver.
_MAX_COND = 1e8

#: Distinct step sizes whose propagators are kept.
_CACHE = 8


@dataclass(frozen=True)
class AxisFactor:
    """One factor L_a of a separable generator.

    Attributes
    ----------
    name : str
        The axis name.
    generator : ndarray
        Dense (n, n) one-axis generator L_a (non-negative off-diagonals).
    volumes : ndarray
        The axis's cell widths V_a (a common factor does not matter).
    closed : bool
        No absorbing wall on this axis: V_aᵀ L_a = 0.
    """

    name: str
    generator: np.ndarray
    volumes: np.ndarray
    closed: bool


class SeparableGenerator:
    r"""L = ⊕_a L_a on a tensor grid: exact propagation and fast solves.

    Build it with :func:`factorize` (from a model) or :func:`from_generator`
    (from an assembled generator); see the module notes.

    Parameters
    ----------
    factors : sequence of AxisFactor
        One per axis, in grid order (C order of the cells).

    Attributes
    ----------
    factors : tuple of AxisFactor
    shape : tuple of int
    decompositions : int
        One-axis propagators and eigendecompositions computed so far
        (identical axes share theirs).

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> g = fp.Grid(x=(-3, 3, 20), y=(-2, 2, 10))
    >>> op = fp.discretize(fp.FokkerPlanck(g, lambda x, y: x**2 / 2 + y**4))
    >>> sep = op.separable
    >>> sep.shape, float(abs(sep.kron_sum() - op.generator).max()) < 1e-12
    ((20, 10), True)
    >>> q = np.exp(op.log_equilibrium)
    >>> bool(np.allclose(sep.propagate(q, 3.0), q, rtol=1e-12, atol=0))
    True
    """

    def __init__(self, factors: Any) -> None:
        self.factors: tuple[AxisFactor, ...] = tuple(factors)
        if not self.factors or not all(isinstance(f, AxisFactor) for f in self.factors):
            raise TypeError("`factors` must be a non-empty sequence of AxisFactor")
        self.shape = tuple(f.generator.shape[0] for f in self.factors)
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape))
        self.decompositions = 0
        self._twin = [_first_equal(self.factors, a) for a in range(self.ndim)]
        self._propagators: OrderedDict[float, tuple[np.ndarray, ...]] = OrderedDict()
        self._modes: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._sparse: list[sp.csr_array] | None = None

    def __repr__(self) -> str:
        axes = ", ".join(f"{f.name}: {n}" for f, n in zip(self.factors, self.shape))
        return f"SeparableGenerator({axes})"

    @property
    def generators(self) -> tuple[np.ndarray, ...]:
        """The one-axis generators L_a (dense)."""
        return tuple(f.generator for f in self.factors)

    @property
    def closed(self) -> bool:
        """No absorbing wall on any axis (mass is conserved)."""
        return all(f.closed for f in self.factors)

    @property
    def preferred(self) -> bool:
        """Whether exact propagation is the cheaper default for this grid.

        True for 2-D and 3-D grids whose axes have at most
        :data:`AUTO_MAX_AXIS` cells: there the per-axis dense algebra (on
        one core 6.1 s at 1024², 42 s at 2048²) is small
        beside sparse time stepping to the same accuracy
        (``benchmarks/separable.md``).
        """
        return 2 <= self.ndim <= 3 and max(self.shape) <= AUTO_MAX_AXIS

    def kron_sum(self) -> sp.csr_array:
        """The assembled N-D generator Σ_a I ⊗ … ⊗ L_a ⊗ … ⊗ I (sparse)."""
        total = sp.csr_array((self.size, self.size))
        for a, f in enumerate(self.factors):
            left = sp.identity(int(np.prod(self.shape[:a])), format="csr")
            right = sp.identity(int(np.prod(self.shape[a + 1 :])), format="csr")
            term = sp.kron(sp.kron(left, sp.csr_array(f.generator)), right)
            total = total + sp.csr_array(term)
        total = sp.csr_array(total)
        total.eliminate_zeros()
        return total

    def apply(self, p: Any) -> np.ndarray:
        """L p = Σ_a (I ⊗ … ⊗ L_a ⊗ … ⊗ I) p, without assembling L.

        `p` flat or of the grid shape; the result has the shape of `p`. Each
        L_a is applied as a sparse matrix along its axis: about 6 N flops an
        axis.

        Examples
        --------
        >>> import numpy as np, fpsolver as fp
        >>> g = fp.Grid(x=(-3, 3, 12), y=(-2, 2, 8))
        >>> op = fp.discretize(fp.FokkerPlanck(g, lambda x, y: x**2 / 2 + y**4))
        >>> p = np.random.default_rng(0).random(g.size)
        >>> bool(np.allclose(op.separable.apply(p), op.generator @ p, rtol=1e-13, atol=1e-12))
        True
        """
        arr = np.asarray(p, dtype=float)
        if arr.size != self.size:
            raise ValueError(f"`p` has {arr.size} values; the grid has {self.size} cells")
        x = arr.reshape(self.shape)
        out = np.zeros(self.shape)
        for a, M in enumerate(self._sparse_generators()):
            moved = np.moveaxis(x, a, 0)
            out += np.moveaxis((M @ moved.reshape(moved.shape[0], -1)).reshape(moved.shape), 0, a)
        return out.reshape(arr.shape)

    def as_linear_operator(self) -> spla.LinearOperator:
        """L as a :class:`scipy.sparse.linalg.LinearOperator` (:meth:`apply`; nothing assembled)."""
        return spla.LinearOperator((self.size, self.size), matvec=self.apply, dtype=float)

    def _sparse_generators(self) -> list[sp.csr_array]:
        if self._sparse is None:
            self._sparse = [sp.csr_array(f.generator) for f in self.factors]
        return self._sparse

    def volumes(self) -> np.ndarray:
        """⊗ V_a (grid shape): the cell volumes up to a constant factor."""
        out = np.ones(self.shape)
        for a, f in enumerate(self.factors):
            out = out * _along(f.volumes, a, self.ndim)
        return out

    def propagate(self, p: Any, t: float) -> np.ndarray:
        """exp(t L) p, exactly (to rounding); `p` flat or of the grid shape.

        Returns an array of the same shape as `p`. Non-negative `p` gives a
        non-negative result (see the module notes).
        """
        arr = np.asarray(p, dtype=float)
        if arr.size != self.size:
            raise ValueError(f"`p` has {arr.size} values; the grid has {self.size} cells")
        t = float(t)
        if not (math.isfinite(t) and t >= 0):
            raise ValueError(f"`t` must be finite and non-negative, got {t}")
        if t == 0:
            return arr.copy()
        out = along_axes(self.propagators(t), arr.reshape(self.shape))
        return out.reshape(arr.shape)

    def propagators(self, t: float) -> tuple[np.ndarray, ...]:
        """The one-axis propagators exp(t L_a), cached for the last few t.

        `t` is rounded to 12 significant digits first (as the linear
        solvers round their coefficients), so steps that differ by rounding
        share one set of propagators.
        """
        key = float(f"{float(t):.12e}")
        found = self._propagators.get(key)
        if found is not None:
            self._propagators.move_to_end(key)
            return found
        mats: list[np.ndarray] = []
        for a, f in enumerate(self.factors):
            if self._twin[a] < a:
                mats.append(mats[self._twin[a]])
                continue
            mats.append(factor_propagator(f, key))
            self.decompositions += 1
        found = tuple(mats)
        self._propagators[key] = found
        while len(self._propagators) > _CACHE:
            self._propagators.popitem(last=False)
        return found

    def modes(self, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(lam, W, W_inv)`` with L_a = W diag(lam) W⁻¹ (real when reversible).

        Reversible factors are diagonalised through their symmetric form
        S = D L_a D⁻¹ (``numpy.linalg.eigh``): W = D⁻¹ U, W⁻¹ = Uᵀ D; the
        others by ``numpy.linalg.eig`` (complex). A closed factor gets its
        zero eigenvalue exactly.

        Raises
        ------
        ValueError
            If the basis is too ill-conditioned for accurate solves (a
            condition number above 1e8, e.g. an energy range above about
            37 T along the axis).
        """
        b = self._twin[axis]
        if b not in self._modes:
            self._modes[b] = _diagonalise(self.factors[b])
            self.decompositions += 1
        return self._modes[b]

    def solver(self) -> SeparableSolver:
        """A :class:`SeparableSolver` for (I − cL) x = b on this generator."""
        return SeparableSolver(self)


class SeparableSolver:
    """Solves ``(I − c L) x = b`` by fast diagonalisation; a LinearSolver stand-in.

    Same interface as :class:`~fpsolver.discrete.linsolve.LinearSolver`
    (``solve(c, b, x0=None, *, conserve=True)``, ``kind``,
    ``factorizations``, ``iterations``, ``solve_error``, ``set_volumes``), so
    the implicit steppers can use it; its solves are direct (``solve_error``
    stays 0). One eigendecomposition per distinct axis, reused
    for every c; each solve costs 4 N Σ_a n_a flops.

    Parameters
    ----------
    separable : SeparableGenerator

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp, fpsolver as fp
    >>> from scipy.sparse.linalg import spsolve
    >>> g = fp.Grid(x=(-3, 3, 12), y=(-2, 2, 9))
    >>> op = fp.discretize(fp.FokkerPlanck(g, lambda x, y: x**2 / 2 + y**2))
    >>> lin = op.separable.solver()
    >>> b = np.random.default_rng(0).random(g.size)
    >>> x = lin.solve(0.3, b)
    >>> A = sp.identity(g.size) - 0.3 * op.generator
    >>> bool(np.allclose(x, spsolve(A.tocsc(), b), rtol=1e-12, atol=0))
    True
    """

    kind = "separable"
    #: Direct solves commit no tolerance error (see LinearSolver.solve_error).
    solve_error = 0.0

    def __init__(self, separable: SeparableGenerator) -> None:
        if not isinstance(separable, SeparableGenerator):
            raise TypeError(
                f"`separable` must be a SeparableGenerator, got {type(separable).__name__}"
            )
        self.separable = separable
        self.n = separable.size
        self.iterations = 0
        self._decompositions_before = separable.decompositions
        self.volumes: np.ndarray | None = None

    @property
    def factorizations(self) -> int:
        """One-axis decompositions (eigendecompositions, propagators) built since this
        solver was made (the generator's caches may already hold some from earlier runs)."""
        return self.separable.decompositions - self._decompositions_before

    def set_volumes(self, volumes: np.ndarray) -> None:
        """Cell volumes V for the mass correction (default: the factors' own)."""
        V = np.asarray(volumes, float).ravel()
        if V.size != self.n:
            raise ValueError(f"`volumes` has {V.size} values; the grid has {self.n} cells")
        self.volumes = V

    def solve(
        self, c: float, b: np.ndarray, x0: np.ndarray | None = None, *, conserve: bool = True
    ) -> np.ndarray:
        """Return x with ``(I − c L) x = b`` (flat arrays).

        Parameters
        ----------
        c : float
            The coefficient (≥ 0).
        b : ndarray
            Right-hand side (flat or of the grid shape).
        x0 : ndarray, optional
            Ignored (the solve is direct).
        conserve : bool
            Rescale x so that Vᵀ(I − cL)x = Vᵀb holds to rounding, as
            :meth:`LinearSolver.solve` does for stiff steps.
        """
        sep = self.separable
        b = np.asarray(b, dtype=float)
        if b.size != self.n:
            raise ValueError(f"`b` has {b.size} values; the grid has {self.n} cells")
        c = float(c)
        if not (math.isfinite(c) and c >= 0):
            raise ValueError(f"`c` must be finite and non-negative, got {c}")
        modes = [sep.modes(a) for a in range(sep.ndim)]
        y = along_axes([m[2] for m in modes], b.reshape(sep.shape))
        lam = sum(_along(m[0], a, sep.ndim) for a, m in enumerate(modes))
        x = along_axes([m[1] for m in modes], y / (1.0 - c * lam))
        x = np.real(x).reshape(-1) if np.iscomplexobj(x) else x.reshape(-1)
        if conserve:
            x = self._conserve(c, b.reshape(-1), x)
        return x

    def _conserve(self, c: float, b: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Rescale x so that Vᵀ(I − cL)x = Vᵀb (Vᵀ L is the outflow through walls)."""
        sep = self.separable
        V = self.volumes if self.volumes is not None else sep.volumes().reshape(-1)
        target, have = float(V @ b), float(V @ x)
        for a, f in enumerate(sep.factors):
            if not f.closed:  # (Vᵀ L)_j = V_j Σ_a (V_aᵀ L_a)_{j_a} / V_a[j_a]
                rate = _along((f.volumes @ f.generator) / f.volumes, a, sep.ndim)
                have -= c * float(np.sum((V * x).reshape(sep.shape) * rate))
        if have != 0.0 and abs(target) > 1e-3 * float(V @ np.abs(b)):
            x = x * (target / have)
        return x


# -- one-axis algebra ---------------------------------------------------------
def along_axes(mats: Any, p: np.ndarray) -> np.ndarray:
    """Apply ``mats[a]`` along axis a of `p` for every axis: (⊗_a M_a) p.

    One dense matrix product per axis on the reshaped array: 2 N Σ_a n_a
    flops.

    Examples
    --------
    >>> import numpy as np
    >>> A, B = np.arange(4.0).reshape(2, 2), np.arange(9.0).reshape(3, 3)
    >>> p = np.arange(6.0).reshape(2, 3)
    >>> bool(np.allclose(along_axes([A, B], p).ravel(), np.kron(A, B) @ p.ravel()))
    True
    """
    shape = p.shape
    for a, M in enumerate(mats):
        n = shape[a]
        pre, post = int(np.prod(shape[:a])), int(np.prod(shape[a + 1 :]))
        if post == 1:
            p = p.reshape(pre, n) @ M.T
        else:
            p = np.matmul(M, p.reshape(pre, n, post))
    return p.reshape(shape)


def expm_nonneg(L: np.ndarray, t: float, volumes: np.ndarray | None = None) -> np.ndarray:
    r"""exp(t L) of a dense generator (non-negative off-diagonals), entrywise ≥ 0.

    Taylor series of the non-negative matrix h (L + cI), c = max_i (−L_ii),
    h = t / 2^s with ‖h(L + cI)‖₁ ≤ 1/16, times e^{−hc}, then s squarings:
    the Taylor method with scaling and squaring (Moler & Van Loan, SIAM
    Review 45 (2003) 3–49) on the shifted matrix of uniformisation
    (Grassmann, Comput. Oper. Res. 4 (1977) 47–53). Only sums and products
    of non-negative numbers: no negative entry, no cancellation. With `volumes`, each column is
    rescaled after every squaring so that its V-weighted sum is exactly 1
    (a generator with Vᵀ L = 0 conserves mass).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.linalg import expm
    >>> L = np.array([[-1.0, 2.0], [1.0, -2.0]])
    >>> P = expm_nonneg(L, 3.0, np.ones(2))
    >>> bool(np.allclose(P, expm(3.0 * L), rtol=1e-14, atol=0)), P.sum(axis=0).tolist()
    (True, [1.0, 1.0])
    """
    L = np.asarray(L, dtype=float)
    n = L.shape[0]
    c = float(np.max(-np.diag(L), initial=0.0))
    A = L + c * np.eye(n)
    if np.any(A < 0):
        raise ValueError("`L` must have non-negative off-diagonals (a generator)")
    norm = float(t) * float(np.max(A.sum(axis=0), initial=0.0))
    s = max(0, math.ceil(math.log2(norm / _TAYLOR_NORM))) if norm > 0 else 0
    h = math.ldexp(float(t), -s)
    A *= h
    P = np.eye(n) + A / _TAYLOR_DEGREE
    for k in range(_TAYLOR_DEGREE - 1, 0, -1):
        P = np.eye(n) + (A @ P) / k
    P *= math.exp(-h * c)
    P = _unit_columns(P, volumes)
    for _ in range(s):
        P = _unit_columns(P @ P, volumes)
    return P


def factor_propagator(f: AxisFactor, t: float) -> np.ndarray:
    """exp(t L_a) of one factor by :func:`expm_nonneg`, mass-pinned.

    A factor with absorbing walls gets one extra cell, the cemetery, that
    receives what the walls absorb: the augmented generator conserves mass,
    so its columns are pinned after every squaring too. Without that, the
    rounding of each squaring's base compounds into a relative error of
    about 2^s ε in the decay (measured: 5e-12 at t‖L‖ = 1e3 against 8e-15
    with the cemetery).

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> from scipy.linalg import expm
    >>> g = fp.Grid(x=(0, 1, 10))
    >>> sep = fp.discretize(fp.FokkerPlanck(g, 0.0, boundary="absorbing")).separable
    >>> f = sep.factors[0]
    >>> P = factor_propagator(f, 0.05)
    >>> bool(np.allclose(P, expm(0.05 * f.generator), rtol=1e-13, atol=0))
    True
    """
    L, V = f.generator, f.volumes
    if f.closed:
        return expm_nonneg(L, t, V)
    n = L.shape[0]
    out = -(V @ L)  # mass lost through the walls per unit density, by cell
    out[np.abs(out) <= 1e-12 * (V @ np.abs(L))] = 0.0  # rounding away from the walls
    if np.any(out < 0):  # not a sub-generator: no cemetery to pin to
        return expm_nonneg(L, t)
    aug = np.zeros((n + 1, n + 1))
    aug[:n, :n] = L
    aug[n, :n] = out
    return np.ascontiguousarray(expm_nonneg(aug, t, np.append(V, 1.0))[:n, :n])


def _unit_columns(P: np.ndarray, volumes: np.ndarray | None) -> np.ndarray:
    """Scale the columns of P so that Vᵀ P = Vᵀ (no-op without volumes)."""
    if volumes is None:
        return P
    sums = volumes @ P
    P *= (volumes / sums)[None, :]
    return P


def _log_stationary(f: AxisFactor) -> np.ndarray | None:
    """ln q (up to a constant) of the stationary density of a reversible factor, else None.

    Detailed balance across the link k, k+1 reads
    V_{k+1} L[k+1, k] q_k = V_k L[k, k+1] q_{k+1}.

    A chain on a line (tridiagonal L_a) is always reversible; on a ring it
    is when the rates around it multiply to the same product both ways
    (Kolmogorov's criterion; Kelly, *Reversibility and Stochastic
    Networks*, 1979, §1.5).
    """
    L, V = f.generator, f.volumes
    n = L.shape[0]
    up, down = V[1:] * np.diag(L, -1), V[:-1] * np.diag(L, 1)
    if np.any(up <= 0) or np.any(down <= 0):
        return None
    steps = np.log(up) - np.log(down)
    if n > 2 and (L[0, -1] > 0 or L[-1, 0] > 0):
        if not (L[0, -1] > 0 and L[-1, 0] > 0):
            return None
        wrap = math.log(V[0] * L[0, -1]) - math.log(V[-1] * L[-1, 0])
        loop = float(np.sum(steps)) + wrap
        if abs(loop) > 1e-9 * max(1.0, float(np.sum(np.abs(steps))) + abs(wrap)):
            return None
    return np.concatenate([[0.0], np.cumsum(steps)])


def _diagonalise(f: AxisFactor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lam, W, W_inv)`` of one factor (see :meth:`SeparableGenerator.modes`)."""
    L = f.generator
    log_q = _log_stationary(f)
    if log_q is not None:
        log_d = 0.5 * (np.log(f.volumes) - log_q)  # d = sqrt(V/q)
        spread = float(np.ptp(log_d))
        if spread > math.log(_MAX_COND):
            raise ValueError(_ill_conditioned(f.name, math.exp(min(spread, 700.0))))
        d = np.exp(log_d - log_d.mean())
        S = np.sqrt(L * L.T)
        np.fill_diagonal(S, np.diag(L))
        lam, U = np.linalg.eigh(S)
        W, W_inv = U / d[:, None], U.T * d[None, :]
    else:
        lam, W = np.linalg.eig(L)
        cond = float(np.linalg.cond(W))
        if not cond <= _MAX_COND:
            raise ValueError(_ill_conditioned(f.name, cond))
        W_inv = np.linalg.inv(W)
    if f.closed:
        lam = lam.copy()
        lam[np.argmin(np.abs(lam))] = 0.0
    return lam, W, W_inv


def _ill_conditioned(name: str, cond: float) -> str:
    return (
        f"axis {name!r}: its generator's eigenvector basis has condition number "
        f"{cond:.2g} (> {_MAX_COND:g}), too large for accurate solves by "
        "diagonalisation; use the sparse linear solvers ('lu', 'amg') instead"
    )


def _along(v: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return np.reshape(v, shape)


def _first_equal(factors: tuple[AxisFactor, ...], a: int) -> int:
    """The first axis whose factor equals factor a (a itself when none earlier)."""
    f = factors[a]
    for b in range(a):
        g = factors[b]
        if (
            g.closed == f.closed
            and np.array_equal(g.generator, f.generator)
            and np.array_equal(g.volumes, f.volumes)
        ):
            return b
    return a


# -- detection from a model --------------------------------------------------
def factorize(model: Model) -> SeparableGenerator | None:
    """The one-axis factors of `model`'s generator, or None when it is not separable.

    See the module notes for the rule. Also None when an axis has more
    than :data:`MAX_AXIS` cells (the dense one-axis algebra would not pay).

    Examples
    --------
    >>> import fpsolver as fp
    >>> g = fp.Grid(x=(-2, 2, 8), y=(-2, 2, 6))
    >>> factorize(fp.FokkerPlanck(g, lambda x, y: x**2 + y**4)).shape
    (8, 6)
    >>> factorize(fp.FokkerPlanck(g, lambda x, y: x**2 + x * y)) is None
    True
    """
    if not isinstance(model, Model):
        raise TypeError(f"`model` must be an fpsolver.FokkerPlanck, got {type(model).__name__}")
    grid = model.grid
    if grid.curved:  # the metric couples the axes (the one-axis restriction drops it)
        return None
    if max(grid.shape) > MAX_AXIS or not _separable_fields(model):
        return None
    factors = []
    for a in range(grid.ndim):
        m1 = restrict(model, a)
        L = sg.generator_matrix(m1.grid.volumes, sg.all_links(m1), sg.absorbing_walls(m1))
        closed = "absorbing" not in model.boundary.sides[a]
        gen = _readonly(L.toarray())
        factors.append(AxisFactor(grid.names[a], gen, _readonly(grid.widths[a]), closed))
    return SeparableGenerator(factors)


def _separable_fields(model: Model) -> bool:
    """The cell-value tests: additive energy, own-axis mobility and force components."""
    grid, T = model.grid, model.temperature
    E = model.energy
    if not _additive(E, _RTOL * max(float(np.max(np.abs(E))), T)):
        return False
    K = model.mobility_cells()
    for a in range(grid.ndim):
        if not _own_axis(K[a], a, _RTOL * float(np.max(K[a]))):
            return False
    if model.force_function is not None:
        comps = model.evaluate_components(model.force_function, grid.mesh(), "force", False)
        scale = T / min(grid.lengths())
        for a, F in enumerate(comps):
            if not _own_axis(F, a, _RTOL * max(float(np.max(np.abs(F))), scale)):
                return False
    return True


def _line(X: np.ndarray, axis: int) -> np.ndarray:
    """X along `axis` through the first cell of every other axis."""
    index = tuple(slice(None) if b == axis else 0 for b in range(X.ndim))
    return X[index]


def _additive(X: np.ndarray, tol: float) -> bool:
    """Whether X(i, j, …) = Σ_a X_a(i_a) to within `tol` (absolute)."""
    X = np.asarray(X, dtype=float)
    rebuilt = (1 - X.ndim) * X.flat[0]
    for a in range(X.ndim):
        rebuilt = rebuilt + _along(_line(X, a), a, X.ndim)
    return bool(np.max(np.abs(X - rebuilt)) <= tol)


def _own_axis(X: np.ndarray, axis: int, tol: float) -> bool:
    """Whether X varies along `axis` only (to within `tol`)."""
    X = np.asarray(X, dtype=float)
    return bool(np.max(np.abs(X - _along(_line(X, axis), axis, X.ndim))) <= tol)


def restrict(model: Model, axis: int) -> Model:
    """The one-axis model along `axis`, through the first cell centre of the others.

    Same temperature; the axis's edges and periodicity; its walls; the
    energy, mobility component and force component along the line (callables
    are restricted, so faces, walls and the periodic wrap are evaluated as
    in the N-D model).

    Examples
    --------
    >>> import fpsolver as fp
    >>> g = fp.Grid(x=(-2, 2, 8), y=(0, 1, 4), periodic="y")
    >>> m = fp.Model(g, lambda x, y: x**2 + y, force=(0.0, 2.0))
    >>> restrict(m, 1).grid.periodic, restrict(m, 1).force_constant.tolist()
    ((True,), [2.0])
    """
    grid = model.grid
    name = grid.names[axis]
    line = Grid(periodic=(name,) if grid.periodic[axis] else (), **{name: grid.edges[axis]})
    options: dict[str, Any] = {"temperature": model.temperature}
    if not grid.periodic[axis]:
        options["boundary"] = {name: model.boundary.sides[axis]}
    energy = _restricted(model, axis, "energy") or _line(model.energy, axis)
    options["mobility"] = _restricted(model, axis, "mobility") or _line(
        model.mobility_cells()[axis], axis
    )
    if model.force_function is not None:
        options["force"] = _restricted(model, axis, "force")
    elif model.force_constant is not None:
        options["force"] = (float(model.force_constant[axis]),)
    return Model(line, energy, **options)


def _restricted(model: Model, axis: int, field: str):
    """The callable `field` of `model` along `axis` (None when it is not a callable)."""
    func = getattr(model, f"{field}_function")
    if func is None:
        return None
    anchors = [c[0] for c in model.grid.centers]

    def along(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        pts = [x if b == axis else np.full(x.shape, v) for b, v in enumerate(anchors)]
        if field == "energy":
            return model.evaluate(func, pts, "energy")
        return model.evaluate_components(func, pts, field, field == "mobility")[axis]

    return along


# -- detection from an assembled generator -------------------------------------
def from_generator(L: Any, volumes: Any) -> SeparableGenerator | None:
    """The Kronecker-sum factors of an assembled generator, or None.

    `volumes` (the cell volumes, of the grid shape) gives the grid shape.
    The factor along axis a is read off the line of cells through the first
    cell; L must equal their Kronecker sum entry by entry (relative
    tolerance 1e-10, entries below 1e-13 of the diagonal counting as zero),
    its off-diagonals must be non-negative, and the volumes must factorise.
    Axes longer than :data:`MAX_AXIS` give None.

    Examples
    --------
    >>> import scipy.sparse as sp, fpsolver as fp
    >>> g = fp.Grid(x=(-2, 2, 8), y=(0, 1, 5), periodic="y")
    >>> op = fp.discretize(fp.FokkerPlanck(g, lambda x, y: x**2, force=(0.0, 3.0)))
    >>> sep = from_generator(op.generator, g.volumes)
    >>> float(abs(sep.kron_sum() - op.generator).max()) < 1e-12
    True
    >>> L = op.generator + 1e-3 * sp.eye_array(40, k=6)
    >>> from_generator(L, g.volumes) is None
    True
    """
    V = np.asarray(volumes, dtype=float)
    L = sp.csr_array(L)
    if V.ndim == 0 or L.shape != (V.size, V.size):
        raise ValueError(
            f"`L` has shape {L.shape}; `volumes` of shape {V.shape} needs ({V.size}, {V.size})"
        )
    if max(V.shape) > MAX_AXIS or not _volumes_factorise(V):
        return None
    diag = L.diagonal().reshape(V.shape)
    floor = 1e-13 * np.abs(diag)
    offs, seen = [], 0
    for a in range(V.ndim):
        found = _axis_offdiagonal(L, V.shape, a, floor)
        if found is None:
            return None
        offs.append(found[0])
        seen += found[1]
    outside = np.count_nonzero(L.data) - np.count_nonzero(L.diagonal()) - seen
    if outside != 0 or any(np.any(o < 0) for o in offs):
        return None
    return _with_diagonals(offs, diag, V)


def _volumes_factorise(V: np.ndarray) -> bool:
    if np.any(V <= 0):
        return False
    logs = np.log(V)
    return _additive(logs, _RTOL * max(1.0, float(np.max(np.abs(logs)))))


def _axis_offdiagonal(
    L: sp.csr_array, shape: tuple[int, ...], axis: int, floor: np.ndarray
) -> tuple[np.ndarray, int] | None:
    """Dense off-diagonal part of factor `axis`, and the entries it accounts for.

    Links along the axis sit on the diagonals ±s (s the axis stride) and,
    across a periodic wrap, ±(n − 1)s; offsets of different axes never
    coincide. None when an entry on them differs from the factor's.
    """
    n = shape[axis]
    s = int(np.prod(shape[axis + 1 :]))
    off = np.zeros((n, n))
    seen = 0
    # (offset, first index along the axis of the entries that belong to the link, di)
    spans = [(s, np.arange(n - 1), 1), (-s, np.arange(n - 1), 1)]
    if n > 2:
        spans += [((n - 1) * s, np.array([0]), n - 1), (-(n - 1) * s, np.array([0]), n - 1)]
    for k, first, di in spans:
        vals = np.zeros(L.shape[0])
        band = L.diagonal(k)
        vals[: band.size] = band
        vals = vals.reshape(shape)
        expected_line = np.zeros(n)
        expected_line[first] = _line(vals, axis)[first]
        expected = _along(expected_line, axis, len(shape))
        if np.any(np.abs(vals - expected) > _MATCH_RTOL * np.abs(expected) + floor):
            return None
        rows, cols = (first, first + di) if k > 0 else (first + di, first)
        off[rows, cols] += expected_line[first]
        seen += int(np.count_nonzero(band))
    return off, seen


def _with_diagonals(offs: list[np.ndarray], diag: np.ndarray, V: np.ndarray):
    """Split the diagonal of L among the factors: outflow to the neighbours plus walls.

    Each factor gets the diagonal that makes its V-weighted column sums
    zero; what is left (absorbing walls) must be additively separable and
    is split so that it vanishes at each axis's middle cell.
    """
    ndim = diag.ndim
    vols = [_line(V, a) / _line(V, a)[0] for a in range(ndim)]
    natural = [-(v @ o) / v for v, o in zip(vols, offs)]
    rest = diag - sum(_along(nat, a, ndim) for a, nat in enumerate(natural))
    scale = float(np.max(np.abs(diag)))
    if not _additive(rest, 1e-11 * scale):
        return None
    parts = [_line(rest, a) - _line(rest, a)[n // 2] for a, n in enumerate(diag.shape)]
    parts[0] = parts[0] + (rest.flat[0] - sum(p[0] for p in parts))
    factors = []
    for a in range(ndim):
        closed = bool(np.max(np.abs(parts[a])) <= 1e-11 * scale)
        gen = offs[a] + np.diag(natural[a] + (0.0 if closed else parts[a]))
        factors.append(AxisFactor(f"axis{a}", _readonly(gen), _readonly(vols[a]), closed))
    return SeparableGenerator(factors)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a
