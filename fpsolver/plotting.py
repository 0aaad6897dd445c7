"""Standard figures of fpsolver results (matplotlib, imported lazily).

Every function draws into an ``ax`` (or a list of Axes) when given one,
creates a figure otherwise, and returns the Axes; none calls ``show``.
Importing this module registers the xarray accessor ``ds.fp`` (for example
``ds.fp.plot_density()``); it has no other side effect and does not import
matplotlib until a function draws.

Functions
---------
plot_density
    Density snapshots: lines over time in 1-D, an image with energy
    contours in 2-D.
plot_snapshots
    A row of 2-D density images at several times.
plot_free_energy, plot_relative_entropy
    The Lyapunov functions over time (relative entropy on a log scale).
plot_survival
    Survival probability with absorbing walls (log scale).
plot_comparison
    Grid density vs particle histogram side by side, with the residual.
plot_spectrum, plot_modes
    Relaxation rates and eigenmodes.
plot_current
    Stationary current: a streamplot over the density in 2-D.
animate
    The density over time to a GIF (Pillow) or MP4 (ffmpeg).
standard_figures
    The figures ``fpsolver run`` and ``fpsolver plot`` write.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "animate",
    "plot_comparison",
    "plot_current",
    "plot_density",
    "plot_free_energy",
    "plot_modes",
    "plot_relative_entropy",
    "plot_snapshots",
    "plot_spectrum",
    "plot_survival",
    "standard_figures",
]


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _axes(ax: Any = None, figsize: tuple[float, float] = (5.0, 4.0)):
    if ax is not None:
        return ax
    fig, ax = _plt().subplots(figsize=figsize)
    return ax


def _axes_row(n: int, axes: Any = None, width: float = 4.0) -> list[Any]:
    if axes is not None:
        axes = list(np.ravel(axes))
        if len(axes) != n:
            raise ValueError(f"`axes` must hold {n} Axes, got {len(axes)}")
        return axes
    fig, axs = _plt().subplots(1, n, figsize=(width * n, 3.6), squeeze=False, layout="constrained")
    return list(axs[0])


#: Particle-result variables renamed to match the grid result: new name → old name
#: (results saved by earlier releases carry only the old one).
_RENAMED = {"p": "density", "mass": "survival"}


def _result_var(ds: xr.Dataset, name: str) -> xr.DataArray:
    """``ds[name]``, or the variable's name in earlier releases when `name` is absent."""
    if name not in ds and _RENAMED.get(name) in ds:
        return ds[_RENAMED[name]]
    return ds[name]


def _density_var(obj: xr.Dataset | xr.DataArray, var: str | None = None) -> xr.DataArray:
    """The density DataArray of a result Dataset (``p``/``density``) or a DataArray."""
    if isinstance(obj, xr.DataArray):
        return obj
    if not isinstance(obj, xr.Dataset):
        raise TypeError(f"expected an xarray Dataset or DataArray, got {type(obj).__name__}")
    names = [var, _RENAMED.get(var)] if var else ["p", "density", "p_ss"]
    for name in names:
        if name in obj.data_vars:
            return obj[name]
    wanted = "/".join(n for n in names if n)
    raise ValueError(f"no density variable {wanted!r} in the Dataset; it has {list(obj.data_vars)}")


def _space_dims(da: xr.DataArray) -> list[str]:
    return [d for d in da.dims if d not in ("time", "k")]


def _select_times(da: xr.DataArray, times: Any, default: int) -> list[float] | None:
    if "time" not in da.dims:
        return None
    t = da["time"].values
    if times is None:
        if t.size <= default:
            return list(t)
        idx = np.unique(np.linspace(0, t.size - 1, default).round().astype(int))
        return list(t[idx])
    return [float(t[np.argmin(np.abs(t - v))]) for v in np.atleast_1d(times)]


def _energy_of(obj: Any, energy: Any) -> xr.DataArray | None:
    if energy is not None:
        if hasattr(energy, "energy") and hasattr(energy, "grid"):  # a model
            return energy.grid.data_array(np.asarray(energy.energy), "energy")
        return energy if isinstance(energy, xr.DataArray) else None
    if isinstance(obj, xr.Dataset) and "energy" in obj.data_vars:
        return obj["energy"]
    return None


def _image(ax: Any, da: xr.DataArray, cmap: str = "viridis", **kw: Any):
    """pcolormesh of a 2-D DataArray with the first dim horizontal."""
    xd, yd = da.dims
    x = da[xd].values
    y = da[yd].values
    mesh = ax.pcolormesh(x, y, np.asarray(da.values).T, shading="auto", cmap=cmap, **kw)
    ax.set_xlabel(xd)
    ax.set_ylabel(yd)
    return mesh


def _mollweide(theta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mollweide map of colatitude θ and longitude φ (φ = π at the centre line).

    Solves 2γ + sin 2γ = π sin(latitude) by Newton's method
    (Snyder, Map Projections — A Working Manual, USGS 1987, §31).
    """
    lat = 0.5 * np.pi - np.asarray(theta, float)
    lon = np.asarray(phi, float) - np.pi
    gamma = lat.copy()
    for _ in range(60):
        f = 2 * gamma + np.sin(2 * gamma) - np.pi * np.sin(lat)
        d = 2 + 2 * np.cos(2 * gamma)
        step = np.where(d > 1e-12, f / np.where(d > 1e-12, d, 1.0), 0.0)
        gamma = gamma - step
        if np.max(np.abs(step)) < 1e-13:
            break
    gamma = np.where(np.abs(lat) >= 0.5 * np.pi, np.sign(lat) * 0.5 * np.pi, gamma)
    return 2 * np.sqrt(2) / np.pi * lon * np.cos(gamma), np.sqrt(2) * np.sin(gamma)


def _curved_grid(obj: Any) -> Any:
    """The polar or sphere Grid of a result Dataset, or None (other grids draw in coordinates)."""
    attrs = getattr(obj, "attrs", {})
    if str(attrs.get("grid_geometry", "")) not in ("polar", "sphere"):
        return None
    from .core.grid import Grid

    return Grid.from_attrs(attrs)


def _natural_image(ax: Any, da: xr.DataArray, grid: Any, cmap: str = "viridis", **kw: Any):
    """pcolormesh of a polar density on the disc, a sphere density on a Mollweide map."""
    values = np.asarray(da.transpose(*grid.names).values)
    e0, e1 = np.meshgrid(*grid.edges, indexing="ij")
    if grid.kind == "polar":
        x, y = e0 * np.cos(e1), e0 * np.sin(e1)
        ax.set_xlabel("x = r cos φ")
        ax.set_ylabel("y = r sin φ")
    else:
        x, y = _mollweide(e0, e1)
        ax.set_xlabel("longitude φ (Mollweide)")
        ax.set_ylabel("latitude π/2 − θ")
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_aspect("equal")
    return ax.pcolormesh(x, y, values, shading="flat", cmap=cmap, **kw)


def plot_density(
    obj: xr.Dataset | xr.DataArray,
    time: float | Sequence[float] | None = None,
    *,
    ax: Any = None,
    energy: Any = None,
    reference: xr.DataArray | None = None,
    var: str | None = None,
    colorbar: bool = True,
    levels: int = 8,
):
    """Density snapshots.

    In 1-D, one line per selected time (default: up to five times from the
    first to the last), with an optional `reference` drawn dashed (an exact
    solution, with or without a ``time`` dim). In 2-D, an image of the
    density at one time (default: the last) with contours of the energy.

    Parameters
    ----------
    obj : Dataset or DataArray
        A solve or particle result (uses ``p``; ``density`` in particle
        results saved by earlier releases), or a density DataArray with or
        without ``time``.
    time : float or sequence, optional
        Time(s) to show, snapped to the nearest saved time.
    ax : Axes, optional
    energy : DataArray or FokkerPlanck, optional
        Energy for 2-D contours; by default the Dataset's ``energy``
        variable if present.
    reference : DataArray, optional
        An overlay for 1-D plots (e.g. :func:`fpsolver.core.analytic.ou_density`).
    var : str, optional
        Name of the density variable in the Dataset.
    colorbar : bool
        Add a colour bar in 2-D.
    levels : int
        Number of energy contour levels in 2-D.

    Returns
    -------
    Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import fpsolver as fp
    >>> from fpsolver.plotting import plot_density
    >>> g = fp.Grid(x=(-3, 3, 30))
    >>> ax = plot_density(fp.gaussian(g, 0.0, 0.5))
    >>> len(ax.lines)
    1
    >>> matplotlib.pyplot.close("all")
    """
    da = _density_var(obj, var)
    dims = _space_dims(da)
    ax = _axes(ax)
    if len(dims) == 1:
        times = _select_times(da, time, 5)
        cmap = _plt().get_cmap("viridis")
        if times is None:
            ax.plot(da[dims[0]].values, da.values, label=da.name or "p")
        else:
            for i, t in enumerate(times):
                colour = cmap(i / max(len(times) - 1, 1))
                ax.plot(
                    da[dims[0]].values,
                    da.sel(time=t).values,
                    color=colour,
                    label=f"t = {t:.3g}",
                )
                if reference is not None and "time" in reference.dims:
                    ref = reference.sel(time=t, method="nearest")
                    ax.plot(ref[dims[0]].values, ref.values, "--", color="k", lw=1)
        if reference is not None and "time" not in reference.dims:
            ax.plot(
                reference[dims[0]].values,
                reference.values,
                "--",
                color="k",
                lw=1,
                label=str(reference.name or "reference"),
            )
        ax.set_xlabel(dims[0])
        ax.set_ylabel("density")
        ax.legend(fontsize="small")
        return ax
    if len(dims) != 2:
        raise ValueError(f"plot_density draws 1-D or 2-D densities, got dims {tuple(dims)}")
    if "time" in da.dims:
        t = _select_times(da, time if time is not None else da["time"].values[-1], 1)[0]
        da2 = da.sel(time=t)
        ax.set_title(f"t = {t:.3g}")
    else:
        da2 = da
    da2 = da2.transpose(*dims)
    curved = _curved_grid(obj)
    if curved is not None:  # the disc or a Mollweide map of the sphere
        mesh = _natural_image(ax, da2, curved)
        if colorbar:
            ax.figure.colorbar(mesh, ax=ax, label="density")
        return ax
    mesh = _image(ax, da2)
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label="density")
    e = _energy_of(obj, energy)
    if e is not None:
        e = e.transpose(*dims)
        values = np.asarray(e.values)
        # levels where the density lives: the lower part of the energy range
        lv = np.unique(np.quantile(values, np.linspace(0.02, 0.6, levels)))
        ax.contour(
            e[dims[0]].values,
            e[dims[1]].values,
            values.T,
            levels=lv if lv.size > 1 else levels,
            colors="w",
            linewidths=0.6,
        )
    return ax


def plot_snapshots(
    obj: xr.Dataset | xr.DataArray,
    times: Sequence[float] | None = None,
    *,
    axes: Any = None,
    energy: Any = None,
    n: int = 4,
):
    """A row of density images (2-D) or one line plot (1-D) at several times.

    In 2-D all panels share one colour scale.

    Returns
    -------
    list of Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import numpy as np, xarray as xr
    >>> from fpsolver.plotting import plot_snapshots
    >>> p = xr.DataArray(np.ones((3, 4, 5)), dims=("time", "x", "y"),
    ...                  coords={"time": [0, 1, 2], "x": np.arange(4), "y": np.arange(5)})
    >>> len(plot_snapshots(p, n=3))
    3
    >>> matplotlib.pyplot.close("all")
    """
    da = _density_var(obj)
    dims = _space_dims(da)
    if len(dims) == 1:
        return [plot_density(obj, time=times, ax=None if axes is None else np.ravel(axes)[0])]
    ts = _select_times(da, times, n)
    if ts is None:
        raise ValueError("plot_snapshots needs a density with a `time` dim")
    axs = _axes_row(len(ts), axes)
    vmax = float(da.sel(time=ts).max())
    for ax, t in zip(axs, ts):
        plot_density(obj, time=t, ax=ax, energy=energy, colorbar=False)
        ax.collections[0].set_clim(0.0, vmax)
    axs[-1].figure.colorbar(axs[-1].collections[0], ax=axs, label="density")
    return axs


def plot_free_energy(ds: xr.Dataset, ax: Any = None):
    """Free energy F(t) with its equilibrium value F_eq dashed.

    F_eq = F − T·KL is recovered from the Dataset's ``relative_entropy``
    and ``temperature`` attribute when both are present and the Gibbs state
    is the limit (no absorbing wall, no ``relative_entropy_ss``).

    Returns
    -------
    Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import numpy as np, xarray as xr
    >>> from fpsolver.plotting import plot_free_energy
    >>> t = np.linspace(0, 1, 5)
    >>> ds = xr.Dataset({"free_energy": ("time", 1 + np.exp(-t)),
    ...                  "relative_entropy": ("time", np.exp(-t))},
    ...                 coords={"time": t}, attrs={"temperature": 1.0})
    >>> ax = plot_free_energy(ds)
    >>> float(ax.lines[1].get_ydata()[0])
    1.0
    >>> matplotlib.pyplot.close("all")
    """
    ax = _axes(ax)
    t = ds["time"].values
    f = ds["free_energy"].values
    ax.plot(t, f, label="F(t)")
    gibbs = "absorbed" not in ds and "relative_entropy_ss" not in ds  # q is the limit
    if gibbs and "relative_entropy" in ds and "temperature" in ds.attrs:
        f_eq = float(np.median(f - float(ds.attrs["temperature"]) * ds["relative_entropy"].values))
        ax.axhline(f_eq, ls="--", color="k", lw=1, label="F_eq")
    ax.set_xlabel("time")
    ax.set_ylabel("free energy")
    ax.legend(fontsize="small")
    return ax


def plot_relative_entropy(ds: xr.Dataset, ax: Any = None):
    """Relative entropy KL(p‖q) over time on a log scale.

    Adds ``relative_entropy_ss`` (KL to the stationary state) when the
    Dataset has it. Non-positive values (exact equilibrium) are left out of
    the log plot.

    Returns
    -------
    Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import numpy as np, xarray as xr
    >>> from fpsolver.plotting import plot_relative_entropy
    >>> t = np.linspace(0, 1, 5)
    >>> ds = xr.Dataset({"relative_entropy": ("time", np.exp(-t))}, coords={"time": t})
    >>> plot_relative_entropy(ds).get_yscale()
    'log'
    >>> matplotlib.pyplot.close("all")
    """
    ax = _axes(ax)
    t = ds["time"].values
    names = [n for n in ("relative_entropy", "relative_entropy_ss") if n in ds]
    if not names:
        raise ValueError("the Dataset has no `relative_entropy` variable")
    for name in names:
        v = np.asarray(ds[name].values, dtype=float)
        keep = v > 0
        label = "KL(p‖q)" if name == "relative_entropy" else "KL(p‖p_ss)"
        ax.plot(t[keep], v[keep], label=label)
    ax.set_yscale("log")
    ax.set_xlabel("time")
    ax.set_ylabel("relative entropy")
    ax.legend(fontsize="small")
    return ax


def plot_survival(ds: xr.Dataset, ax: Any = None):
    """Survival probability S(t) = Σ V p (the mass left) on a log scale.

    For runs with absorbing walls; the absorbed mass is 1 − S. Reads
    ``mass`` of a grid or particle result (``survival`` in particle results
    saved by earlier releases).

    Returns
    -------
    Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import numpy as np, xarray as xr
    >>> from fpsolver.plotting import plot_survival
    >>> t = np.linspace(0, 1, 5)
    >>> ds = xr.Dataset({"mass": ("time", np.exp(-t))}, coords={"time": t})
    >>> ax = plot_survival(ds)
    >>> ax.get_yscale(), bool(np.allclose(ax.lines[0].get_ydata(), np.exp(-t)))
    ('log', True)
    >>> matplotlib.pyplot.close("all")
    """
    ax = _axes(ax)
    t = ds["time"].values
    s = np.asarray(_result_var(ds, "mass").values, dtype=float)
    keep = s > 0
    ax.plot(t[keep], s[keep], label="S(t) = Σ V p")
    ax.set_yscale("log")
    ax.set_xlabel("time")
    ax.set_ylabel("survival probability")
    ax.legend(fontsize="small")
    return ax


def _common_time(grid_da: xr.DataArray, part_da: xr.DataArray, time: float | None) -> float:
    tg = grid_da["time"].values
    tp = part_da["time"].values
    if time is None:
        time = float(min(tg[-1], tp[-1]))
    return float(tp[np.argmin(np.abs(tp - time))])


def plot_comparison(
    ds: xr.Dataset,
    parts: xr.Dataset,
    time: float | None = None,
    *,
    axes: Any = None,
):
    """Grid density vs particle histogram, side by side, with the residual.

    1-D: two panels — both densities (grid line, particle steps) and the
    residual (particles − grid). 2-D: three images — grid, particles (same
    colour scale) and the residual (diverging colours, symmetric scale).

    Parameters
    ----------
    ds : Dataset
        Grid result (``p``).
    parts : Dataset
        Particle result (``p`` on the same cells; ``density`` in results
        saved by earlier releases).
    time : float, optional
        Time to compare (default: the last time both have), snapped to the
        nearest particle time.
    axes : sequence of Axes, optional
        Two (1-D) or three (2-D) Axes.

    Returns
    -------
    list of Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import numpy as np, xarray as xr
    >>> from fpsolver.plotting import plot_comparison
    >>> c = {"time": [0.0, 1.0], "x": np.linspace(0, 1, 4)}
    >>> ds = xr.Dataset({"p": (("time", "x"), np.ones((2, 4)))}, coords=c)
    >>> parts = xr.Dataset({"p": (("time", "x"), np.full((2, 4), 1.1))}, coords=c)
    >>> axs = plot_comparison(ds, parts)
    >>> np.allclose(axs[1].lines[0].get_ydata(), 0.1)
    True
    >>> matplotlib.pyplot.close("all")
    """
    g = _density_var(ds, "p")
    p = _density_var(parts, "p")
    dims = _space_dims(g)
    t = _common_time(g, p, time)
    gt = g.sel(time=t, method="nearest").transpose(*dims)
    pt = p.sel(time=t).transpose(*dims)
    resid = pt - gt.values
    if len(dims) == 1:
        axs = _axes_row(2, axes)
        x = gt[dims[0]].values
        axs[0].plot(x, gt.values, label="grid")
        axs[0].step(x, pt.values, where="mid", label="particles")
        axs[0].set_xlabel(dims[0])
        axs[0].set_ylabel("density")
        axs[0].set_title(f"t = {t:.3g}")
        axs[0].legend(fontsize="small")
        axs[1].plot(x, resid.values, color="C3")
        axs[1].axhline(0.0, color="k", lw=0.8)
        axs[1].set_xlabel(dims[0])
        axs[1].set_ylabel("particles − grid")
        return axs
    if len(dims) != 2:
        raise ValueError(f"plot_comparison draws 1-D or 2-D densities, got dims {tuple(dims)}")
    axs = _axes_row(3, axes)
    vmax = float(max(gt.max(), pt.max()))
    for ax, da, title in ((axs[0], gt, "grid"), (axs[1], pt, "particles")):
        mesh = _image(ax, da, vmin=0.0, vmax=vmax)
        ax.set_title(f"{title}, t = {t:.3g}")
    axs[0].figure.colorbar(mesh, ax=axs[:2], label="density")
    r = float(np.max(np.abs(resid.values))) or 1.0
    mesh = _image(axs[2], resid, cmap="RdBu_r", vmin=-r, vmax=r)
    axs[2].set_title("particles − grid")
    axs[2].figure.colorbar(mesh, ax=axs[2])
    return axs


def plot_spectrum(spec: xr.Dataset, ax: Any = None):
    """Relaxation rates λ_k against their index (log scale when all positive).

    Returns
    -------
    Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import xarray as xr
    >>> from fpsolver.plotting import plot_spectrum
    >>> ax = plot_spectrum(xr.Dataset({"rate": ("k", [0.5, 1.0, 2.0])}))
    >>> ax.lines[0].get_ydata().tolist()
    [0.5, 1.0, 2.0]
    >>> matplotlib.pyplot.close("all")
    """
    ax = _axes(ax)
    rate = np.real(np.asarray(spec["rate"].values))
    k = np.arange(rate.size)
    ax.plot(k, rate, "o", label="rate")
    if rate.size and np.all(rate > 0):
        ax.set_yscale("log")
    ax.set_xlabel("k")
    ax.set_ylabel("relaxation rate λ_k")
    ax.set_xticks(k)
    return ax


def plot_modes(spec: xr.Dataset, k: Sequence[int] | None = None, axes: Any = None):
    """Eigenmodes: lines in 1-D (one Axes), images in 2-D (one per mode).

    Returns
    -------
    list of Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import numpy as np, xarray as xr
    >>> from fpsolver.plotting import plot_modes
    >>> spec = xr.Dataset({"rate": ("k", [0.0, 1.0]),
    ...                    "mode": (("k", "x"), np.ones((2, 5)))})
    >>> len(plot_modes(spec)[0].lines)
    2
    >>> matplotlib.pyplot.close("all")
    """
    mode = spec["mode"]
    ks = list(range(mode.sizes["k"])) if k is None else list(k)
    dims = _space_dims(mode)
    rate = np.real(np.asarray(spec["rate"].values))
    if len(dims) == 1:
        ax = _axes(None if axes is None else np.ravel(axes)[0])
        x = mode[dims[0]].values if dims[0] in mode.coords else np.arange(mode.sizes[dims[0]])
        for i in ks:
            ax.plot(x, np.real(mode.isel(k=i).values), label=f"λ_{i} = {rate[i]:.3g}")
        ax.set_xlabel(dims[0])
        ax.set_ylabel("mode")
        ax.legend(fontsize="small")
        return [ax]
    axs = _axes_row(len(ks), axes)
    for ax, i in zip(axs, ks):
        m = np.real(mode.isel(k=i).transpose(*dims))
        r = float(np.max(np.abs(m.values))) or 1.0
        _image(ax, m, cmap="RdBu_r", vmin=-r, vmax=r)
        ax.set_title(f"λ_{i} = {rate[i]:.3g}")
    return axs


def _faces_to_centres(j: np.ndarray, axis: int, ncells: int) -> np.ndarray:
    j = np.moveaxis(j, axis, 0)
    if j.shape[0] == ncells + 1:  # bounded: walls included
        c = 0.5 * (j[1:] + j[:-1])
    elif j.shape[0] == ncells:  # periodic: face i is the upper face of cell i
        c = 0.5 * (j + np.roll(j, 1, axis=0))
    else:
        raise ValueError(f"current has {j.shape[0]} faces along axis {axis}, cells {ncells}")
    return np.moveaxis(c, 0, axis)


def plot_current(model: Any, p: Any, *, ax: Any = None, density: bool = True, **stream_kw: Any):
    """The probability current of `p`: a streamplot over the density in 2-D.

    The current is the scheme's own face flux (:meth:`FokkerPlanck.current`),
    averaged to cell centres for the streamplot; line width follows |J|. In
    1-D the face current J(x) is drawn as a line (constant for a
    stationary state).

    Parameters
    ----------
    model : FokkerPlanck
    p : array or DataArray
        Density on the cells (e.g. ``model.stationary()``).
    ax : Axes, optional
    density : bool
        Draw the density image under the streamlines (2-D).
    **stream_kw
        Passed to ``Axes.streamplot``.

    Returns
    -------
    Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import fpsolver as fp
    >>> from fpsolver.plotting import plot_current
    >>> g = fp.Grid(x=(-3, 3, 20), y=(-3, 3, 20))
    >>> m = fp.FokkerPlanck(g, lambda x, y: 0.5 * (x**2 + y**2), 1.0)
    >>> ax = plot_current(m, fp.gaussian(g, (1, 0), 0.5))
    >>> len(ax.collections) >= 2
    True
    >>> matplotlib.pyplot.close("all")
    """
    if getattr(getattr(model, "grid", None), "curved", False):
        raise NotImplementedError(
            f"plot_current draws streamlines on Cartesian grids; this grid is "
            f"{model.grid.kind!r} (use model.current(p) for the face currents)"
        )
    grid = model.grid
    cur = model.current(p)
    ax = _axes(ax)
    if grid.ndim == 1:
        name = grid.names[0]
        j = cur[f"J_{name}"]
        ax.plot(j[f"{name}_face"].values, j.values)
        ax.set_xlabel(name)
        ax.set_ylabel(f"J_{name}")
        return ax
    if grid.ndim != 2:
        raise ValueError(f"plot_current draws 1-D or 2-D currents, got {grid.ndim}-D")
    comps = [
        _faces_to_centres(np.asarray(cur[f"J_{n}"].transpose(*_face_dims(grid, a)).values), a, s)
        for a, (n, s) in enumerate(zip(grid.names, grid.shape))
    ]
    x, y = grid.centers
    if density:
        pa = p if isinstance(p, xr.DataArray) else grid.data_array(np.asarray(p), "p")
        _image(ax, pa.transpose(*grid.names), cmap="Greys")
    speed = np.hypot(*comps)
    lw = 0.5 + 2.0 * speed / (speed.max() or 1.0)
    stream_kw.setdefault("color", "C1")
    ax.streamplot(x, y, comps[0].T, comps[1].T, linewidth=lw.T, **stream_kw)
    ax.set_xlim(grid.edges[0][0], grid.edges[0][-1])
    ax.set_ylim(grid.edges[1][0], grid.edges[1][-1])
    ax.set_xlabel(grid.names[0])
    ax.set_ylabel(grid.names[1])
    return ax


def _face_dims(grid: Any, axis: int) -> tuple[str, ...]:
    return tuple(f"{n}_face" if b == axis else n for b, n in enumerate(grid.names))


def animate(
    obj: xr.Dataset | xr.DataArray,
    path: str | Path,
    *,
    fps: int = 10,
    dpi: int = 80,
    energy: Any = None,
) -> Path:
    """Animate the density over time to a GIF (Pillow) or MP4 (ffmpeg).

    The format follows the suffix of `path`. MP4 needs ffmpeg on the PATH;
    without it a RuntimeError says so (use ``.gif`` instead).

    Returns
    -------
    Path
        The written file.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import numpy as np, xarray as xr, tempfile, pathlib
    >>> from fpsolver.plotting import animate
    >>> p = xr.DataArray(np.random.default_rng(0).random((3, 5)), dims=("time", "x"),
    ...                  coords={"time": [0.0, 1.0, 2.0], "x": np.arange(5.0)})
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = animate(p, pathlib.Path(d) / "p.gif", fps=5)
    ...     out.stat().st_size > 0
    True
    >>> matplotlib.pyplot.close("all")
    """
    from matplotlib import animation

    plt = _plt()
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        writer: Any = animation.PillowWriter(fps=fps)
    elif suffix == ".mp4":
        if not animation.writers.is_available("ffmpeg"):
            raise RuntimeError(
                "writing MP4 needs ffmpeg on the PATH; install it or write a .gif instead"
            )
        writer = animation.FFMpegWriter(fps=fps)
    else:
        raise ValueError(f"`path` must end in .gif or .mp4, got {path.name!r}")
    da = _density_var(obj)
    if "time" not in da.dims:
        raise ValueError("animate needs a density with a `time` dim")
    dims = _space_dims(da)
    times = da["time"].values
    fig, ax = plt.subplots(figsize=(5, 4))
    if len(dims) == 1:
        x = da[dims[0]].values
        (line,) = ax.plot(x, da.isel(time=0).values)
        ax.set_ylim(0.0, 1.05 * float(da.max()))
        ax.set_xlabel(dims[0])
        ax.set_ylabel("density")

        def update(i: int) -> None:
            line.set_ydata(da.isel(time=i).values)
            ax.set_title(f"t = {times[i]:.3g}")

    else:
        plot_density(obj, time=float(times[0]), ax=ax, energy=energy)
        mesh = ax.collections[0]
        mesh.set_clim(0.0, float(da.max()))

        def update(i: int) -> None:
            mesh.set_array(np.asarray(da.isel(time=i).transpose(*dims).values).T.ravel())
            ax.set_title(f"t = {times[i]:.3g}")

    anim = animation.FuncAnimation(fig, update, frames=len(times), blit=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    anim.save(str(path), writer=writer, dpi=dpi)
    plt.close(fig)
    return path


def standard_figures(
    ds: xr.Dataset,
    outdir: str | Path,
    *,
    name: str = "result",
    model: Any = None,
    parts: xr.Dataset | None = None,
    dpi: int = 100,
    animation: str | bool = False,
) -> list[Path]:
    """Write the standard figures of a run and return their paths.

    ``<name>_density.png`` (snapshots), ``<name>_relaxation.png`` (free
    energy and relative entropy), ``<name>_comparison.png`` with `parts`,
    ``<name>_current.png`` for a non-reversible 2-D `model`, and
    ``<name>.gif``/``.mp4`` when `animation` asks for one.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import numpy as np, xarray as xr, tempfile
    >>> from fpsolver.plotting import standard_figures
    >>> t = np.linspace(0, 1, 3)
    >>> ds = xr.Dataset({"p": (("time", "x"), np.ones((3, 4))),
    ...                  "free_energy": ("time", 1 + np.exp(-t)),
    ...                  "relative_entropy": ("time", np.exp(-t))},
    ...                 coords={"time": t, "x": np.arange(4.0)}, attrs={"temperature": 1.0})
    >>> with tempfile.TemporaryDirectory() as d:
    ...     [p.name for p in standard_figures(ds, d)]
    ['result_density.png', 'result_relaxation.png']
    >>> matplotlib.pyplot.close("all")
    """
    plt = _plt()
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []

    def save(fig: Any, stem: str) -> None:
        path = out / f"{name}_{stem}.png"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)

    energy = model if model is not None else None
    density = _density_var(ds)
    ndim = len(_space_dims(density))
    if ndim <= 2:
        axs = plot_snapshots(ds, energy=energy)
        save(axs[0].figure, "density")
    else:  # marginal over the trailing axes: a 2-D density of the first two
        axs = plot_snapshots(_marginal(density, ds.attrs))
        axs[0].figure.suptitle(f"marginal density of {', '.join(_space_dims(density)[:2])}")
        save(axs[0].figure, "density")
    panels = []
    if "free_energy" in ds:
        panels.append(plot_free_energy)
    if "absorbed" in ds and "mass" in ds:  # sub-probability: show survival
        panels.append(plot_survival)
    elif "relative_entropy" in ds:
        panels.append(plot_relative_entropy)
    if panels:
        fig, axs = plt.subplots(
            1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False, layout="constrained"
        )
        for func, ax in zip(panels, axs[0]):
            func(ds, ax=ax)
        save(fig, "relaxation")
    if parts is not None:
        axs = plot_comparison(ds, parts)
        save(axs[0].figure, "comparison")
    if model is not None and model.grid.ndim == 2 and not model.reversible:
        p_last = _density_var(ds).isel(time=-1)
        ax = plot_current(model, p_last.transpose(*model.grid.names))
        ax.set_title("probability current at the final time")
        save(ax.figure, "current")
    if animation and ndim <= 2:
        suffix = "mp4" if animation == "mp4" else "gif"
        paths.append(animate(ds, out / f"{name}.{suffix}", energy=energy))
    return paths


def _marginal(da: xr.DataArray, attrs: Any) -> xr.DataArray:
    """Integrate a density over all but its first two space dims (cell widths)."""
    dims = _space_dims(da)
    for d in dims[2:]:
        edges = attrs.get(f"grid_edges_{d}")
        widths = np.diff(np.asarray(edges)) if edges is not None else np.gradient(da[d].values)
        da = (da * xr.DataArray(widths, dims=d)).sum(d)
    return da.rename("marginal density")


@xr.register_dataset_accessor("fp")
class FPAccessor:
    """``ds.fp``: fpsolver's plots on a result Dataset.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import numpy as np, xarray as xr
    >>> import fpsolver.plotting
    >>> t = np.linspace(0, 1, 3)
    >>> ds = xr.Dataset({"p": (("time", "x"), np.ones((3, 4))),
    ...                  "relative_entropy": ("time", np.exp(-t))},
    ...                 coords={"time": t, "x": np.arange(4.0)})
    >>> len(ds.fp.plot_density().lines)
    3
    >>> ds.fp.plot_relative_entropy().get_yscale()
    'log'
    >>> matplotlib.pyplot.close("all")
    """

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    def plot_density(self, **kw: Any):
        """:func:`plot_density` of this Dataset."""
        return plot_density(self._ds, **kw)

    def plot_snapshots(self, **kw: Any):
        """:func:`plot_snapshots` of this Dataset."""
        return plot_snapshots(self._ds, **kw)

    def plot_free_energy(self, **kw: Any):
        """:func:`plot_free_energy` of this Dataset."""
        return plot_free_energy(self._ds, **kw)

    def plot_relative_entropy(self, **kw: Any):
        """:func:`plot_relative_entropy` of this Dataset."""
        return plot_relative_entropy(self._ds, **kw)

    def plot_survival(self, **kw: Any):
        """:func:`plot_survival` of this Dataset."""
        return plot_survival(self._ds, **kw)

    def plot_comparison(self, parts: xr.Dataset, **kw: Any):
        """:func:`plot_comparison` of this grid result against `parts`."""
        return plot_comparison(self._ds, parts, **kw)

    def plot_spectrum(self, **kw: Any):
        """:func:`plot_spectrum` of this spectrum Dataset."""
        return plot_spectrum(self._ds, **kw)

    def plot_modes(self, **kw: Any):
        """:func:`plot_modes` of this spectrum Dataset."""
        return plot_modes(self._ds, **kw)

    def animate(self, path: str | Path, **kw: Any) -> Path:
        """:func:`animate` this Dataset's density to `path`."""
        return animate(self._ds, path, **kw)
