"""``fpsolver sweep CONFIG.toml``: a run config swept over parameter values.

A sweep config is a run config (:mod:`fpsolver.cli.config`) with a
``[sweep]`` table: what to compute at every point, and the values of the
swept parameters, each a constant of ``[constants]`` or ``temperature`` /
``mobility`` of ``[model]``::

    [sweep]
    compute = "spectrum"      # spectrum | stationary | solve
    modes = 2                 # rates to compute (spectrum)
    plot = "relaxation_rate"  # optional: the variable to draw
    temperature = { start = 0.2, stop = 1.0, num = 17 }   # or log = true
    barrier = [1.0, 1.5, 2.0]                              # a constant

The points are the cartesian product of the values. Each is the config
with the point's values put in, parsed and checked like any run config,
and computed by :func:`fpsolver.sweep`: in this process, on a LocalCluster
(``--local``) or on a Dask scheduler (``--scheduler tcp://host:8786``).
The output folder gets ``<name>.nc`` (the sweep, written as points finish:
run the same command again to compute only what is missing or failed) and
a figure of the swept quantity: lines against the first parameter, one per
value of the others, and a heat map for two parameters. A progress bar
shows on a terminal.

What each point records:

``spectrum``
    ``rate`` (the real parts, and ``rate_imag`` when complex) of the
    ``modes`` slowest modes and ``relaxation_rate``, the slowest non-zero
    one (λ₁; λ₀ with an absorbing wall).
``stationary``
    ``p_ss``, ``mean_energy`` and, per axis, ``current_<axis>``: the flux
    through a cross-section (per unit length of the other axes), averaged
    along the axis.
``solve``
    The run of ``[initial]`` and ``[solve]``: its diagnostics over time
    (``free_energy``, ``relative_entropy``, ``mass``, ...), not the density.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import itertools
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..api.cluster import CONNECT_TIMEOUT
from .config import ConfigError, RunConfig, parse_config, read_toml

__all__ = [
    "COMPUTE",
    "ConfigPoint",
    "SweepFailure",
    "SweepInterrupted",
    "add_parser",
    "is_sweep_config",
    "run_sweep",
    "sweep_plan",
]

#: What a sweep config can compute at every point.
COMPUTE = ("spectrum", "stationary", "solve")
#: Keys of ``[sweep]`` that are options, not parameters.
OPTIONS = ("compute", "modes", "plot")
#: Keys of ``[model]`` that can be swept (when they are numbers).
MODEL_PARAMETERS = ("temperature", "mobility")
#: Most points a sweep config may ask for.
MAX_POINTS = 10_000


class SweepFailure(Exception):
    """Some points failed (exit status 1); the others are saved."""


class SweepInterrupted(Exception):
    """Ctrl-C during a sweep (exit status 130); the finished points are saved."""


# --------------------------------------------------------------------------
# the command line
def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand to the subparsers `sub`."""
    parser = sub.add_parser(
        "sweep",
        help="run a config over a grid of parameter values (its [sweep] table)",
        description="Compute the [sweep] of CONFIG.toml at every point of its parameter "
        "grid; write <name>.nc (resumable: run again to compute only missing or failed "
        "points) and a figure of the swept quantity.",
    )
    parser.add_argument("config", type=Path, help="the TOML config with a [sweep] table")
    parser.add_argument("-o", "--outdir", type=Path, default=Path("results"), help="output folder")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler", default=None, metavar="ADDRESS", help="a Dask scheduler, tcp://host:8786"
    )
    where.add_argument(
        "--local", action="store_true", help="a Dask LocalCluster, one process per core"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=CONNECT_TIMEOUT,
        help=f"seconds to wait for the scheduler (default {CONNECT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--allow-python",
        action="store_true",
        help="allow 'package.module:function' references in the config (runs Python code)",
    )
    parser.add_argument("--no-figures", action="store_true", help="skip the figures")
    return parser


def is_sweep_config(path: Path) -> bool:
    """Whether the config at `path` has a ``[sweep]`` table (False when unreadable).

    Examples
    --------
    >>> is_sweep_config(Path("no/such/config.toml"))
    False
    """
    try:
        return "sweep" in read_toml(path)
    except ConfigError:
        return False  # the run command reports it


# --------------------------------------------------------------------------
# one point
@dataclass(frozen=True)
class ConfigPoint:
    """A config with its swept values left open: call it with them to compute a point.

    Picklable (plain data), so Dask workers can run it.
    """

    raw: dict[str, Any]  # the TOML document without [sweep]
    targets: dict[str, str]  # parameter -> its section, "constants" or "model"
    compute: str
    modes: int = 2
    allow_python: bool = False

    def config(self, **values: Any) -> RunConfig:
        """The run config with `values` put in (parsed and checked)."""
        data = copy.deepcopy(self.raw)
        for name, value in values.items():
            data.setdefault(self.targets[name], {})[name] = value
        return parse_config(data, allow_python=self.allow_python)

    def __call__(self, **values: Any) -> Any:
        cfg = self.config(**values)
        return {"spectrum": _spectrum, "stationary": _stationary, "solve": _solve}[self.compute](
            cfg, self.modes
        )


def _spectrum(cfg: RunConfig, modes: int) -> Any:
    import xarray as xr

    spec = cfg.model.spectrum(modes)
    rate = spec["rate"].values
    out = xr.Dataset(coords={"k": spec["k"].values})
    out["rate"] = ("k", np.real(rate), {"long_name": "relaxation rate (real part)"})
    if np.iscomplexobj(rate):
        out["rate_imag"] = ("k", np.imag(rate), {"long_name": "relaxation rate (imaginary part)"})
    tau = spec.attrs["relaxation_time"]
    out["relaxation_rate"] = ((), 1.0 / tau if np.isfinite(tau) else np.nan)
    out["relaxation_rate"].attrs["long_name"] = "slowest non-zero relaxation rate"
    return out


def _stationary(cfg: RunConfig, modes: int) -> Any:
    import xarray as xr

    model, grid = cfg.model, cfg.model.grid
    p = model.stationary()
    out = xr.Dataset({"p_ss": p})
    weights = grid.volumes * np.asarray(p)
    out["mean_energy"] = ((), float(np.sum(weights * np.asarray(model.energy))))
    currents = model.current(p)
    for name in grid.names:
        j = currents[f"J_{name}"]
        others = [n for n in grid.names if n != name]
        area = np.ones(())
        for n in others:
            area = area * xr.DataArray(grid.widths[grid.axis(n)], dims=n)
        flux = (j * area).sum(others) if others else j
        out[f"current_{name}"] = ((), float(flux.mean()))
        out[f"current_{name}"].attrs["long_name"] = f"flux through a cross-section of {name}"
    return out


def _solve(cfg: RunConfig, modes: int) -> Any:
    ds = cfg.model.solve(cfg.p0, progress=False, **cfg.solve)
    keep = ds[[v for v in ds.data_vars if set(ds[v].dims) <= {"time"}]]
    return keep.drop_vars([c for c in keep.coords if c != "time"])


# --------------------------------------------------------------------------
# reading the [sweep] table
@dataclass
class SweepPlan:
    """A checked sweep config: what to call, over which values, and what to draw."""

    point: ConfigPoint
    parameters: dict[str, list[Any]]
    base: RunConfig
    plot: str
    log_axes: set[str] = field(default_factory=set)


def _values(key: str, spec: Any) -> tuple[list[float], bool]:
    """The values of one swept parameter, and whether they are log-spaced."""
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"{key}: needs at least one value")
        values = [_number(f"{key}[{i}]", v) for i, v in enumerate(spec)]
        if len(set(values)) != len(values):
            raise ConfigError(f"{key}: values must not repeat, got {spec!r}")
        return values, False
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - {"start", "stop", "num", "log"})
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]}: unknown key; valid keys: start, stop, num, log")
        missing = [k for k in ("start", "stop", "num") if k not in spec]
        if missing:
            raise ConfigError(f"{key}.{missing[0]}: missing; a range needs start, stop and num")
        start, stop = _number(f"{key}.start", spec["start"]), _number(f"{key}.stop", spec["stop"])
        num = spec["num"]
        if isinstance(num, bool) or not isinstance(num, int) or not 1 <= num <= MAX_POINTS:
            raise ConfigError(f"{key}.num: must be an integer from 1 to {MAX_POINTS}, got {num!r}")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise ConfigError(f"{key}.log: must be true or false, got {log!r}")
        if num > 1 and start == stop:
            raise ConfigError(f"{key}: start = stop = {start:g} with num = {num}: values repeat")
        if log and not (start > 0 and stop > 0):
            raise ConfigError(f"{key}: a log range needs start, stop > 0, got {start:g}, {stop:g}")
        grid = np.geomspace(start, stop, num) if log else np.linspace(start, stop, num)
        return [float(v) for v in grid], log
    raise ConfigError(f"{key}: must be a list of numbers or {{ start, stop, num }}, got {spec!r}")


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number, got {value!r}")
    return float(value)


def _target(key: str, name: str, data: dict[str, Any]) -> str:
    """Where a swept parameter goes: a constant, or a number of [model]."""
    constants = data.get("constants", {})
    model = data.get("model", {})
    if isinstance(constants, dict) and name in constants:
        return "constants"
    if name in MODEL_PARAMETERS and isinstance(model, dict):
        value = model.get(name, 1.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(
                f"{key}: model.{name} is {value!r}, not a number; sweep a constant of "
                "[constants] used in it instead"
            )
        return "model"
    known = [*(constants if isinstance(constants, dict) else {}), *MODEL_PARAMETERS]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(
        f"{key}: unknown parameter{hint}; a swept parameter is a constant of [constants] "
        f"(here: {', '.join(map(str, constants)) or 'none'}) or model.temperature or "
        "model.mobility; sweep options: " + ", ".join(OPTIONS)
    )


def _options(table: dict[str, Any]) -> tuple[str, int, str | None]:
    compute = table.get("compute")
    if compute not in COMPUTE:
        what = "missing" if compute is None else f"got {compute!r}"
        raise ConfigError(f"sweep.compute: {what}; must be one of {', '.join(COMPUTE)}")
    modes = table.get("modes", 2)
    if isinstance(modes, bool) or not isinstance(modes, int) or not 2 <= modes <= 50:
        raise ConfigError(f"sweep.modes: must be an integer from 2 to 50, got {modes!r}")
    if "modes" in table and compute != "spectrum":
        raise ConfigError(f'sweep.modes: only for compute = "spectrum", not {compute!r}')
    plot = table.get("plot")
    if plot is not None and not isinstance(plot, str):
        raise ConfigError(f"sweep.plot: must be a variable name (a string), got {plot!r}")
    return compute, modes, plot


def _check_sections(data: dict[str, Any], compute: str) -> None:
    if "particles" in data:
        raise ConfigError("particles: a sweep does not run the particle check; remove [particles]")
    solve = data.get("solve", {})
    if isinstance(solve, dict) and "checkpoint" in solve:
        raise ConfigError("solve.checkpoint: the points of a sweep cannot share a checkpoint")
    if compute == "solve" and "solve" not in data:
        raise ConfigError('solve: compute = "solve" needs a [solve] table (t_end, ...)')


def sweep_plan(data: dict[str, Any], *, allow_python: bool = False) -> SweepPlan:
    """Check a sweep config (a parsed TOML document) and plan its points.

    Every value of every parameter is put into the config (the others at
    their first value) and checked, so a bad value is refused before
    anything runs.

    Examples
    --------
    >>> plan = sweep_plan({"grid": {"x": [-2, 2, 40]},
    ...                    "model": {"energy": "x**2", "temperature": 1.0},
    ...                    "sweep": {"compute": "spectrum",
    ...                              "temperature": {"start": 0.5, "stop": 1.0, "num": 3}}})
    >>> plan.parameters, plan.plot
    ({'temperature': [0.5, 0.75, 1.0]}, 'relaxation_rate')
    """
    table = data.get("sweep")
    if not isinstance(table, dict):
        raise ConfigError(f"sweep: must be a table, got {table!r}")
    compute, modes, plot = _options(table)
    _check_sections(data, compute)
    raw = {k: v for k, v in data.items() if k != "sweep"}
    if compute != "solve":  # neither is used; a run config needs both
        raw.setdefault("initial", {"type": "uniform"})
        raw.setdefault("solve", {"t_end": 1.0})
    parameters, log_axes, targets = {}, set(), {}
    for name, spec in table.items():
        if name in OPTIONS:
            continue
        targets[name] = _target(f"sweep.{name}", name, raw)
        parameters[name], log = _values(f"sweep.{name}", spec)
        if log:
            log_axes.add(name)
    if not parameters:
        raise ConfigError("sweep: no parameter to sweep; add e.g. temperature = [0.5, 1.0]")
    count = math.prod(len(v) for v in parameters.values())
    if count > MAX_POINTS:
        raise ConfigError(f"sweep: {count} points; at most {MAX_POINTS}")
    point = ConfigPoint(raw, targets, compute, modes, bool(allow_python))
    first = {n: v[0] for n, v in parameters.items()}
    for name, values in parameters.items():
        for value in values:
            try:
                point.config(**{**first, name: value})
            except ConfigError as err:
                raise ConfigError(f"sweep.{name} = {value:g}: {err}") from None
    base = point.config(**first)
    return SweepPlan(point, parameters, base, plot or _default_plot(compute, base), log_axes)


def _default_plot(compute: str, base: RunConfig) -> str:
    if compute == "spectrum":
        return "relaxation_rate"
    if compute == "solve":
        return "free_energy"
    periodic = [n for n, p in zip(base.grid.names, base.grid.periodic) if p]
    return f"current_{periodic[0]}" if periodic else "mean_energy"


# --------------------------------------------------------------------------
# figures
def _scalar(ds: Any, name: str, dims: tuple[str, ...]) -> Any:
    """The variable `name` with one value per point (the last time), or None."""
    if name not in ds.data_vars:
        return None
    da = ds[name]
    if "time" in da.dims:
        da = da.isel(time=-1)
    return da if set(da.dims) <= set(dims) else None


def sweep_figures(ds: Any, out: Path, name: str, plan: SweepPlan, dpi: int = 100) -> list[Path]:
    """The swept quantity: lines against the first parameter; a heat map for two.

    Returns the paths written (none when the quantity is not one number per
    point).
    """
    import matplotlib.pyplot as plt

    dims = tuple(plan.parameters)
    da = _scalar(ds, plan.plot, dims)
    if da is None:
        return []
    da = da.transpose(*dims)
    x = dims[0]
    values = np.real(np.asarray(da.values, dtype=complex)).reshape(len(ds[x]), -1)
    positive = np.all(values[np.isfinite(values)] > 0) if np.isfinite(values).any() else False
    spread = np.nanmax(values) / np.nanmin(values) if positive else 1.0
    label = da.attrs.get("long_name", plan.plot)
    paths = []
    fig, ax = plt.subplots(figsize=(5.5, 4.0), layout="constrained")
    rest = [d for d in dims if d != x]
    combos = list(itertools.product(*(ds[d].values.tolist() for d in rest)))
    for j, combo in enumerate(combos[:12]):
        tag = ", ".join(f"{d} = {v:g}" for d, v in zip(rest, combo))
        ax.plot(ds[x].values, values[:, j], marker="o", ms=3, label=tag or None)
    if rest:
        ax.legend(fontsize="small")
    ax.set_xlabel(x)
    ax.set_ylabel(f"{plan.plot}\n({label})" if label != plan.plot else plan.plot)
    if x in plan.log_axes:
        ax.set_xscale("log")
    if spread > 100:
        ax.set_yscale("log")
    ax.set_title(f"{plan.base.title}: {plan.plot}")
    paths.append(out / f"{name}_{plan.plot}.png")
    fig.savefig(paths[-1], dpi=dpi)
    plt.close(fig)
    if len(dims) == 2:
        paths.append(_heat_map(da, out / f"{name}_{plan.plot}_map.png", plan, spread, dpi))
    return paths


def _heat_map(da: Any, path: Path, plan: SweepPlan, spread: float, dpi: int) -> Path:
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    x, y = da.dims
    fig, ax = plt.subplots(figsize=(5.5, 4.0), layout="constrained")
    values = np.real(np.asarray(da.values, dtype=complex)).T
    norm = LogNorm() if spread > 100 else None
    mesh = ax.pcolormesh(da[x].values, da[y].values, values, shading="nearest", norm=norm)
    fig.colorbar(mesh, ax=ax, label=plan.plot)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    for axis, setter in ((x, ax.set_xscale), (y, ax.set_yscale)):
        if axis in plan.log_axes:
            setter("log")
    ax.set_title(f"{plan.base.title}: {plan.plot}")
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------
# the command
def run_sweep(args: argparse.Namespace, out: Path) -> int:
    """Run the sweep of ``args.config`` into the folder `out`; print a summary; return 0.

    Raises ConfigError for bad input, SweepFailure when points failed (the
    others are saved), SweepInterrupted on Ctrl-C, ConnectionError when
    the scheduler does not answer.
    """
    from ..api.sweeps import sweep

    plan = sweep_plan(read_toml(args.config), allow_python=getattr(args, "allow_python", False))
    name = plan.base.output["name"]
    store = out / f"{name}.nc"
    for path in (store, out / f"{name}_{plan.plot}.png", out / f"{name}_{plan.plot}_map.png"):
        if path.is_dir():
            raise ConfigError(f"cannot write {str(path)!r}: it is a folder; remove it")
    start = time.perf_counter()
    client = "local" if getattr(args, "local", False) else None
    try:
        ds = sweep(
            plan.point,
            plan.parameters,
            client=client,
            scheduler=getattr(args, "scheduler", None),
            store=store,
            progress=sys.stderr.isatty(),  # a bar for people, not for logs
            timeout=getattr(args, "timeout", CONNECT_TIMEOUT),
        )
    except KeyboardInterrupt:
        raise SweepInterrupted(
            f"interrupted (Ctrl-C); the finished points are saved in {store}; run the same "
            "command again to compute the rest"
        ) from None
    except (ImportError, ValueError, RuntimeError) as err:
        raise ConfigError(str(err)) from None
    wall = time.perf_counter() - start
    paths = [store]
    if plan.base.output["figures"] and not getattr(args, "no_figures", False):
        import matplotlib

        matplotlib.use("Agg")
        paths += sweep_figures(ds, out, name, plan, dpi=plan.base.output["dpi"])
    _summary(plan, ds, wall, paths)
    failed = ds["status"].values[ds["status"].values != "ok"]
    if failed.size:
        raise SweepFailure(
            f"{failed.size} of {ds['status'].size} points failed (first: {failed.flat[0]}); "
            f"the others are saved in {store}; run the same command again to retry the failed "
            "points"
        )
    return 0


def _summary(plan: SweepPlan, ds: Any, wall: float, paths: list[Path]) -> None:
    status = ds["status"].values
    shape = " × ".join(f"{len(v)} {n}" for n, v in plan.parameters.items())
    lines = [f"{plan.base.title}: sweep of {plan.point.compute} over {shape}"]
    lines.append(f"  points ok                          {int(np.sum(status == 'ok'))}")
    lines.append(f"  points failed                      {int(np.sum(status != 'ok'))}")
    lines.append(f"  computed now (others were saved)   {ds.attrs.get('sweep_computed', 0)}")
    da = _scalar(ds, plan.plot, tuple(plan.parameters))
    if da is not None and np.isfinite(np.real(da.values)).any():
        values = np.real(da.values)
        lines.append(f"  {plan.plot:<34s} {np.nanmin(values):.6g} … {np.nanmax(values):.6g}")
    lines.append(f"  wall time                          {wall:.2f} s")
    lines.append("  outputs:")
    lines += [f"    {p}" for p in paths]
    print("\n".join(lines))
