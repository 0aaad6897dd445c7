r"""First passage: mean first-passage times and committors.

Both solve the *backward* equation. For dp/dt = L p the backward generator,
acting on functions of the position, is the adjoint of L in the
V-weighted inner product,

.. math::

    (L^{*} f)_j = \frac{1}{V_j} \sum_i V_i L_{ij} f_i,
    \qquad L^{*} = \mathrm{diag}(V)^{-1} L^{\mathsf T} \mathrm{diag}(V),

so that d/dt Σ V p f = Σ V p L* f. Its rows sum to zero (L* 1 = 0) up to
the outflow through absorbing walls. In the continuum, for constant K,
L* f = K (T f'' − E'·f') + K F·f'.

- Mean first-passage time τ to a target set A: L* τ = −1 off A, τ = 0 on A.
- Committor c between sets A and B: L* c = 0 off A ∪ B, c = 0 on A,
  c = 1 on B: the probability to reach B before A.

Sets are unions of cells. With absorbing walls, leaving through a wall also
ends the walk: τ is then the mean time until the target is hit *or* the
particle is absorbed, and c the probability to reach B before A and before
being absorbed. The reduced systems are non-singular M-matrix systems
whenever every cell outside the sets can reach them (always so on a
connected grid) and are solved by sparse LU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..core.grid import call_field
from ..discrete.lu import sparse_lu
from ..discrete.operator import Model, Operator, as_operator

__all__ = ["backward_generator", "cell_set", "mean_first_passage_time", "committor"]


def backward_generator(model: Model | Operator) -> sp.csr_array:
    """The backward generator L* = V⁻¹ Lᵀ V (acts on functions, L* 1 = 0).

    Cached on the operator (:attr:`fpsolver.Operator.backward`).

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> m = fp.FokkerPlanck(fp.Grid(x=(-1, 1, 8)), lambda x: x**2, 0.5)
    >>> bool(np.allclose(backward_generator(m) @ np.ones(8), 0, atol=1e-12))
    True
    """
    return as_operator(model).backward


def cell_set(model: Model | Operator, spec: Any, name: str) -> np.ndarray:
    """A set of cells as a boolean array of the grid shape.

    Parameters
    ----------
    model : FokkerPlanck or Operator
    spec : bool array, DataArray or callable
        A boolean mask of the grid shape (or a DataArray with the grid's
        dims), or a callable of the axis arrays (by name or position)
        returning booleans, evaluated at the cell centres.
    name : str
        The argument name, for error messages.
    """
    grid = model.grid
    if callable(spec) and type(spec).__name__ != "DataArray":
        try:
            mask = np.asarray(call_field(spec, grid.names, grid.mesh()))
        except Exception as err:
            raise ValueError(f"`{name}` callable failed on the cell centres: {err}") from err
        try:
            mask = np.broadcast_to(mask, grid.shape)
        except ValueError:
            raise ValueError(
                f"`{name}` callable returned shape {mask.shape}; expected {grid.shape}"
            ) from None
    elif type(spec).__name__ == "DataArray":
        if set(spec.dims) != set(grid.names):
            raise ValueError(f"`{name}` has dims {tuple(spec.dims)}; expected {grid.names}")
        mask = np.asarray(spec.transpose(*grid.names).values)
    else:
        mask = np.asarray(spec)
    if mask.dtype != bool:
        raise TypeError(
            f"`{name}` must be a boolean mask (or a callable returning booleans), "
            f"got values of dtype {mask.dtype}"
        )
    if mask.shape != grid.shape:
        raise ValueError(f"`{name}` must have the grid shape {grid.shape}, got {mask.shape}")
    return np.array(mask)


def _solve_backward(op: Operator, fixed: np.ndarray, values: np.ndarray, rhs: float):
    """Solve (L* u)_j = rhs off `fixed`, u = values on `fixed` (flat arrays)."""
    Lb = op.backward
    free = np.flatnonzero(~fixed)
    known = np.flatnonzero(fixed)
    A = sp.csc_array(Lb[free][:, free])
    b = np.full(free.size, rhs) - Lb[free][:, known] @ values[known]
    lu = sparse_lu(A)
    x = lu.solve(b)
    x += lu.solve(b - A @ x)
    u = values.astype(float).copy()
    u[free] = x
    return u


def mean_first_passage_time(model: Model | Operator, target: Any = None):
    """Mean first-passage time from every cell to the set `target`.

    Solves L* τ = −1 off the target, τ = 0 on it (see the module notes).

    Parameters
    ----------
    model : FokkerPlanck or Operator
    target : bool array, DataArray, callable or None
        The target cells: a boolean mask of the grid shape or a callable of
        the axis arrays returning booleans. Must be neither empty nor the
        whole grid. None (only with an absorbing wall): no target cells, so
        τ is the mean time to absorption (the mean exit time).

    Returns
    -------
    xarray.DataArray
        ``mfpt`` on the cells (0 on the target). With absorbing walls it is
        the mean time until the target is hit or the particle is absorbed.

    Raises
    ------
    ValueError
        If the target is empty or covers every cell, or has the wrong shape.
    TypeError
        If the target is not boolean.

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> g = fp.Grid(x=(0.0, 1.0, 100))
    >>> m = fp.FokkerPlanck(g, 0.0, 1.0)           # free diffusion, D = 1
    >>> tau = m.mean_first_passage_time(lambda x: x > 0.99)    # the last cell
    >>> round(float(tau[0]), 4)                    # exact: (b² − x²)/2, b = 0.995
    0.495
    """
    op = as_operator(model)
    n = op.grid.size
    if target is None:
        if not op.absorbing:
            raise ValueError(
                "`target`=None needs an absorbing wall (the time to be absorbed); "
                "give a target set or make a wall absorbing"
            )
        mask = np.zeros(n, dtype=bool)
    else:
        mask = cell_set(op, target, "target").ravel()
        if not mask.any():
            raise ValueError("`target` is empty: it must contain at least one cell")
    if mask.all():
        raise ValueError(f"`target` covers the whole grid ({n} cells): nothing to pass to")
    tau = _solve_backward(op, mask, np.zeros(n), -1.0)
    tau[mask] = 0.0
    return op.grid.data_array(
        tau.reshape(op.grid.shape),
        "mfpt",
        long_name="mean first-passage time",
        units="time",
        absorbing_walls=int(op.absorbing),
    )


def committor(model: Model | Operator, a: Any, b: Any):
    """Committor: the probability to reach set `b` before set `a`.

    Solves L* c = 0 off a ∪ b with c = 0 on a and c = 1 on b.

    Parameters
    ----------
    model : FokkerPlanck or Operator
    a, b : bool array, DataArray or callable
        Disjoint, non-empty sets of cells (as for
        :func:`mean_first_passage_time`).

    Returns
    -------
    xarray.DataArray
        ``committor`` on the cells, in [0, 1]. With absorbing walls, the
        probability to reach `b` before `a` and before being absorbed.

    Raises
    ------
    ValueError
        If a set is empty or the sets overlap.

    Examples
    --------
    >>> import fpsolver as fp
    >>> g = fp.Grid(x=(0.0, 1.0, 101))
    >>> c = fp.FokkerPlanck(g, 0.0, 1.0).committor(lambda x: x < 0.01, lambda x: x > 0.99)
    >>> round(float(c.sel(x=0.25, method="nearest")), 6)   # linear in x
    0.25
    """
    op = as_operator(model)
    ma = cell_set(op, a, "a").ravel()
    mb = cell_set(op, b, "b").ravel()
    if not ma.any():
        raise ValueError("set `a` is empty: it must contain at least one cell")
    if not mb.any():
        raise ValueError("set `b` is empty: it must contain at least one cell")
    both = np.flatnonzero(ma & mb)
    if both.size:
        raise ValueError(f"sets `a` and `b` overlap in {both.size} cells; they must be disjoint")
    fixed = ma | mb
    values = mb.astype(float)
    c = values if fixed.all() else _solve_backward(op, fixed, values, 0.0)
    c = np.clip(c, 0.0, 1.0)  # rounding only: the M-matrix solve keeps 0 ≤ c ≤ 1
    return op.grid.data_array(
        c.reshape(op.grid.shape),
        "committor",
        long_name="committor (probability to reach b before a)",
        units="1",
        absorbing_walls=int(op.absorbing),
    )
