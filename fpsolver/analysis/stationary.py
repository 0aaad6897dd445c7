r"""Stationary densities of any model, reversible or not.

The stationary density solves :math:`L p = 0` with :math:`\sum_i V_i p_i = 1`.
For reversible models the discrete Gibbs density is the exact null vector,
so ``method="auto"`` returns it directly; ``method="direct"`` always runs
the linear algebra of :mod:`fpsolver.discrete.nullspace` (shifted inverse
iteration, the system anchored at the peak, then a rescaled solve that
resolves the tails to relative accuracy); the tests check that both agree
to rounding. Both are cached properties of the model's operator
(:class:`fpsolver.Operator`), so repeated calls cost nothing.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..discrete.operator import Model, Operator, as_operator

__all__ = ["stationary", "stationary_array"]

_METHODS = ("auto", "gibbs", "direct")


def stationary_array(
    model: Model | Operator, method: str = "auto", tails: Any = None
) -> tuple[np.ndarray, str]:
    """The stationary density as a read-only array of the grid shape, and the method used.

    See :func:`stationary`; this variant skips the xarray wrapping.
    """
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"`method` must be one of {_METHODS}, got {method!r}")
    _tails_deprecated(tails)
    op = as_operator(model)
    op._require_closed("stationary()")
    if method == "auto":
        method = "gibbs" if op.gibbs_stationary else "direct"
    if method == "gibbs":
        if not op.gibbs_stationary:
            raise ValueError(
                "`method`='gibbs' needs a model whose Gibbs density is stationary "
                "(reversible, or with an antisymmetric mobility; no force, no tilt); this "
                "one is not: use 'auto' or 'direct'"
            )
        return op.stationary_density, "gibbs"
    return op.stationary_direct, "direct"


def _tails_deprecated(tails: Any) -> None:
    if tails is not None:
        warnings.warn(
            "`tails` is deprecated and ignored: the tails of the stationary density are "
            "now always resolved to relative accuracy",
            DeprecationWarning,
            stacklevel=3,
        )


def stationary(model: Model | Operator, *, method: str = "auto", tails: Any = None):
    """The stationary density p_ss of `model`: L p = 0, Σ V p = 1.

    Parameters
    ----------
    model : FokkerPlanck or Operator
        Any model without absorbing walls: reversible, with a force or a
        tilt, or built with :meth:`FokkerPlanck.from_drift`.
    method : {"auto", "gibbs", "direct"}
        ``"gibbs"`` returns the discrete Gibbs density (reversible models
        only; it is the exact null vector of the generator). ``"direct"``
        runs the linear algebra: shifted inverse iteration, then the
        normalised system anchored at the peak, then the tails to relative
        accuracy (:mod:`fpsolver.discrete.nullspace`). ``"auto"``
        (default) picks ``"gibbs"`` for reversible models and ``"direct"``
        otherwise.
    tails : optional
        Deprecated and ignored: the tails are always resolved to relative
        accuracy (down to 1e-290 of the peak).

    Returns
    -------
    xarray.DataArray
        ``p_ss`` on the cells, Σ V p = 1. ``attrs``: ``residual`` = max |L p|
        (the discrete divergence of the stationary current), ``method``
        (``"gibbs"`` or ``"direct"``),
        ``temperature``.

    Raises
    ------
    ValueError
        If a wall absorbs (the only stationary density is zero) or
        `method` is unknown or not applicable.

    Notes
    -----
    The result is cached on the model's operator. Large 3-D grids make the
    sparse LU expensive (fill-in). The relative accuracy is about ε‖L‖/λ₁
    with λ₁ the spectral gap: see the module notes on metastable models.

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> g = fp.Grid(x=(0.0, 1.0, 64), periodic="x")
    >>> m = fp.FokkerPlanck(g, lambda x: -np.cos(2 * np.pi * x), 1.0, force=[2.0])
    >>> p = m.stationary()
    >>> bool(abs(float((g.volumes * p).sum()) - 1) < 1e-13), p.attrs["residual"] < 1e-10
    (True, True)
    """
    p, used = stationary_array(model, method, tails)
    op = as_operator(model)
    residual = float(np.max(np.abs(op.generator @ p.ravel())))
    return op.grid.data_array(
        np.array(p),
        "p_ss",
        long_name="stationary density",
        units="1/volume",
        residual=residual,
        method=used,
        temperature=op.temperature,
    )
