"""Every sparse LU of the package: SuperLU with the ordering for symmetric patterns."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import fpsolver as fp
from fpsolver.discrete.lu import sparse_lu

PACKAGE = Path(fp.__file__).resolve().parent


def _step_matrix(model, c):
    L = model.generator()
    return sp.identity(L.shape[0], format="csc") - c * L


def _models():
    g2 = fp.Grid(x=(-2, 2, 64), y=(-1.5, 1.5, 48))
    g3 = fp.Grid(x=(-2, 2, 14), y=(-2, 2, 12), z=(-2, 2, 10))
    return {
        "2-D coupled": fp.FokkerPlanck(g2, lambda x, y: (x**2 - 1) ** 2 + x * y + y**2),
        "2-D drift": fp.FokkerPlanck.from_drift(g2, lambda x, y: (-x - 3 * y, 3 * x - y)),
        "3-D coupled": fp.FokkerPlanck(g3, lambda x, y, z: x**2 + y * z + z**2 + x * y),
    }


@pytest.mark.parametrize("name", ["2-D coupled", "2-D drift", "3-D coupled"])
def test_sparse_lu_solves_and_fills_less_than_scipys_default(name):
    A = _step_matrix(_models()[name], 0.05)
    b = np.random.default_rng(0).random(A.shape[0])
    lu = sparse_lu(A)
    x = lu.solve(b)
    assert np.max(np.abs(A @ x - b)) <= 1e-12 * np.max(np.abs(b))
    colamd = spla.splu(A, permc_spec="COLAMD")
    fill, default_fill = lu.L.nnz + lu.U.nnz, colamd.L.nnz + colamd.U.nnz
    assert fill < 0.8 * default_fill, (fill, default_fill)  # measured: 0.5-0.6


def test_every_factorisation_goes_through_sparse_lu():
    """No module calls SuperLU itself, so one ordering holds everywhere."""
    callers = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.name != "lu.py" and re.search(r"\bsplu\s*\(", path.read_text())
    ]
    assert callers == []
