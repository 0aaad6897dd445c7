"""Linear solves for implicit time steps: (I − c L) x = b.

Every implicit stepper reduces to solving ``(I − c L) x = b`` with the
generator L and a coefficient c (a multiple of the step size). For a
time-independent model the matrix depends on c only, so a
:class:`LinearSolver` keeps one solver per distinct c and counts how many
it built (:attr:`LinearSolver.factorizations`).

Four kinds of solver:

``"lu"``
    Sparse LU (:func:`scipy.sparse.linalg.splu`), exact to rounding. The
    default for 1-D and 2-D grids and for small 3-D grids.
``"cg"``
    Conjugate gradients on the symmetric form of a reversible model: with
    D = diag(sqrt(V/q)) and S = D L D⁻¹ symmetric negative semi-definite,
    ``(I − c L) x = b`` is ``(I − c S) (D x) = D b`` with an SPD matrix
    whose condition number is at most 1 + c·max_i Σ_j |S_ij| (17 for P4
    at 96³ and dt = 0.05). No preconditioner: on the 3-D benchmark P4
    (``benchmarks/solvers3d.py``) plain CG with projected warm starts
    costs fewer products L·p than Jacobi (the diagonal is nearly
    constant), Chebyshev (as many products, fewer iterations) or AMG (a
    set-up of several hundred products and a V-cycle of 20–40 that the
    short solves of a time step never repay). A full mobility tensor
    (Selling links) gets Jacobi scaling: on ``benchmarks/tensor.py`` at 48³
    it cuts CG's products from 57 to 39 there (the diagonal mobility on
    the same grid: 33 plain, 36 with Jacobi). The default for reversible
    3-D grids above ``AUTO_ITERATIVE_SIZE`` cells.
``"amg"``
    CG preconditioned by a smoothed-aggregation algebraic multigrid
    hierarchy (:mod:`pyamg`, optional extra ``fpsolver[amg]``); without
    pyamg it runs plain CG and says so once. A hierarchy built for c also
    serves every c' within a factor 2 (:attr:`LinearSolver.hierarchies`
    counts the builds).
``"bicgstab"``
    BiCGStab (van der Vorst 1992) on ``I − c L`` itself, for models without
    a symmetric form (a force, a drift, a tilt). Jacobi-preconditioned; a
    coefficient c whose solve needs more than ``ESCALATE_ITERATIONS``
    iterations gets a non-symmetric smoothed-aggregation hierarchy (pyamg)
    instead, reused for every c' within a factor 2. The default for
    non-reversible 3-D grids above ``AUTO_ITERATIVE_SIZE`` cells.

Tolerance. An iterative solve stops when the L¹ residual of the original
system is small, Σ V|r| ≤ rtol Σ V|b| with r = b − (I − c L) x. Since
I − c L is an M-matrix with Vᵀ(I − c L) ≥ Vᵀ (mass is conserved or lost at
absorbing walls), its inverse does not increase Σ V|·|, so this bounds the
L¹ error of the solve itself: Σ V|x − x*| ≤ rtol Σ V|b| (rtol of the
mass, for a density). The
default ``DEFAULT_RTOL`` = 1e-7 is 1 % of the smallest local error
estimate of the TR-BDF2 steps of P4 (1.1e-5 at dt = 0.05; up to 4e-3 in
the first step), and the final L¹ error of P4 against the exact solution
moves by 3e-7 (0.03 %) from its value with 1e-10; a fixed-step run with a
much smaller dt may want a smaller `rtol`. The global time-error control of
:class:`~fpsolver.integrate.steppers.AdaptiveTRBDF2` (the default of
``solve``) sets `rtol` itself when none is given, from its target
(``SOLVE_ERROR_FRACTION``), and reads the bound its solves committed,
:attr:`LinearSolver.solve_error`.

Warm starts. The initial guess of an iterative solve is the best
combination of the last ``HISTORY`` solutions at the same c (a Galerkin
projection for CG, least squares for BiCGStab; Fischer, Comput. Methods
Appl. Mech. Engrg. 163 (1998) 193–204), which contains every linear or
quadratic extrapolation in time of the previous steps: on P4 it leaves an
initial residual of 1e-5 to 1e-4 where the previous step's density leaves
1e-2, and saves a fifth of the iterations. With cell volumes set, every
solve of a conserving step is rescaled so that mass is exact to rounding
whatever the tolerance; only solves whose right-hand side carries mass
(densities, not error estimates) join the history.

The cache is keyed by c rounded to 12 significant digits, and the matrix is
built with that rounded c, so step sizes that differ only by rounding (a
remainder step computed afresh in every save interval) share one
factorisation, deterministically (a resumed run repeats a run bit for bit).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.linalg import blas

from ..core.memory import available_memory
from .lu import sparse_lu
from .operator import Model, Operator, as_operator

__all__ = [
    "LINEAR_SOLVERS",
    "AUTO_ITERATIVE_SIZE",
    "DEFAULT_RTOL",
    "ESCALATE_ITERATIONS",
    "LinearSolver",
    "choose_linear_solver",
    "lu_2d_bytes",
    "lu_cost_estimate",
]

LINEAR_SOLVERS = ("auto", "lu", "cg", "amg", "bicgstab")

#: 3-D grids with more cells than this use an iterative solver by default
#: (10³). Measured on P4, 20 TR-BDF2 steps (``benchmarks/solvers3d.md``): LU
#: takes 1.2× CG's time at 8³, 3.5× at 10³, 8× at 12³ and 18× at 16³; at 32³
#: one factorisation takes 8 s and 0.2 GiB (``benchmarks/lu_memory.md``). Up
#: to 10³ the LU is kept: its solves are exact (no iteration tolerance) and
#: cost at most 30 ms more over those 20 steps.
AUTO_ITERATIVE_SIZE = 1_000

#: Relative L¹ residual (= bound on the relative L¹ error of a solve) at which
#: the iterative solvers stop by default (see the module notes).
DEFAULT_RTOL = 1e-7

#: BiCGStab iterations of one solve beyond which its c gets an AMG preconditioner.
ESCALATE_ITERATIONS = 100

#: How many previous solutions the initial guess of an iterative solve combines.
HISTORY = 4

#: The automatic cache budget holds the first solver plus at most this many
#: bytes more (within `memory_factors` solvers): small factors are kept by the
#: ladder (a 384² LU: 101 MiB), a large one (512²: 195 MiB) is dropped before
#: the next is built, so the peak memory stays near that of a run with one
#: factorisation (``benchmarks/adaptive.md``: the per-step control at 512²
#: peaks at 1.64× the fixed-step run when two 512² factors are held).
EXTRA_CACHE_BYTES = 128 * 2**20

#: Largest spread of ln D (D = sqrt(V/q)) for which the symmetric form is
#: used: beyond it the diagonal scaling would overflow in double precision.
_MAX_LOG_SPREAD = 600.0

#: Fit of :func:`~fpsolver.discrete.lu.sparse_lu` on 3-D 7-point generators,
#: 16³ to 32³ (``benchmarks/lu_memory.md``): factor entries ≈ 6.1e5
#: (n/4096)^1.56, seconds ≈ 0.18 (n/4096)^1.82.
_LU_FILL = (6.1e5, 1.56)
_LU_SECONDS = (0.18, 1.82)
#: Forcing LU on a 3-D grid warns when the estimate exceeds either limit.
_LU_WARN = (2.0 * 2**30, 30.0)

#: Peak bytes a cell of a 2-D run with SuperLU, over log2(cells): the fill
#: grows like N log N. P2 and P5 with TR-BDF2 from 256² to 1536² measure
#: 81 to 91 (``benchmarks/lu_memory.md``; 150 to 176 with SuperLU's default
#: COLAMD ordering).
LU_2D_BYTES_PER_CELL_LOG2 = 100.0

#: ``"auto"`` on a 2-D grid solves iteratively when the sparse LU would need
#: more than this share of the memory available (:func:`available_memory`).
AUTO_LU_MEMORY_SHARE = 0.5


def _key(c: float) -> float:
    return float(f"{c:.12e}")


def _has_pyamg() -> bool:
    try:
        import pyamg  # noqa: F401
    except ImportError:
        return False
    return True


def lu_cost_estimate(cells: int) -> tuple[float, float]:
    """Bytes and seconds of one sparse LU factorisation of a 3-D generator.

    A power-law fit of :func:`~fpsolver.discrete.lu.sparse_lu` (one core) on
    cubic grids from 16³ to 32³ (``benchmarks/lu_memory.md``); it grows like
    n^1.56 in memory and n^1.82 in time, so it is a warning, not a promise.

    Examples
    --------
    >>> nbytes, seconds = lu_cost_estimate(96**3)
    >>> round(nbytes / 2**30), round(seconds / 60)
    (30, 53)
    """
    ratio = max(float(cells), 1.0) / 4096.0
    nbytes = 12.0 * _LU_FILL[0] * ratio ** _LU_FILL[1]
    return nbytes, _LU_SECONDS[0] * ratio ** _LU_SECONDS[1]


def choose_linear_solver(model: Model | Operator, kind: str = "auto") -> str:
    """Resolve ``kind`` (one of ``LINEAR_SOLVERS``) for `model`.

    ``"auto"`` picks ``"cg"`` for reversible 3-D models with more than
    ``AUTO_ITERATIVE_SIZE`` cells, ``"bicgstab"`` for other 3-D models of
    that size and ``"lu"`` otherwise (1-D and 2-D grids, small 3-D grids),
    except on a 2-D grid whose sparse LU would need more than
    ``AUTO_LU_MEMORY_SHARE`` of the available memory (about 8.6 GiB at
    2048²; :func:`lu_2d_bytes`): there it solves iteratively too (``"cg"``
    or ``"bicgstab"``) and says so in a warning.

    Examples
    --------
    >>> import fpsolver as fp
    >>> m = fp.FokkerPlanck(fp.Grid(x=(-1, 1, 10)), energy=0.0)
    >>> choose_linear_solver(m)
    'lu'
    >>> g = fp.Grid(x=(-1, 1, 12), y=(-1, 1, 12), z=(-1, 1, 12))
    >>> choose_linear_solver(fp.FokkerPlanck(g, energy=0.0))
    'cg'
    >>> choose_linear_solver(fp.FokkerPlanck.from_drift(g, lambda x, y, z: (-y, x, -z)))
    'bicgstab'
    """
    if kind not in LINEAR_SOLVERS:
        raise ValueError(
            f"`linear_solver` must be one of {', '.join(map(repr, LINEAR_SOLVERS))}, got {kind!r}"
        )
    op = as_operator(model)
    if kind == "auto":
        g = op.grid
        large_3d = g.ndim >= 3 and g.size > AUTO_ITERATIVE_SIZE
        if not large_3d and not (g.ndim == 2 and _lu_too_large(g.size)):
            return "lu"
        kind = "cg" if _symmetric_ok(op) else "bicgstab"
        if not large_3d:
            warnings.warn(
                f"a sparse LU of this {g.shape[0]}×{g.shape[1]} grid would need about "
                f"{lu_2d_bytes(g.size) / 2**30:.3g} GiB, more than "
                f"{AUTO_LU_MEMORY_SHARE:.0%} of the memory available: solving with "
                f"linear_solver={kind!r} instead (slower, little memory); pass "
                "linear_solver='lu' to insist",
                RuntimeWarning,
                stacklevel=3,
            )
        return kind
    if kind in ("cg", "amg") and not op.reversible:
        raise ValueError(
            f"`linear_solver`={kind!r} needs the symmetric form, which exists only for "
            "reversible models (no force, no tilt); use 'bicgstab' or 'lu' for this model"
        )
    if kind in ("cg", "amg") and not _symmetric_ok(op):
        raise ValueError(
            f"`linear_solver`={kind!r}: the energy range E/T is too wide for the symmetric "
            "scaling sqrt(V/q) in double precision; use 'bicgstab' or 'lu'"
        )
    return kind


def lu_2d_bytes(cells: int) -> float:
    """Peak bytes of a time-stepping run with a sparse LU on a 2-D grid (estimate).

    Examples
    --------
    >>> round(lu_2d_bytes(1024**2) / 2**30, 2)  # measured: 1.70 GiB (P5), 1.71 (P2)
    1.95
    """
    cells = max(float(cells), 2.0)
    return float(LU_2D_BYTES_PER_CELL_LOG2 * np.log2(cells) * cells)


def _lu_too_large(cells: int) -> bool:
    avail = available_memory()
    return avail is not None and lu_2d_bytes(cells) > AUTO_LU_MEMORY_SHARE * avail


def _symmetric_ok(op: Operator) -> bool:
    if not op.reversible:
        return False
    return float(np.ptp(op.symmetrizer)) < _MAX_LOG_SPREAD


def _warn_if_lu_is_huge(op: Operator) -> None:
    g = op.grid
    if g.ndim < 3:
        return
    nbytes, seconds = lu_cost_estimate(g.size)
    if nbytes > _LU_WARN[0] or seconds > _LU_WARN[1]:
        warnings.warn(
            f"linear_solver='lu' on a 3-D grid of {g.size:,} cells: one factorisation needs "
            f"about {nbytes / 2**30:.3g} GiB and {seconds:.3g} s (estimate); "
            "linear_solver='auto' solves iteratively",
            RuntimeWarning,
            stacklevel=3,
        )


class _Entry:
    """The solver for one c: matrix, preconditioner and the c its hierarchy was built for."""

    __slots__ = ("A", "M", "c_amg")

    def __init__(self, A: Any, M: Any = None, c_amg: float | None = None) -> None:
        self.A, self.M, self.c_amg = A, M, c_amg


class _History:
    """The last few (solution, right-hand side) pairs at one c, for initial guesses.

    ``symmetric``: the guess minimises the A-norm error over the span of
    the stored solutions (Galerkin, with A xᵢ ≈ bᵢ, so only the solutions
    are kept); otherwise it minimises the residual (least squares over the
    stored right-hand sides). The vectors sit in the rows of one array, so
    a guess reads each of them once (two matrix–vector products of k rows).
    """

    def __init__(self, size: int, symmetric: bool) -> None:
        self.size, self.symmetric = int(size), symmetric
        self.c: float | None = None
        self.count = self.next = 0
        self.X = self.B = np.zeros((0, 0))
        self.G = np.zeros((max(self.size, 0),) * 2)

    def guess(self, c: float, b: np.ndarray) -> np.ndarray | None:
        """The best combination of the stored solutions for the right-hand side `b`."""
        if c != self.c or self.count == 0:
            return None
        m = self.count
        rhs = (self.X if self.symmetric else self.B)[:m] @ b
        w, U = np.linalg.eigh(self.G[:m, :m])
        keep = w > 1e-12 * w.max()
        if not keep.any():
            return None
        y = U[:, keep] @ ((U[:, keep].T @ rhs) / w[keep])
        return y @ self.X[:m]

    def push(self, c: float, x: np.ndarray, b: np.ndarray) -> None:
        """Remember the solution `x` of the system at `c` with right-hand side `b`."""
        if self.size <= 0:
            return
        if c != self.c or self.X.shape[1:] != x.shape:
            self.c, self.count, self.next = c, 0, 0
            if self.X.shape[1:] != x.shape:
                self.X = np.empty((self.size, x.size))
                self.B = self.X if self.symmetric else np.empty((self.size, x.size))
        j = self.next
        self.X[j] = x
        if not self.symmetric:
            self.B[j] = b
        self.count = min(self.count + 1, self.size)
        self.next = (j + 1) % self.size
        m = self.count
        row = (self.X if self.symmetric else self.B)[:m] @ b
        self.G[j, :m] = self.G[:m, j] = row


class LinearSolver:
    """Solves ``(I − c L) x = b``, with one cached solver per coefficient c.

    Parameters
    ----------
    L : sparse matrix
        The generator (dp/dt = L p).
    kind : {"lu", "cg", "amg", "bicgstab"}
        See the module docstring. ``"cg"``/``"amg"`` need `symmetric` and
        `log_scale`.
    symmetric : sparse matrix, optional
        The symmetric form S = D L D⁻¹.
    log_scale : ndarray, optional
        ln of the diagonal of D.
    rtol : float, optional
        Iterative kinds: stop at Σ V|r| ≤ rtol Σ V|b| (V = 1 until
        :meth:`set_volumes`), which bounds the L¹ error of each solve by
        rtol Σ V|b|; default ``DEFAULT_RTOL``. Ignored by LU.
    max_bytes : float, optional
        Memory for cached factorisations (LU factors or AMG hierarchies),
        in bytes; the least recently used are dropped to stay within it
        (the one in use is always kept). Default: `memory_factors` times the
        size of the first factorisation, but no more than that size plus
        ``EXTRA_CACHE_BYTES`` (128 MiB), so that large factors are not
        held twice.
    memory_factors : float
        See `max_bytes`: 4 covers every matrix fixed-step BDF2 needs around
        save times; the adaptive method uses 2 (the current rung and the
        one below, for after a rejection).
    history : int
        Iterative kinds: how many previous solutions at the same c the
        initial guess combines (0: use the `x0` passed to :meth:`solve`).
    preconditioner : {None, "jacobi", "chebyshev"}, optional
        ``kind="cg"`` only, for measurements (``benchmarks/solvers3d.py``):
        the diagonal, or a degree-4 Chebyshev polynomial on the
        Gershgorin interval [1, 1 + c·max_i Σ_j |S_ij|]. Neither pays on
        the benchmark, so the default is none; :meth:`for_model` picks
        Jacobi for a full mobility tensor (module notes).

    Attributes
    ----------
    factorizations : int
        Number of per-c solvers built so far: LU factorisations, or the
        matrices of the iterative kinds.
    hierarchies : int
        Number of AMG hierarchies built so far (each serves c within a
        factor 2).
    iterations : int
        Total CG or BiCGStab iterations (iterative kinds).
    products : int
        Total products with the system matrix, iterations included
        (BiCGStab takes two per iteration).
    rtol_given : bool
        Whether `rtol` was passed; when not, a caller that knows the error
        it may spend (the global control of the adaptive method) may set
        :attr:`rtol` itself.
    solve_error : float
        Iterative kinds: Σ rtol·Σ V|b| over the solves of densities so far
        (conserving solves whose right-hand side carries mass), the bound on
        the L¹ error those solves committed (module notes); 0 for LU.

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> m = fp.FokkerPlanck(fp.Grid(x=(-2, 2, 20)), energy=lambda x: x**2, temperature=1.0)
    >>> lin = LinearSolver(fp.discretize(m).generator)
    >>> b = np.ones(20)
    >>> x1 = lin.solve(0.1, b); x2 = lin.solve(0.1, b); x3 = lin.solve(0.2, b)
    >>> lin.factorizations
    2
    """

    def __init__(
        self,
        L: Any,
        kind: str = "lu",
        *,
        symmetric: Any = None,
        log_scale: np.ndarray | None = None,
        rtol: float | None = None,
        max_bytes: float | None = None,
        memory_factors: float = 4.0,
        history: int = HISTORY,
        preconditioner: str | None = None,
    ) -> None:
        kinds = ("lu", "cg", "amg", "bicgstab")
        if kind not in kinds:
            raise ValueError(f"`kind` must be one of {kinds}, got {kind!r}")
        if preconditioner not in (None, "jacobi", "chebyshev") or (
            preconditioner is not None and kind != "cg"
        ):
            raise ValueError(
                "`preconditioner` must be None, 'jacobi' or 'chebyshev' (with kind='cg' only), "
                f"got {preconditioner!r} with kind={kind!r}"
            )
        self.preconditioner = preconditioner
        if kind in ("cg", "amg") and (symmetric is None or log_scale is None):
            raise ValueError(f"`kind`={kind!r} needs `symmetric` and `log_scale`")
        self.rtol = DEFAULT_RTOL if rtol is None else float(rtol)
        self.rtol_given = rtol is not None
        self.solve_error = 0.0
        if not 0.0 < self.rtol < 1.0:
            raise ValueError(f"`rtol` must be in (0, 1), got {rtol!r}")
        self.L = sp.csr_array(L)
        self.kind = kind
        self.n = self.L.shape[0]
        self.max_bytes = None if max_bytes is None else float(max_bytes)
        self._auto_budget = max_bytes is None
        self.memory_factors = float(memory_factors)
        self.cached_bytes = 0
        self.factorizations = self.hierarchies = self.iterations = self.products = 0
        self._cache: OrderedDict[float, Any] = OrderedDict()
        self._sizes: dict[float, int] = {}
        self._last_c: float | None = None
        self._last: Any = None
        self._eye = sp.identity(self.n, format="csr")
        self._norm = 2.0 * float(np.max(np.abs(self.L.diagonal()), initial=0.0))
        self._outflow: np.ndarray | None = None
        self.volumes: np.ndarray | None = None
        self._w: np.ndarray | None = None
        self._history = _History(history, symmetric=kind in ("cg", "amg"))
        if kind in ("cg", "amg"):
            self.S = sp.csr_array(symmetric)
            shift = float(np.max(log_scale))
            self._d = np.exp(np.asarray(log_scale, float) - shift)
        if kind == "amg" and not _has_pyamg():
            _warn_no_pyamg(3)
            self.kind = "cg"

    @classmethod
    def for_model(cls, model: Model | Operator, kind: str = "auto", **kwargs: Any) -> LinearSolver:
        """Build the solver for `model` (or its operator), resolving ``kind="auto"``.

        Forcing ``kind="lu"`` on a 3-D grid whose factorisation would need
        more than 2 GiB or 30 s (:func:`lu_cost_estimate`) warns.

        Examples
        --------
        >>> import fpsolver as fp
        >>> g = fp.Grid(x=(-4, 4, 16), y=(-4, 4, 16), z=(-4, 4, 16))
        >>> LinearSolver.for_model(fp.FokkerPlanck(g, energy=lambda x, y, z: x**2)).kind
        'cg'
        """
        op = as_operator(model)
        kind = choose_linear_solver(op, kind)
        if kind == "lu":
            _warn_if_lu_is_huge(op)
            return cls(op.generator, "lu", **kwargs)
        if kind == "bicgstab":
            return cls(op.generator, "bicgstab", **kwargs)
        if kind == "cg" and op.model.is_tensor:
            kwargs.setdefault("preconditioner", "jacobi")  # see the module notes
        return cls(op.generator, kind, symmetric=op.symmetric, log_scale=op.symmetrizer, **kwargs)

    # -- the cache of per-c solvers ------------------------------------------
    def _build(self, c: float) -> tuple[Any, int]:
        """The solver for `c` and the bytes it holds."""
        self.factorizations += 1
        if self.kind == "lu":
            lu = sparse_lu(self._eye - c * self.L)
            return lu, 12 * int(lu.L.nnz + lu.U.nnz) + 8 * self.n
        if self.kind == "bicgstab":
            A = sp.csr_matrix(self._eye - c * self.L)
            entry = self._nearby_hierarchy(c, _Entry(A))
            if entry.M is None:
                entry.M = _jacobi(A)
            return entry, 12 * int(A.nnz) + 8 * self.n
        A = sp.csr_matrix(self._eye - c * self.S)
        entry = _Entry(A)
        size = 12 * int(A.nnz)
        if self.kind == "amg":
            entry = self._nearby_hierarchy(c, entry)
            if entry.M is None:
                entry.M, extra = self._hierarchy(A, symmetric=True)
                entry.c_amg = c
                size += extra
        elif self.preconditioner == "jacobi":
            entry.M = _jacobi(A)
        elif self.preconditioner == "chebyshev":
            entry.M = _chebyshev(A, _gershgorin_upper(self.S, c), 4)
        return entry, size

    def _hierarchy(self, A: Any, *, symmetric: bool) -> tuple[Any, int]:
        """A new AMG preconditioner for `A` and its bytes."""
        import pyamg

        self.hierarchies += 1
        ml = pyamg.smoothed_aggregation_solver(
            A, symmetry="symmetric" if symmetric else "nonsymmetric"
        )
        size = sum(12 * m.nnz for lv in ml.levels for m in (lv.A, *_transfer(lv)))
        return ml.aspreconditioner(cycle="V"), size

    def _nearby_hierarchy(self, c: float, entry: _Entry) -> _Entry:
        """`entry` with the AMG preconditioner of a cached c' ∈ [c/2, 2c], if there is one."""
        for other in self._cache.values():
            if isinstance(other, _Entry) and other.c_amg is not None:
                if 0.5 * c <= other.c_amg <= 2.0 * c:
                    entry.M, entry.c_amg = other.M, other.c_amg
                    break
        return entry

    def _get(self, c: float) -> Any:
        if c == self._last_c:
            return self._last
        key = _key(c)
        solver = self._cache.get(key)
        if solver is None:
            self._make_room()
            solver, self._sizes[key] = self._build(key)
            self._cache[key] = solver
            self.cached_bytes += self._sizes[key]
            if self.max_bytes is None:
                self.max_bytes = _budget(self._sizes[key], self.memory_factors)
        else:
            self._cache.move_to_end(key)
        self._last_c, self._last = c, solver
        return solver

    def _make_room(self) -> None:
        """Drop least recently used solvers so that one more of the usual size fits."""
        if self.max_bytes is None or not self._sizes:
            return
        typical = max(self._sizes.values())
        while self._cache and self.cached_bytes + typical > self.max_bytes:
            key, _ = self._cache.popitem(last=False)
            self.cached_bytes -= self._sizes.pop(key)
            if key == self._last_c:
                self._last_c = self._last = None
        if self._last_c is not None and _key(self._last_c) not in self._cache:
            self._last_c = self._last = None

    def release(self) -> None:
        """Drop the cached LU factors (a caller that will not use their c again).

        Only LU factors go: they serve their own c alone, whereas the
        iterative solvers' preconditioners are reused for a nearby c and
        stay. A stepper that has moved to a new step size for good calls
        this so that the old factors do not double the peak memory.

        Examples
        --------
        >>> import numpy as np, fpsolver as fp
        >>> m = fp.FokkerPlanck(fp.Grid(x=(-3, 3, 30)), energy=lambda x: x**2 / 2)
        >>> s = LinearSolver(m.generator())
        >>> _ = s.solve(0.1, np.ones(30))
        >>> s.cached_bytes > 0, (s.release(), s.cached_bytes)[1]
        (True, 0)
        """
        if self.kind != "lu":
            return
        self._cache.clear()
        self._sizes.clear()
        self.cached_bytes = 0
        self._last_c = self._last = None

    def set_volumes(self, volumes: np.ndarray) -> None:
        """Enable the mass correction with cell volumes V (see :meth:`solve`)."""
        V = np.asarray(volumes, float).ravel()
        u = V @ self.L
        scale = V @ abs(self.L)
        u[np.abs(u) <= 1e-12 * scale] = 0.0  # exact zeros away from absorbing walls
        self.volumes, self._outflow = V, u
        self._absorbing = bool(np.any(u))
        self._w = None

    # -- solves ----------------------------------------------------------------
    def solve(
        self, c: float, b: np.ndarray, x0: np.ndarray | None = None, *, conserve: bool = True
    ) -> np.ndarray:
        """Return x with ``(I − c L) x = b``.

        Parameters
        ----------
        c : float
            The coefficient (> 0).
        b : ndarray
            Right-hand side (flat).
        x0 : ndarray, optional
            Initial guess of the iterative kinds when they have no history
            at this c (ignored by LU).
        conserve : bool
            When volumes are set (:meth:`set_volumes`) and the step is stiff
            (c‖L‖ > 100, or always for the iterative kinds), rescale x so
            that the exact identity Vᵀ(I − c L) x = Vᵀb holds to rounding.
            Rounding in the factorisation otherwise perturbs the mass by
            ~ε c‖L‖ (1e-7 at dt = 1e6), and an iterative solve by up to its
            tolerance; the rescaling is a factor 1 + O(ε c‖L‖) (1 + O(rtol)),
            so it keeps p ≥ 0 and the order of every method.

        Examples
        --------
        >>> import numpy as np, fpsolver as fp
        >>> g = fp.Grid(x=(-3, 3, 12), y=(-3, 3, 12), z=(-3, 3, 12))
        >>> op = fp.discretize(fp.FokkerPlanck(g, energy=lambda x, y, z: x**2 + y**2))
        >>> lin = LinearSolver.for_model(op)
        >>> b = np.random.default_rng(0).random(g.size)
        >>> x = lin.solve(0.05, b)
        >>> exact = np.linalg.solve(np.eye(g.size) - 0.05 * op.generator.toarray(), b)
        >>> bool(np.abs(x - exact).max() < 1e-6 * exact.max()), lin.kind
        (True, 'cg')
        """
        solver = self._get(c)
        if self.kind == "lu":
            x = solver.solve(b)
            if conserve and self.volumes is not None and c * self._norm > 100.0:
                x = self._conserve(c, b, x)
            return x
        V = self.volumes
        target = total = 0.0
        if V is not None:
            target, total = float(V @ b), float(V @ np.abs(b))
        dense = V is None or abs(target) > 1e-3 * total  # density-like: mass is no cancellation
        if self.kind == "bicgstab":
            x = self._bicgstab(c, solver, b, x0, dense)
        else:
            x = self._cg(c, solver, b, x0, dense)
        if conserve and V is not None and dense:
            have = self._kept_mass(c, x)
            if have != 0.0:
                x *= target / have
            self.solve_error += self.rtol * total
        return x

    def _cg(self, c: float, entry: _Entry, b: np.ndarray, x0: Any, remember: bool) -> np.ndarray:
        """CG on the symmetric form: (I − c S) y = D b, x = D⁻¹ y."""
        d = self._d
        bs = d * b
        y0 = self._history.guess(_key(c), bs)
        if y0 is None and x0 is not None:
            y0 = d * x0
        y, iterations, products, ok = _pcg(
            entry.A, bs, y0, self.rtol, entry.M, weights=self._weights()
        )
        self.iterations += iterations
        self.products += products
        if not ok:
            raise RuntimeError(
                f"CG did not converge to rtol={self.rtol:g} in {iterations} iterations; "
                "try linear_solver='lu' or a smaller dt"
            )
        if remember:
            self._history.push(_key(c), y, bs)
        return y / d

    def _bicgstab(
        self, c: float, entry: _Entry, b: np.ndarray, x0: Any, remember: bool
    ) -> np.ndarray:
        """BiCGStab on I − c L; escalates to AMG when Jacobi needs too many iterations."""
        guess = self._history.guess(_key(c), b)
        if guess is None and x0 is not None:
            guess = np.array(x0, float)
        w = self.volumes if self.volumes is not None else np.ones(self.n)
        x, iterations, products, ok = _bicgstab(entry.A, b, guess, self.rtol, entry.M, weights=w)
        self.iterations += iterations
        self.products += products
        if (not ok or iterations > ESCALATE_ITERATIONS) and entry.c_amg is None and _has_pyamg():
            entry.M, extra = self._hierarchy(entry.A, symmetric=False)
            entry.c_amg = key = _key(c)
            self._sizes[key] += extra
            self.cached_bytes += extra
            if self._auto_budget:  # the budget counts solvers of the new, larger size
                budget = _budget(self._sizes[key], self.memory_factors)
                self.max_bytes = max(self.max_bytes or 0.0, budget)
            if not ok:
                x, iterations, products, ok = _bicgstab(
                    entry.A, b, guess, self.rtol, entry.M, weights=w
                )
                self.iterations += iterations
                self.products += products
        if not ok:
            raise RuntimeError(
                f"BiCGStab did not converge to rtol={self.rtol:g} in {iterations} iterations; "
                "try linear_solver='lu' or a smaller dt"
            )
        if remember:
            self._history.push(_key(c), x, np.array(b, float))
        return x

    def _weights(self) -> np.ndarray:
        """V/d: the L¹ norm of the unscaled residual, Σ V|r|, from the scaled one."""
        if self._w is None:
            V = np.ones(self.n) if self.volumes is None else self.volumes
            self._w = V / self._d
        return self._w

    def _kept_mass(self, c: float, x: np.ndarray) -> float:
        """Vᵀ(I − c L) x: the mass the step's matrix keeps of x (outflow at absorbing walls)."""
        have = float(self.volumes @ x)
        if self._absorbing:
            have -= c * float(self._outflow @ x)
        return have

    def _conserve(self, c: float, b: np.ndarray, x: np.ndarray) -> np.ndarray:
        V = self.volumes
        target, have = float(V @ b), self._kept_mass(c, x)
        if have != 0.0 and abs(target) > 1e-3 * float(V @ np.abs(b)):
            x *= target / have
        return x


def _budget(size: int, factors: float) -> float:
    """The automatic cache budget for solvers of `size` bytes (:data:`EXTRA_CACHE_BYTES`)."""
    return float(size) + min(max(factors - 1.0, 0.0) * size, EXTRA_CACHE_BYTES)


def _warn_no_pyamg(stacklevel: int) -> None:
    warnings.warn(
        "pyamg is not installed: plain CG without a multigrid preconditioner "
        "(pip install 'fpsolver[amg]')",
        RuntimeWarning,
        stacklevel=stacklevel + 1,
    )


class _Stop:
    """The stopping test of :func:`_pcg`.

    Without `weights`: ‖r‖₂ ≤ rtol‖b‖₂. With them: Σ w|r| ≤ rtol Σ w|b|,
    tested every fourth iteration and at every one once the 2-norm test
    holds (it costs two vector passes).
    """

    def __init__(self, b: np.ndarray, rtol: float, weights: np.ndarray | None) -> None:
        self.tol2 = rtol * rtol * float(b @ b)
        self.weights = weights
        if weights is not None:
            self.target = rtol * float(weights @ np.abs(b))

    def __call__(self, r: np.ndarray, rr: float, it: int) -> bool:
        if self.weights is None:
            return rr <= self.tol2
        if rr > self.tol2 and it % 4:
            return False
        return float(self.weights @ np.abs(r)) <= self.target


def _pcg(
    A: Any,
    b: np.ndarray,
    x0: np.ndarray | None,
    rtol: float,
    M: Any = None,
    *,
    weights: np.ndarray | None = None,
    maxiter: int = 10_000,
) -> tuple[np.ndarray, int, int, bool]:
    """Preconditioned CG on SPD `A`: (x, iterations, products, converged).

    Stops at ‖b − A x‖₂ ≤ rtol‖b‖₂, or with `weights` w at the weighted
    L¹ residual Σ w|b − A x| ≤ rtol Σ w|b|. In-place BLAS updates (one pass
    per vector operation); `M` is applied as ``M @ r`` (None: no
    preconditioner).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> A = sp.diags_array([-1.0, 4.0, -1.0], offsets=[-1, 0, 1], shape=(50, 50)).tocsr()
    >>> x, it, prods, ok = _pcg(A, np.ones(50), None, 1e-10)
    >>> ok, bool(np.linalg.norm(A @ x - 1) < 1e-9 * np.sqrt(50))
    (True, True)
    """
    if not np.any(b):
        return np.zeros_like(b), 0, 0, True
    stop = _Stop(b, rtol, weights)
    axpy = blas.get_blas_funcs("axpy", (b,))  # in place for float32 and float64 alike
    if x0 is None:
        x, r, products = np.zeros_like(b), b.copy(), 0
    else:
        x = np.array(x0, b.dtype)
        r, products = b - A @ x, 1
    rr = float(r @ r)
    if stop(r, rr, 0):
        return x, 0, products, True
    z = r if M is None else M @ r
    rz = rr if M is None else float(r @ z)
    # The search direction is kept as scale * u: the update p ← z + β p becomes
    # u ← u + z / (β scale), scale ← β scale, one pass instead of two.
    u, scale = np.array(z, b.dtype), 1.0
    for it in range(1, maxiter + 1):
        q = A @ u
        step = rz / (scale * float(u @ q))  # α·scale, with α = rz / (p·A p)
        axpy(u, x, a=step)
        axpy(q, r, a=-step)
        rr = float(r @ r)
        if stop(r, rr, it):
            return x, it, products + it, True
        if M is None:
            z, rz_new = r, rr
        else:
            z = M @ r
            rz_new = float(r @ z)
        scale *= rz_new / rz
        axpy(z, u, a=1.0 / scale)
        if not 1e-150 < abs(scale) < 1e150:
            u *= scale
            scale = 1.0
        rz = rz_new
    return x, maxiter, products + maxiter, False


def _bicgstab(
    A: Any,
    b: np.ndarray,
    x0: np.ndarray | None,
    rtol: float,
    M: Any = None,
    *,
    weights: np.ndarray | None = None,
    maxiter: int = 5_000,
) -> tuple[np.ndarray, int, int, bool]:
    """Right-preconditioned BiCGStab: (x, iterations, products, converged).

    Van der Vorst, SIAM J. Sci. Stat. Comput. 13 (1992) 631–644. Stops as
    :func:`_pcg` does (2-norm, or the weighted L¹ residual with
    `weights`); right preconditioning keeps the true residual. Two products
    with `A` per iteration.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> A = sp.diags_array([-1.5, 4.0, -0.5], offsets=[-1, 0, 1], shape=(50, 50)).tocsr()
    >>> x, it, prods, ok = _bicgstab(A, np.ones(50), None, 1e-10)
    >>> ok, bool(np.linalg.norm(A @ x - 1) < 1e-9 * np.sqrt(50))
    (True, True)
    """
    if not np.any(b):
        return np.zeros_like(b, dtype=float), 0, 0, True
    stop = _Stop(b, rtol, weights)
    apply = (lambda v: v) if M is None else (lambda v: M @ v)
    x = np.zeros_like(b, dtype=float) if x0 is None else np.array(x0, float)
    r = np.array(b, float) if x0 is None else b - A @ x
    products = 0 if x0 is None else 1
    if stop(r, float(r @ r), 0):
        return x, 0, products, True
    shadow, p, v = r.copy(), np.zeros_like(r), np.zeros_like(r)
    rho = alpha = omega = 1.0
    for it in range(1, maxiter + 1):
        rho_new = float(shadow @ r)
        if rho_new == 0.0 or omega == 0.0:
            break
        blas.daxpy(v, p, a=-omega)
        p *= (rho_new / rho) * (alpha / omega)
        p += r
        ph = apply(p)
        v = A @ ph
        alpha = rho_new / float(shadow @ v)
        blas.daxpy(ph, x, a=alpha)
        blas.daxpy(v, r, a=-alpha)  # r is now s
        if stop(r, float(r @ r), 1):
            return x, it, products + 2 * it - 1, True
        sh = apply(r)
        t = A @ sh
        tt = float(t @ t)
        omega = float(t @ r) / tt if tt > 0.0 else 0.0
        blas.daxpy(sh, x, a=omega)
        blas.daxpy(t, r, a=-omega)
        rho = rho_new
        if stop(r, float(r @ r), it):
            return x, it, products + 2 * it, True
    return x, it, products + 2 * it, False


def _jacobi(A: Any) -> Any:
    """The diagonal (Jacobi) preconditioner of `A` (``M @ v`` applies it)."""
    return sp.diags_array(1.0 / A.diagonal()).tocsr()


def _transfer(level: Any) -> list[Any]:
    """The interpolation and restriction matrices of an AMG level (where present)."""
    return [m for m in (getattr(level, "P", None), getattr(level, "R", None)) if m is not None]


def _chebyshev(A: Any, upper: float, degree: int) -> spla.LinearOperator:
    """Chebyshev polynomial preconditioner of `degree` for SPD `A` with spectrum in [1, upper].

    ``degree`` steps of the Chebyshev iteration from zero: a fixed
    polynomial in A, so symmetric positive definite (usable with CG).
    """
    theta, delta = 0.5 * (upper + 1.0), 0.5 * (upper - 1.0)
    sigma = theta / delta

    def apply(r: np.ndarray) -> np.ndarray:
        r = np.ravel(r)
        rho = 1.0 / sigma
        z = r / theta
        res = r - A @ z
        dz = z.copy()
        for _ in range(degree - 1):
            rho_new = 1.0 / (2.0 * sigma - rho)
            dz *= rho_new * rho
            blas.daxpy(res, dz, a=2.0 * rho_new / delta)
            z += dz
            res -= A @ dz
            rho = rho_new
        return z

    return spla.LinearOperator(A.shape, matvec=apply, dtype=float)


def _gershgorin_upper(S: Any, c: float) -> float:
    """Upper bound 1 + c·max_i Σ_j |S_ij| of the spectrum of I − c S (S symmetric NSD)."""
    return 1.0 + c * float(np.max(abs(S).sum(axis=1), initial=0.0))
