"""Sparse LU factorisation: one place for SuperLU and its column ordering.

The generators' sparsity patterns are symmetric (every link couples both
of its cells), so SuperLU orders the columns by minimum degree on the
pattern of Aᵀ + A (:data:`LU_ORDERING`). Its default, COLAMD, orders for
AᵀA, the choice for patterns that are not symmetric, and leaves about
twice the fill here: on P5 (``benchmarks/problems.py``) at 1024², 147
factor entries a cell against 77, and twice the factorisation time
(``benchmarks/lu_memory.md``).
"""

from __future__ import annotations

from typing import Any

import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["LU_ORDERING", "sparse_lu"]

#: The column ordering of every sparse LU of the package.
LU_ORDERING = "MMD_AT_PLUS_A"


def sparse_lu(A: Any, **options: Any) -> spla.SuperLU:
    """SuperLU factors of the square sparse matrix `A`, ordered by :data:`LU_ORDERING`.

    Every factorisation of the package goes through here; `options` are
    passed on to :func:`scipy.sparse.linalg.splu` (``diag_pivot_thresh``, …).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> A = sp.diags([[-1.0] * 3, [3.0] * 4, [-1.0] * 3], [-1, 0, 1])
    >>> x = sparse_lu(A).solve(np.ones(4))
    >>> bool(np.allclose(A @ x, 1.0))
    True
    """
    return spla.splu(sp.csc_matrix(A), permc_spec=LU_ORDERING, **options)
