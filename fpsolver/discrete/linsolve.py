"""Linear solves for implicit time steps: (I − c L) x = b.

Every implicit stepper reduces to solving ``(I − c L) x = b`` with the
generator L and a coefficient c (a multiple of the step size). For a
time-independent model the matrix depends on c only, so a
:class:`LinearSolver` keeps one solver per distinct c and counts how many
it built (:attr:`LinearSolver.factorizations`).

Two kinds of solver:

``"lu"``
    Sparse LU (:func:`scipy.sparse.linalg.splu`), exact to rounding. The
    default for 1-D and 2-D grids and for small 3-D grids.
``"cg"`` / ``"amg"``
    Conjugate gradients on the symmetric form of a reversible model:
    with D = diag(sqrt(V/q)) and S = D L D⁻¹ symmetric negative
    semi-definite, ``(I − c L) x = b`` is ``(I − c S) (D x) = D b`` with an
    SPD matrix. ``"amg"`` preconditions CG with a smoothed-aggregation
    algebraic multigrid hierarchy (:mod:`pyamg`, optional extra
    ``fpsolver[amg]``); without pyamg it runs plain CG and says so once.
    Chosen automatically for 3-D grids above ``AUTO_ITERATIVE_SIZE``
    cells, where LU fill-in is prohibitive.

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

from .operator import Model, Operator, as_operator

__all__ = ["LINEAR_SOLVERS", "AUTO_ITERATIVE_SIZE", "LinearSolver", "choose_linear_solver"]

LINEAR_SOLVERS = ("auto", "lu", "cg", "amg")

#: 3-D grids with more cells than this use CG (+AMG) by default (about 17³;
#: measured crossover: LU and AMG-CG cost the same near 16³, and a 32³ LU
#: already needs 20 s and 0.8 GiB for 20 steps against 2 s for AMG-CG).
AUTO_ITERATIVE_SIZE = 5_000

#: Largest spread of ln D (D = sqrt(V/q)) for which the symmetric form is
#: used: beyond it the diagonal scaling would overflow in double precision.
_MAX_LOG_SPREAD = 600.0


def _key(c: float) -> float:
    return float(f"{c:.12e}")


def _has_pyamg() -> bool:
    try:
        import pyamg  # noqa: F401
    except ImportError:
        return False
    return True


def choose_linear_solver(model: Model | Operator, kind: str = "auto") -> str:
    """Resolve ``kind`` (``"auto"``, ``"lu"``, ``"cg"``, ``"amg"``) for `model`.

    ``"auto"`` picks ``"amg"`` (or ``"cg"`` without pyamg) for reversible
    3-D models with more than ``AUTO_ITERATIVE_SIZE`` cells and ``"lu"``
    otherwise.

    Examples
    --------
    >>> import fpsolver as fp
    >>> m = fp.FokkerPlanck(fp.Grid(x=(-1, 1, 10)), energy=0.0)
    >>> choose_linear_solver(m)
    'lu'
    """
    if kind not in LINEAR_SOLVERS:
        raise ValueError(
            f"`linear_solver` must be one of {', '.join(map(repr, LINEAR_SOLVERS))}, got {kind!r}"
        )
    op = as_operator(model)
    if kind == "auto":
        g = op.grid
        if g.ndim >= 3 and g.size > AUTO_ITERATIVE_SIZE and _symmetric_ok(op):
            return "amg" if _has_pyamg() else "cg"
        return "lu"
    if kind in ("cg", "amg") and not op.reversible:
        raise ValueError(
            f"`linear_solver`={kind!r} needs the symmetric form, which exists only for "
            "reversible models (no force, no tilt); use 'lu' for this model"
        )
    if kind in ("cg", "amg") and not _symmetric_ok(op):
        raise ValueError(
            f"`linear_solver`={kind!r}: the energy range E/T is too wide for the symmetric "
            "scaling sqrt(V/q) in double precision; use 'lu'"
        )
    return kind


def _symmetric_ok(op: Operator) -> bool:
    if not op.reversible:
        return False
    return float(np.ptp(op.symmetrizer)) < _MAX_LOG_SPREAD


class LinearSolver:
    """Solves ``(I − c L) x = b``, with one cached solver per coefficient c.

    Parameters
    ----------
    L : sparse matrix
        The generator (dp/dt = L p).
    kind : {"lu", "cg", "amg"}
        See the module docstring. ``"cg"``/``"amg"`` need `symmetric` and
        `log_scale`.
    symmetric : sparse matrix, optional
        The symmetric form S = D L D⁻¹.
    log_scale : ndarray, optional
        ln of the diagonal of D.
    rtol : float
        Relative residual tolerance of CG (ignored by LU).
    max_bytes : float, optional
        Memory for cached factorisations (LU factors or AMG hierarchies),
        in bytes; the least recently used are dropped to stay within it
        (the one in use is always kept). Default: `memory_factors` times the
        size of the first factorisation.
    memory_factors : float
        See `max_bytes`: 4 covers every matrix fixed-step BDF2 needs around
        save times; the adaptive method uses 2 (the current rung and the
        one below, for after a rejection).

    Attributes
    ----------
    factorizations : int
        Number of LU factorisations (or AMG hierarchies) built so far.
    iterations : int
        Total CG iterations (iterative kinds).

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
        rtol: float = 1e-10,
        max_bytes: float | None = None,
        memory_factors: float = 4.0,
    ) -> None:
        if kind not in ("lu", "cg", "amg"):
            raise ValueError(f"`kind` must be 'lu', 'cg' or 'amg', got {kind!r}")
        if kind != "lu" and (symmetric is None or log_scale is None):
            raise ValueError(f"`kind`={kind!r} needs `symmetric` and `log_scale`")
        self.L = sp.csr_array(L)
        self.kind = kind
        self.n = self.L.shape[0]
        self.rtol = float(rtol)
        self.max_bytes = None if max_bytes is None else float(max_bytes)
        self.memory_factors = float(memory_factors)
        self.cached_bytes = 0
        self.factorizations = 0
        self.iterations = 0
        self._cache: OrderedDict[float, Any] = OrderedDict()
        self._sizes: dict[float, int] = {}
        self._last_c: float | None = None
        self._last: Any = None
        self._eye = sp.identity(self.n, format="csr")
        self._norm = 2.0 * float(np.max(np.abs(self.L.diagonal()), initial=0.0))
        self._outflow: np.ndarray | None = None
        self.volumes: np.ndarray | None = None
        if kind != "lu":
            self.S = sp.csr_array(symmetric)
            shift = float(np.max(log_scale))
            self._d = np.exp(np.asarray(log_scale, float) - shift)
        if kind == "amg" and not _has_pyamg():
            warnings.warn(
                "pyamg is not installed: plain CG without a multigrid preconditioner "
                "(pip install 'fpsolver[amg]')",
                RuntimeWarning,
                stacklevel=2,
            )
            self.kind = "cg"

    @classmethod
    def for_model(cls, model: Model | Operator, kind: str = "auto", **kwargs: Any) -> LinearSolver:
        """Build the solver for `model` (or its operator), resolving ``kind="auto"``."""
        op = as_operator(model)
        requested, kind = kind, choose_linear_solver(op, kind)
        if requested == "auto" and kind == "cg":
            warnings.warn(
                "pyamg is not installed: plain CG without a multigrid preconditioner "
                "(pip install 'fpsolver[amg]')",
                RuntimeWarning,
                stacklevel=2,
            )
        if kind == "lu":
            return cls(op.generator, "lu", **kwargs)
        return cls(op.generator, kind, symmetric=op.symmetric, log_scale=op.symmetrizer, **kwargs)

    def _build(self, c: float) -> tuple[Any, int]:
        """The solver for `c` and the bytes it holds."""
        self.factorizations += 1
        if self.kind == "lu":
            lu = spla.splu(sp.csc_matrix(self._eye - c * self.L))
            return lu, 12 * int(lu.L.nnz + lu.U.nnz) + 8 * self.n
        A = sp.csr_matrix(self._eye - c * self.S)
        if self.kind == "amg":
            import pyamg

            ml = pyamg.smoothed_aggregation_solver(A, symmetry="symmetric")
            size = sum(12 * m.nnz for lv in ml.levels for m in (lv.A, *_transfer(lv)))
            return (A, ml.aspreconditioner(cycle="V")), size
        return (A, None), 12 * int(A.nnz)

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
                self.max_bytes = self.memory_factors * self._sizes[key]
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

    def set_volumes(self, volumes: np.ndarray) -> None:
        """Enable the mass correction with cell volumes V (see :meth:`solve`)."""
        V = np.asarray(volumes, float).ravel()
        u = V @ self.L
        scale = V @ abs(self.L)
        u[np.abs(u) <= 1e-12 * scale] = 0.0  # exact zeros away from absorbing walls
        self.volumes, self._outflow = V, u

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
            Initial guess for CG (ignored by LU).
        conserve : bool
            When volumes are set (:meth:`set_volumes`) and the step is stiff
            (c‖L‖ > 100, or always for CG), rescale x so that the exact
            identity Vᵀ(I − c L) x = Vᵀb holds to rounding. Rounding in
            the factorisation otherwise perturbs the mass by ~ε c‖L‖
            (1e-7 at dt = 1e6); the rescaling is a factor 1 + O(ε c‖L‖),
            so it keeps p ≥ 0 and the order of every method.
        """
        solver = self._get(c)
        if self.kind == "lu":
            x = solver.solve(b)
            if conserve and self.volumes is not None and c * self._norm > 100.0:
                x = self._conserve(c, b, x)
            return x
        A, M = solver
        d = self._d
        y0 = None if x0 is None else d * x0
        count = [0]

        def cb(_: Any) -> None:
            count[0] += 1

        y, info = _cg(A, d * b, y0, self.rtol, M, cb)
        self.iterations += count[0]
        if info != 0:
            raise RuntimeError(
                f"CG did not converge to rtol={self.rtol:g} (info={info}); "
                "try linear_solver='lu' or a smaller dt"
            )
        x = y / d
        if conserve and self.volumes is not None:
            x = self._conserve(c, b, x)
        return x

    def _conserve(self, c: float, b: np.ndarray, x: np.ndarray) -> np.ndarray:
        V = self.volumes
        target = float(V @ b)
        have = float((V - c * self._outflow) @ x)
        if have != 0.0 and abs(target) > 1e-3 * float(V @ np.abs(b)):
            x *= target / have
        return x


def _cg(A, b, x0, rtol, M, callback):
    scale = float(np.linalg.norm(b))
    if scale == 0.0:
        return np.zeros_like(b), 0
    try:
        return spla.cg(A, b, x0=x0, rtol=rtol, atol=0.0, M=M, callback=callback, maxiter=10_000)
    except TypeError:  # scipy < 1.12 names it `tol`
        return spla.cg(A, b, x0=x0, tol=rtol, atol=0.0, M=M, callback=callback, maxiter=10_000)


def _transfer(level: Any) -> list[Any]:
    """The interpolation and restriction matrices of an AMG level (where present)."""
    return [m for m in (getattr(level, "P", None), getattr(level, "R", None)) if m is not None]
