"""Run configurations in TOML: parse, validate, build the objects.

A config describes one run of ``fpsolver run``: the grid, the model, the
initial density, the time stepping, an optional particle cross-check and
what to write. Fields (energy, mobility, force, initial density) are math
expressions in the axis names, evaluated by :mod:`fpsolver.cli.expr` — never by
``eval``. Every problem is reported as a :class:`ConfigError` whose message
starts with the dotted key, e.g. ``model.temperature: must be positive, got -1``.

Schema (all sections but ``[grid]`` and ``[model]`` are optional)::

    title = "double well"            # used in figure titles
    allow_python = false             # allow "package.module:function" fields

    [constants]                      # named numbers usable in expressions
    a = 1.0

    [grid]                           # one key per axis, in order
    x = [-2.5, 2.5, 128]             # [lower, upper, cells] ...
    y = { edges = [0, 0.5, 1.5, 3] } # ... or explicit edges
    periodic = []                    # names of periodic axes

    [model]
    energy = "(x**2 - 1)**2 + 0.5*y**2"   # expression, number or reference
    temperature = 0.5
    mobility = 1.0                   # number, expression, or one per axis
    force = ["0", "0.5"]             # optional; one number/expression per axis
    boundary = "reflecting"          # or { x = "absorbing", y = ["absorbing", "reflecting"] }

    [initial]
    type = "gaussian"                # gaussian | expression | uniform | equilibrium
    mean = [-1, 0]
    cov = 0.04                       # number, one per axis, or a matrix
    # expression = "exp(-x**2)"      # for type = "expression"

    [solve]
    method = "bdf2"
    dt = 0.01
    t_end = 5.0                      # or "equilibrium" when the solver supports it
    save_every = 0.1

    [particles]                      # optional cross-check with the SDE
    n = 100000
    dt = 1e-3
    seed = 0

    [output]
    figures = true
    animation = false                # false, "gif" or "mp4"
    dpi = 100
    name = "result"                  # file stem of the outputs
"""

from __future__ import annotations

import difflib
import inspect
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .expr import Expression, ExpressionError, is_reference, resolve_reference

if sys.version_info >= (3, 11):  # pragma: no cover - version dependent
    import tomllib
else:  # pragma: no cover - version dependent
    import tomli as tomllib

__all__ = ["ConfigError", "RunConfig", "load_config", "parse_config"]

SECTIONS = ("grid", "model", "initial", "solve", "particles", "output", "constants")
TOP_LEVEL = ("title", "allow_python", *SECTIONS)
INITIAL_TYPES = ("gaussian", "expression", "uniform", "equilibrium")
ANIMATION_FORMATS = ("gif", "mp4")


class ConfigError(ValueError):
    """A config is malformed; the message starts with the offending key."""


@dataclass
class RunConfig:
    """A validated run: the objects ``fpsolver run`` needs.

    Attributes
    ----------
    title : str
    grid : Grid
    model : FokkerPlanck
    p0 : ndarray
        Initial density on the cells, Σ V p0 = 1.
    solve : dict
        Keyword arguments for :meth:`FokkerPlanck.solve` (``t_end`` included).
    particles : dict or None
        Keyword arguments for :func:`fpsolver.simulate_particles`, or None.
    output : dict
        ``figures`` (bool), ``animation`` (False, "gif" or "mp4"), ``dpi``,
        ``name``.
    raw : dict
        The parsed TOML.
    source : Path or None
    """

    title: str
    grid: Any
    model: Any
    p0: np.ndarray
    solve: dict[str, Any]
    particles: dict[str, Any] | None
    output: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)
    source: Path | None = None


def load_config(path: str | Path, allow_python: bool = False) -> RunConfig:
    """Read and validate a TOML run config.

    Parameters
    ----------
    path : str or Path
        The ``.toml`` file.
    allow_python : bool
        Allow ``"package.module:function"`` references even when the config
        does not set ``allow_python = true`` itself.

    Returns
    -------
    RunConfig

    Raises
    ------
    ConfigError
        With the offending key and the reason.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> text = '''
    ... [grid]
    ... x = [-3, 3, 60]
    ... [model]
    ... energy = "x**2/2"
    ... temperature = 1.0
    ... [initial]
    ... type = "gaussian"
    ... mean = 1.0
    ... cov = 0.25
    ... [solve]
    ... t_end = 1.0
    ... '''
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = pathlib.Path(d) / "ou.toml"
    ...     _ = path.write_text(text)
    ...     cfg = load_config(path)
    >>> cfg.grid.shape, cfg.model.temperature, cfg.solve["t_end"]
    ((60,), 1.0, 1.0)
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config: {err.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the config is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return parse_config(data, allow_python=allow_python, source=path)


def parse_config(
    data: Mapping[str, Any], allow_python: bool = False, source: Path | None = None
) -> RunConfig:
    """Validate a parsed config (a dict as read from TOML) and build the run.

    Examples
    --------
    >>> cfg = parse_config({"grid": {"x": [-3, 3, 40]},
    ...                     "model": {"energy": "x**2/2", "temperatur": 1.0}})
    Traceback (most recent call last):
    ...
    fpsolver.cli.config.ConfigError: model.temperatur: unknown key (did you mean ...
    """
    top = _Table(data, "")
    top.check_keys(TOP_LEVEL)
    title = top.get_str("title", default=source.stem if source else "fpsolver run")
    allow = top.get_bool("allow_python", default=False) or allow_python
    constants = _constants(top.table("constants", required=False))
    grid = _grid(top.table("grid"))
    ctx = _Context(grid.names, constants, allow)
    model = _model(top.table("model"), grid, ctx)
    p0 = _initial(top.table("initial", required=False), model, ctx)
    solve = _solve(top.table("solve", required=False))
    particles = _particles(top.table("particles", required=False), solve)
    output = _output(top.table("output", required=False))
    return RunConfig(title, grid, model, p0, solve, particles, output, dict(data), source)


# -- helpers -------------------------------------------------------------
def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


class _Table:
    """A config table with its dotted path, for key-naming errors."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path or 'config'}: must be a table, got {_type_name(data)}")
        self.data = data
        self.path = path

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, reason: str) -> ConfigError:
        return ConfigError(f"{self.key(name)}: {reason}")

    def check_keys(self, valid: tuple[str, ...] | list[str]) -> None:
        for k in self.data:
            if k not in valid:
                close = difflib.get_close_matches(str(k), list(valid), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.error(str(k), f"unknown key{hint}; valid keys: {', '.join(valid)}")

    def has(self, name: str) -> bool:
        return name in self.data

    def table(self, name: str, required: bool = True) -> _Table | None:
        if name not in self.data:
            if required:
                raise self.error(name, "missing; this section is required")
            return None
        return _Table(self.data[name], self.key(name))

    def raw(self, name: str, default: Any = None, required: bool = False) -> Any:
        if name not in self.data:
            if required:
                raise self.error(name, "missing; this key is required")
            return default
        return self.data[name]

    def get_str(self, name: str, default: Any = None, choices: tuple[str, ...] = ()) -> Any:
        value = self.raw(name, default, required=default is None)
        if not isinstance(value, str):
            raise self.error(name, f"must be a string, got {_type_name(value)} {value!r}")
        if choices and value not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def get_bool(self, name: str, default: bool) -> bool:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, got {value!r}")
        return value

    def number(self, name: str, value: Any, positive: bool = False, integer: bool = False):
        return _number(self.key(name), value, positive=positive, integer=integer)

    def get_number(
        self, name: str, default: Any = None, positive: bool = False, integer: bool = False
    ):
        value = self.raw(name, default, required=default is None)
        return self.number(name, value, positive=positive, integer=integer)


def _number(key: str, value: Any, positive: bool = False, integer: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{key}: must be {kind}, got {_type_name(value)} {value!r}")
    if integer and not isinstance(value, int):
        raise ConfigError(f"{key}: must be an integer, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{key}: must be finite, got {value!r}")
    if positive and not value > 0:
        raise ConfigError(f"{key}: must be positive, got {value!r}")
    return int(value) if integer else float(value)


@dataclass
class _Context:
    names: tuple[str, ...]
    constants: dict[str, float]
    allow_python: bool


def _field(key: str, value: Any, ctx: _Context) -> float | Callable[..., Any]:
    """A scalar field: a number, an expression or (opt-in) a Python reference."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _number(key, value)
    if not isinstance(value, str):
        raise ConfigError(
            f"{key}: must be a number or an expression string, got {_type_name(value)} {value!r}"
        )
    try:
        if is_reference(value):
            return resolve_reference(value, ctx.allow_python, name=key)
        expr = Expression(value, ctx.names, ctx.constants, name=key)
    except ExpressionError as err:
        raise ConfigError(str(err)) from None
    if expr.is_constant:
        result = float(expr())
        if not math.isfinite(result):
            raise ConfigError(f"{key}: {value!r} evaluates to {result}; must be finite")
        return result
    return expr


def _components(key: str, value: Any, ctx: _Context) -> list[float | Callable[..., Any]]:
    n = len(ctx.names)
    if not isinstance(value, list) or len(value) != n:
        raise ConfigError(
            f"{key}: must be a list with one entry per axis ({', '.join(ctx.names)}), got {value!r}"
        )
    return [_field(f"{key}[{i}]", v, ctx) for i, v in enumerate(value)]


def _vector_callable(comps: list[float | Callable[..., Any]], names: tuple[str, ...]):
    """One callable returning a list of component arrays (numbers broadcast)."""

    def field_(*points: np.ndarray, **named: np.ndarray) -> list[np.ndarray]:
        if named:
            points = tuple(named[n] for n in names)
        shape = np.broadcast_shapes(*(np.shape(p) for p in points))
        out = []
        for c in comps:
            if callable(c):
                out.append(np.broadcast_to(np.asarray(c(*points), dtype=float), shape))
            else:
                out.append(np.full(shape, c))
        return out

    return field_


# -- sections ------------------------------------------------------------
def _constants(table: _Table | None) -> dict[str, float]:
    if table is None:
        return {}
    out = {}
    for k, v in table.data.items():
        if not str(k).isidentifier() or str(k).startswith("_"):
            raise table.error(str(k), "constant names must be identifiers not starting with '_'")
        out[str(k)] = table.number(str(k), v)
    return out


def _grid(table: _Table):
    from ..core.grid import Grid

    periodic = table.raw("periodic", [])
    if isinstance(periodic, str):
        periodic = [periodic]
    if not isinstance(periodic, list) or not all(isinstance(p, str) for p in periodic):
        raise table.error("periodic", f"must be a list of axis names, got {periodic!r}")
    axes: dict[str, Any] = {}
    for name, spec in table.data.items():
        if name == "periodic":
            continue
        key = table.key(name)
        if not str(name).isidentifier() or name in ("time",) or name.startswith("_"):
            raise ConfigError(f"{key}: axis names must be identifiers (not 'time' or '_…')")
        if isinstance(spec, list):
            if len(spec) != 3:
                raise ConfigError(
                    f"{key}: must be [lower, upper, cells] or {{ edges = [...] }}, got {spec!r}"
                )
            lo = _number(f"{key}[0]", spec[0])
            hi = _number(f"{key}[1]", spec[1])
            cells = _number(f"{key}[2]", spec[2], integer=True)
            if cells < 2:
                raise ConfigError(f"{key}[2]: needs at least 2 cells, got {cells}")
            if not hi > lo:
                raise ConfigError(f"{key}: needs lower < upper, got [{lo:g}, {hi:g}]")
            axes[name] = (lo, hi, cells)
        elif isinstance(spec, Mapping):
            sub = _Table(spec, key)
            sub.check_keys(("edges",))
            edges = sub.raw("edges", required=True)
            if not isinstance(edges, list) or len(edges) < 3:
                raise sub.error("edges", f"must be a list of at least 3 edges, got {edges!r}")
            values = [_number(f"{key}.edges[{i}]", e) for i, e in enumerate(edges)]
            if not all(b > a for a, b in zip(values, values[1:])):
                raise sub.error("edges", "must be strictly increasing")
            axes[name] = np.array(values)
        else:
            raise ConfigError(
                f"{key}: must be [lower, upper, cells] or {{ edges = [...] }}, "
                f"got {_type_name(spec)} {spec!r}"
            )
    if not axes:
        raise ConfigError(f"{table.path}: no axes; add e.g. x = [-2, 2, 100]")
    unknown = [p for p in periodic if p not in axes]
    if unknown:
        raise table.error("periodic", f"names unknown axes {unknown}; the axes are {list(axes)}")
    try:
        return Grid(periodic=tuple(periodic), **axes)
    except ValueError as err:
        raise ConfigError(f"{table.path}: {err}") from None


MODEL_KEYS = ("energy", "temperature", "mobility", "force", "boundary")


def _model(table: _Table, grid, ctx: _Context):
    from ..api.fokker_planck import FokkerPlanck

    table.check_keys(MODEL_KEYS)
    energy = _field(table.key("energy"), table.raw("energy", 0.0), ctx)
    temperature = table.get_number("temperature", positive=True)
    mob = table.raw("mobility", 1.0)
    if isinstance(mob, list):
        comps = _components(table.key("mobility"), mob, ctx)
        if all(not callable(c) for c in comps):
            for i, c in enumerate(comps):
                if not c > 0:
                    raise table.error(f"mobility[{i}]", f"must be positive, got {c!r}")
            mobility: Any = [float(c) for c in comps]
        else:
            mobility = _vector_callable(comps, grid.names)
    else:
        mobility = _field(table.key("mobility"), mob, ctx)
        if not callable(mobility) and not mobility > 0:
            raise table.error("mobility", f"must be positive, got {mob!r}")
    force: Any = None
    if table.has("force"):
        value = table.raw("force")
        if isinstance(value, str) and is_reference(value):
            force = _field(table.key("force"), value, ctx)
        else:
            comps = _components(table.key("force"), value, ctx)
            if all(not callable(c) for c in comps):
                force = [float(c) for c in comps]
            else:
                force = _vector_callable(comps, grid.names)
    boundary = _boundary(table, grid)
    for name, f in (("energy", energy), ("mobility", mobility)):
        if isinstance(f, Expression):
            _check_finite(table.key(name), f, grid)
    try:
        return FokkerPlanck(
            grid,
            energy=energy,
            temperature=temperature,
            mobility=mobility,
            force=force,
            boundary=boundary,
        )
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{table.path}: {err}") from None


def _check_finite(key: str, f: Expression, grid) -> None:
    values = f(*grid.mesh())
    bad = ~np.isfinite(values)
    if np.any(bad):
        idx = np.argwhere(np.broadcast_to(bad, grid.shape))[0]
        where = ", ".join(f"{n}={c[i]:.4g}" for n, c, i in zip(grid.names, grid.centers, idx))
        raise ConfigError(f"{key}: {f.text!r} is not finite on the grid (at {where})")


def _boundary(table: _Table, grid) -> Any:
    from ..core.boundary import BOUNDARY_KINDS, parse_boundary

    value = table.raw("boundary", "reflecting")
    key = table.key("boundary")
    if isinstance(value, str):
        if value not in BOUNDARY_KINDS:
            raise ConfigError(f"{key}: must be one of {', '.join(BOUNDARY_KINDS)}; got {value!r}")
        spec: Any = value
    elif isinstance(value, Mapping):
        sub = _Table(value, key)
        sub.check_keys(grid.names)
        spec = {}
        for axis, kind in value.items():
            kinds = kind if isinstance(kind, list) else [kind]
            if len(kinds) not in (1, 2) or not all(k in BOUNDARY_KINDS for k in kinds):
                raise sub.error(
                    axis,
                    f"must be one of {', '.join(BOUNDARY_KINDS)} or a [lower, upper] pair; "
                    f"got {kind!r}",
                )
            spec[axis] = tuple(kinds) if len(kinds) == 2 else kinds[0]
    else:
        raise ConfigError(
            f"{key}: must be a string or a table {{ axis = kind or [lower, upper] }}, "
            f"got {_type_name(value)}"
        )
    try:
        return parse_boundary(grid, spec)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{key}: {err}") from None


def _initial(table: _Table | None, model, ctx: _Context) -> np.ndarray:
    from ..core.initial import density_array, gaussian

    grid = model.grid
    if table is None:
        raise ConfigError('initial: missing; add e.g. [initial] type = "gaussian", mean, cov')
    kind = table.get_str("type", default="gaussian", choices=INITIAL_TYPES)
    if kind == "gaussian":
        table.check_keys(("type", "mean", "cov"))
        mean = table.raw("mean", required=True)
        mean_l = mean if isinstance(mean, list) else [mean]
        if len(mean_l) != grid.ndim:
            raise table.error("mean", f"needs {grid.ndim} value(s) (one per axis), got {mean!r}")
        mean_v = [_number(f"{table.key('mean')}[{i}]", m) for i, m in enumerate(mean_l)]
        cov = table.raw("cov", required=True)
        cov_v = _covariance(table.key("cov"), cov, grid.ndim)
        try:
            p0 = gaussian(grid, mean_v, cov_v).values
        except ValueError as err:
            raise ConfigError(f"{table.path}: {err}") from None
        return np.asarray(p0)
    if kind == "uniform":
        table.check_keys(("type",))
        return np.full(grid.shape, 1.0 / float(grid.volumes.sum()))
    if kind == "equilibrium":
        table.check_keys(("type",))
        return np.exp(model.log_equilibrium())
    table.check_keys(("type", "expression"))
    text = table.raw("expression", required=True)
    f = _field(table.key("expression"), text, ctx)
    values = f(*grid.mesh()) if callable(f) else f
    values = np.broadcast_to(np.asarray(values, dtype=float), grid.shape)
    if not np.all(np.isfinite(values)):
        raise table.error("expression", "is not finite everywhere on the grid")
    if np.any(values < 0):
        raise table.error("expression", f"must be non-negative; its minimum is {values.min():g}")
    total = float(np.sum(values * grid.volumes))
    if not total > 0:
        raise table.error("expression", "has zero mass on the grid")
    return density_array(grid, values / total, name=table.key("expression"))


def _covariance(key: str, cov: Any, ndim: int) -> Any:
    if isinstance(cov, list) and cov and all(isinstance(r, list) for r in cov):
        if len(cov) != ndim or any(len(r) != ndim for r in cov):
            raise ConfigError(f"{key}: a matrix must be {ndim}×{ndim}, got {cov!r}")
        mat = np.array(
            [[_number(f"{key}[{i}][{j}]", v) for j, v in enumerate(r)] for i, r in enumerate(cov)]
        )
        if not np.allclose(mat, mat.T) or np.any(np.linalg.eigvalsh(mat) <= 0):
            raise ConfigError(f"{key}: must be symmetric positive definite, got {cov!r}")
        return mat
    if isinstance(cov, list):
        if len(cov) != ndim:
            raise ConfigError(f"{key}: needs {ndim} variance(s) (one per axis), got {cov!r}")
        return [_number(f"{key}[{i}]", v, positive=True) for i, v in enumerate(cov)]
    return _number(key, cov, positive=True)


def _signature_keys(f: Callable[..., Any]) -> tuple[str, ...]:
    """Keyword names of the function `f`."""
    params = inspect.signature(f).parameters.values()
    return tuple(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


SOLVE_KEYS = ("method", "dt", "t_end", "save_every")


def _solve(table: _Table | None) -> dict[str, Any]:
    data = table if table is not None else _Table({}, "solve")
    from ..api.runs import solve

    sig = _signature_keys(solve)
    extra = tuple(k for k in sig if k not in ("model", "p0", *SOLVE_KEYS))
    extra = tuple(k for k in extra if k not in ("progress", "callback", "trackers"))
    data.check_keys(SOLVE_KEYS + extra)
    out: dict[str, Any] = {}
    t_end = data.raw("t_end", required=True)
    if isinstance(t_end, str):
        if t_end != "equilibrium":
            raise data.error("t_end", f'must be a positive number or "equilibrium", got {t_end!r}')
        out["t_end"] = t_end
    else:
        out["t_end"] = data.number("t_end", t_end, positive=True)
    if data.has("method"):
        out["method"] = data.get_str("method")
        _check_method(data, out["method"])
    for k in ("dt", "save_every"):
        if data.has(k):
            out[k] = data.get_number(k, positive=True)
    if isinstance(out["t_end"], float):
        for k in ("dt", "save_every"):
            if k in out and out[k] > out["t_end"]:
                raise data.error(k, f"must not exceed t_end = {out['t_end']:g}, got {out[k]:g}")
    for k in extra:
        if data.has(k):
            v = data.raw(k)
            if isinstance(v, Mapping):
                raise data.error(k, "must be a number, string, boolean or list, not a table")
            if isinstance(v, float) and not math.isfinite(v):
                raise data.error(k, f"must be finite, got {v!r}")
            out[k] = v
    return out


def _check_method(table: _Table, method: str) -> None:
    from ..integrate.steppers import METHODS

    if method not in METHODS:
        raise table.error("method", f"unknown method {method!r}; valid: {', '.join(METHODS)}")


PARTICLE_KEYS = ("n", "dt", "seed", "save_every")


def _particles(table: _Table | None, solve: dict[str, Any]) -> dict[str, Any] | None:
    if table is None:
        return None
    from ..sampling.particles import simulate_particles

    sig = _signature_keys(simulate_particles)
    extra = tuple(k for k in sig if k not in ("model", "p0", "t_end", *PARTICLE_KEYS, "progress"))
    table.check_keys(PARTICLE_KEYS + extra)
    out: dict[str, Any] = {"n": table.get_number("n", integer=True, positive=True)}
    out["dt"] = table.get_number("dt", positive=True)
    if table.has("seed"):
        seed = table.get_number("seed", integer=True)
        if seed < 0:
            raise table.error("seed", f"must be a non-negative integer, got {seed}")
        out["seed"] = seed
    if table.has("save_every"):
        out["save_every"] = table.get_number("save_every", positive=True)
    elif "save_every" in solve:
        out["save_every"] = solve["save_every"]
    t_end = solve.get("t_end")
    if not isinstance(t_end, float):
        raise ConfigError(f"particles: a particle check needs a numeric solve.t_end, got {t_end!r}")
    if out["dt"] > t_end:
        raise table.error("dt", f"must not exceed solve.t_end = {t_end:g}, got {out['dt']:g}")
    for k in extra:
        if table.has(k):
            out[k] = table.raw(k)
    return out


def _output(table: _Table | None) -> dict[str, Any]:
    data = table if table is not None else _Table({}, "output")
    data.check_keys(("figures", "animation", "dpi", "name"))
    anim = data.raw("animation", False)
    if anim is True:
        anim = "gif"
    if anim is not False and anim not in ANIMATION_FORMATS:
        raise data.error("animation", f'must be false, "gif" or "mp4"; got {anim!r}')
    name = data.get_str("name", default="result")
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise data.error("name", f"must be a plain file stem, got {name!r}")
    dpi = data.get_number("dpi", default=100, integer=True, positive=True)
    return {"figures": data.get_bool("figures", True), "animation": anim, "dpi": dpi, "name": name}
