r"""Lyapunov functions for a given drift: E_eff = −T ln p_ss.

Given deterministic dynamics dx/dt = f(x), which need not be a gradient
flow, add noise of strength T: J = f p − D ∇p with diffusion D (diagonal,
by default D = T). Its stationary density p_ss defines the effective energy

.. math::

    E_{\rm eff} = -T \ln p_{ss},

and with p_ss = e^{−E_eff/T}, ∇p_ss = −p_ss ∇E_eff/T, so the stationary
current is J_ss = p_ss v with

.. math::

    f = \underbrace{-\frac{D}{T}\nabla E_{\rm eff}}_{\text{gradient part}}
      + \underbrace{v}_{\text{circulation}},
    \qquad \nabla\cdot(p_{ss} v) = \nabla\cdot J_{ss} = 0 .

Expanding the last identity gives v·∇E_eff = T ∇·v, so along the
deterministic flow

.. math::

    \frac{d E_{\rm eff}}{dt} = f\cdot\nabla E_{\rm eff}
      = -\frac{1}{T}\,\nabla E_{\rm eff}\cdot D\,\nabla E_{\rm eff} + T\,\nabla\cdot v,

which is ≤ 0 up to a term that vanishes as T → 0 when D ∝ T: E_eff
becomes a Lyapunov function of f (the Freidlin–Wentzell quasi-potential).
:func:`lyapunov` reports how far that holds on the grid at the given T;
compare two temperatures to see the limit.

For a linear drift f = −A x with D = T I the answer is exact:
p_ss = N(0, Σ) with A Σ + Σ Aᵀ = 2 T I, so E_eff = (T/2) xᵀ Σ⁻¹ x + const.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.grid import Grid, require_flat
from ..core.model import Model, _positive_scalar
from ..discrete.operator import Operator

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["lyapunov"]

_TINY = np.finfo(float).tiny


def _gradient(grid: Grid, values: np.ndarray, axis: int) -> np.ndarray:
    """Second-order centred derivative at cell centres (one-sided at walls)."""
    c = np.asarray(grid.centers[axis])
    if grid.periodic[axis]:
        length = grid.lengths()[axis]
        xs = np.concatenate([[c[-1] - length], c, [c[0] + length]])
        padded = np.concatenate(
            [np.take(values, [-1], axis=axis), values, np.take(values, [0], axis=axis)], axis=axis
        )
        d = np.gradient(padded, xs, axis=axis, edge_order=2)
        return np.take(d, np.arange(1, c.size + 1), axis=axis)
    return np.gradient(values, c, axis=axis, edge_order=2 if c.size > 2 else 1)


def _interior(grid: Grid, margin: int = 2) -> np.ndarray:
    """Cells at least `margin` cells away from every wall."""
    mask = np.ones(grid.shape, dtype=bool)
    for a, (n, per) in enumerate(zip(grid.shape, grid.periodic)):
        if per:
            continue
        keep = np.zeros(n, dtype=bool)
        keep[margin : n - margin] = True
        mask &= grid._along(a, keep)
    return mask


def lyapunov(
    grid: Grid,
    drift: Sequence[float] | Callable[..., Any],
    temperature: float,
    *,
    diffusion: float | Sequence[float] | Callable[..., Any] | None = None,
    boundary: str | dict[str, Any] = "reflecting",
) -> xr.Dataset:
    """An effective energy that the drift `f` decreases, and the split of `f`.

    Builds ``FokkerPlanck.from_drift(grid, drift, diffusion, boundary=boundary)``,
    solves for its stationary density (:func:`fpsolver.stationary` with
    ``tails=True``, so that E_eff is accurate far up the walls too) and
    returns E_eff = −T ln p_ss with the decomposition
    f = −(D/T) ∇E_eff + v, ∇·(p_ss v) = 0 (see the module notes).

    Parameters
    ----------
    grid : Grid
        The domain; choose it large enough that the walls do not matter.
    drift : sequence or callable
        f: a constant vector or a callable of the axis arrays returning one
        field per axis.
    temperature : float
        T > 0, the noise strength: the scale of E_eff.
    diffusion : float, sequence or callable, optional
        Diagonal diffusion D (scalar, one value per axis, or a callable).
        Default: D = T (unit mobility). For the T → 0 limit D should scale
        with T.
    boundary : str or mapping
        Walls as for :class:`FokkerPlanck` (not absorbing: there is no
        stationary density then).

    Returns
    -------
    xarray.Dataset
        On the cells: ``energy`` (E_eff; normalised so that
        Σ V e^{−E/T} = 1; resolved up to 1e-290 of the peak of p_ss, i.e.
        E_eff − min E_eff ≤ 667 T, and capped there),
        ``p_ss``, and per axis ``drift_<ax>`` (f), ``gradient_<ax>``
        (−D ∂E/∂ax / T), ``circulation_<ax>`` (v = f − gradient part), and
        ``flow_derivative`` = f·∇E_eff, the rate of change of E_eff along
        dx/dt = f. Derivatives are second-order central differences.
        ``attrs``:

        - ``divergence_residual``: max |∇·(p_ss v)| in the scheme, i.e.
          max |L p_ss|, relative to max |L_ii| p_ss;
        - ``decrease_fraction``: fraction of interior cells (two cells away
          from walls) where f·∇E_eff ≤ 0;
        - ``decrease_mass``: the same weighted by p_ss (the fraction of the
          stationary probability where E_eff decreases);
        - ``max_flow_derivative``: max of f·∇E_eff over the interior,
          relative to max |f·∇E_eff| there (≤ 0 when E_eff decreases
          everywhere);
        - ``temperature`` and the grid.

    Raises
    ------
    ValueError
        If the drift has the wrong number of components or shape, or a
        wall absorbs.

    Examples
    --------
    >>> import fpsolver as fp
    >>> from fpsolver.analysis.lyapunov import lyapunov   # also fp.lyapunov
    >>> g = fp.Grid(x=(-3, 3, 48), y=(-3, 3, 48))
    >>> ds = lyapunov(g, lambda x, y: (-x - 2 * y, 2 * x - y), temperature=0.5)
    >>> ds.attrs["decrease_fraction"] > 0.99      # E_eff = |x|²/2: decreases everywhere
    True
    >>> float(abs(ds["circulation_x"]).max()) > 1  # the rotation is the circulation part
    True
    """
    import xarray as xr

    if not isinstance(grid, Grid):
        raise TypeError(f"`grid` must be an fpsolver.Grid, got {type(grid).__name__}")
    require_flat(grid, "lyapunov (a drift given in coordinates)")
    T = _positive_scalar(temperature, "temperature")
    if diffusion is None:
        diffusion = T
    _check_drift(grid, drift)
    model = Model.from_drift(grid, drift, diffusion, boundary=boundary)
    op = Operator(model)
    p = np.asarray(op.stationary_direct)
    energy = -T * np.log(np.maximum(p, _TINY))
    data, flow = _fields(model, drift, energy, p, T)
    return xr.Dataset(
        data,
        attrs={"temperature": T, **_flow_summary(op, p, flow), **grid.to_attrs()},
    )


def _check_drift(grid: Grid, drift: Any) -> None:
    """A constant drift must have one component per axis."""
    if callable(drift):
        return
    f = np.asarray(drift, dtype=float) if np.ndim(drift) else np.atleast_1d(drift)
    if f.shape != (grid.ndim,):
        raise ValueError(
            f"`drift` must be a callable or a constant vector with one component per "
            f"axis {grid.names} (shape ({grid.ndim},)); got an array of shape {f.shape}"
        )


def _cell_array(
    grid: Grid, values: np.ndarray, name: str, long_name: str, units: str = ""
) -> xr.DataArray:
    """`values` on the cells of `grid` as a named DataArray."""
    import xarray as xr

    return xr.DataArray(
        np.asarray(values, dtype=float),
        dims=grid.names,
        coords=grid.coords(),
        name=name,
        attrs={"long_name": long_name, "units": units},
    )


def _fields(
    model: Model, drift: Any, energy: np.ndarray, p: np.ndarray, T: float
) -> tuple[dict[str, Any], np.ndarray]:
    """The Dataset variables of :func:`lyapunov`, and f·∇E_eff on the cells."""
    grid = model.grid
    mesh = grid.mesh()
    if callable(drift):
        fcomp = model.evaluate_components(drift, mesh, "drift", False)
    else:
        fcomp = [np.full(grid.shape, float(v)) for v in np.asarray(drift, dtype=float)]
    dcomp = model.diffusion_at(mesh)
    data: dict[str, Any] = {
        "energy": _cell_array(grid, energy, "energy", "effective energy -T ln p_ss", "energy"),
        "p_ss": _cell_array(grid, p, "p_ss", "stationary density", "1/volume"),
    }
    flow = np.zeros(grid.shape)
    for a, name in enumerate(grid.names):
        dE = _gradient(grid, energy, a)
        f_a = np.broadcast_to(fcomp[a], grid.shape)
        grad = -np.broadcast_to(dcomp[a], grid.shape) * dE / T
        data[f"drift_{name}"] = _cell_array(grid, f_a, f"drift_{name}", f"drift f along {name}")
        data[f"gradient_{name}"] = _cell_array(
            grid, grad, f"gradient_{name}", f"gradient part -D dE/d{name} / T of the drift"
        )
        data[f"circulation_{name}"] = _cell_array(
            grid, f_a - grad, f"circulation_{name}", f"circulation part v along {name}"
        )
        flow += f_a * dE
    data["flow_derivative"] = _cell_array(
        grid, flow, "flow_derivative", "f . grad E_eff", "energy/time"
    )
    return data, flow


def _flow_summary(op: Operator, p: np.ndarray, flow: np.ndarray) -> dict[str, float]:
    """How well p_ss is stationary, and where E_eff decreases along the flow."""
    grid = op.model.grid
    L = op.generator
    pf = p.ravel()
    div = np.abs(L @ pf)
    scale = float(np.max(np.abs(L.diagonal()) * pf)) or 1.0
    inner = _interior(grid)
    if not inner.any():
        inner = np.ones(grid.shape, dtype=bool)
    fi = flow[inner]
    wi = (grid.volumes * p)[inner]
    peak = float(np.max(np.abs(fi))) or 1.0
    return {
        "divergence_residual": float(np.max(div)) / scale,
        "decrease_fraction": float(np.mean(fi <= 0)),
        "decrease_mass": float(np.sum(wi * (fi <= 0)) / np.sum(wi)) if wi.sum() > 0 else 0.0,
        "max_flow_derivative": float(np.max(fi)) / peak,
    }
