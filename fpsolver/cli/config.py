"""Run configurations in TOML: parse, validate, build the objects.

A config describes one run of ``fpsolver run``: the grid, the model, the
initial density, the time stepping, an optional particle cross-check and
what to write. Fields (energy, mobility, force, initial density) are math
expressions in the axis names, evaluated by :mod:`fpsolver.cli.expr` — never by
``eval``. Every problem is reported as a :class:`ConfigError` whose message
starts with the dotted key, e.g. ``model.temperature: must be positive, got -1``.

Inputs that are wrong are refused, never repaired: unknown or misspelt keys
in every section (with a "did you mean" hint), values of the wrong TOML type
(``resume = "false"`` is a string, not a boolean), cell counts that are not
integers, axis names that clash with the variables of a result
(:data:`RESULT_NAMES`, the diagnostics) or with the names of the expression
language,
constants that redefine ``pi``, ``e``, ``tau`` or a function, output names
with control characters or path separators, and problems too large for the
memory of this machine (estimated up front, see :func:`memory_estimate`).

A field may name a Python function, ``"package.module:function"``, which is
then imported and called. Only the person running the config can allow that:
``fpsolver run --allow-python`` or ``load_config(path, allow_python=True)``.
A config cannot give that consent itself; a top-level ``allow_python`` key
is an error.

Schema (all sections but ``[grid]`` and ``[model]`` are optional)::

    title = "double well"            # used in figure titles

    [constants]                      # named numbers usable in expressions
    a = 1.0                          # (not pi, e, tau, a function or an axis name)

    [grid]                           # one key per axis, in order
    x = [-2.5, 2.5, 128]             # [lower, upper, cells] ...
    y = { edges = [0, 0.5, 1.5, 3] } # ... or explicit edges
    periodic = []                    # names of periodic axes
    # or a curved grid: kind = "polar" (r = [0, 3, 120], phi = 96),
    # "sphere" (n_theta = 48, n_phi = 96, radius = 1), "torus"
    # (theta = 64, phi = 64, major = 2, minor = 1); axes as in Grid.polar ...

    [model]
    energy = "(x**2 - 1)**2 + 0.5*y**2"   # expression, number or reference
    temperature = 0.5
    mobility = 1.0                   # number, expression, one per axis, or a
                                     # d × d tensor [["1", "0.5"], ["-0.5", "1"]]
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
    # any other keyword of fpsolver.solve, with the TOML type of its default:
    # save_at = [0.5, 1.0], rtol, atol, tol, t_max, linear_rtol (numbers),
    # max_steps (integer), linear_solver (string), resume (true/false),
    # checkpoint = "run.ckpt.nc"     # a plain file name, in the output folder

    [particles]                      # optional cross-check with the SDE
    n = 100000
    dt = 1e-3
    seed = 0
    # also save_every, save_at, batch_size, workers (see simulate_particles)

    [output]
    figures = true
    animation = false                # false, "gif" or "mp4"
    dpi = 100                        # at most MAX_DPI
    name = "result"                  # file stem of the outputs: no "/", "\\",
                                     # control characters or leading "."
"""

from __future__ import annotations

import difflib
import inspect
import keyword
import math
import sys
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.memory import available_memory
from .expr import (
    FUNCTIONS,
    PREDEFINED,
    Expression,
    ExpressionError,
    check_constant_name,
    is_reference,
    resolve_reference,
    time_field,
)

if sys.version_info >= (3, 11):  # pragma: no cover - version dependent
    import tomllib
else:  # pragma: no cover - version dependent
    import tomli as tomllib

__all__ = [
    "ConfigError",
    "RunConfig",
    "available_memory",
    "check_memory",
    "figure_memory",
    "load_config",
    "memory_estimate",
    "parse_config",
    "read_toml",
]

SECTIONS = ("grid", "model", "initial", "solve", "particles", "output", "constants")
TOP_LEVEL = ("title", *SECTIONS)
INITIAL_TYPES = ("gaussian", "expression", "uniform", "equilibrium")
ANIMATION_FORMATS = ("gif", "mp4")

#: Names of the variables, coordinates and dimensions of solve and particle
#: results (and the diagnostics of :data:`fpsolver.integrate.trackers.DIAGNOSTICS`,
#: added in :func:`_reserved_names`): an axis may not be called so.
RESULT_NAMES = (
    "p", "energy", "time", "axis", "axis2", "mass", "mean", "covariance", "free_energy",
    "density", "survival", "count", "exit", "exit_time", "exit_wall", "free_energy_se",
    "occupied_cells", "entropy", "mean_energy",
)  # fmt: skip
#: Largest accepted figure resolution (dots per inch).
MAX_DPI = 2000
#: Longest accepted output name or checkpoint file name, in UTF-8 bytes.
MAX_NAME_BYTES = 200

_CONSENT = (
    "a config cannot give consent to run Python code; consent is given on the command "
    "line (--allow-python) or by the caller (load_config(path, allow_python=True)), "
    "never by the file: remove this key"
)


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
        Allow ``"package.module:function"`` references (they import and run
        Python code). This is the caller's consent; a config cannot give it.

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
    return parse_config(read_toml(path), allow_python=allow_python, source=path)


def read_toml(path: str | Path) -> dict[str, Any]:
    """The parsed TOML document at `path`; a ConfigError says why it cannot be read.

    Examples
    --------
    >>> read_toml("no/such/config.toml")
    Traceback (most recent call last):
    ...
    fpsolver.cli.config.ConfigError: no/such/config.toml: cannot read the config: ...
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except (OSError, ValueError) as err:  # ValueError: a NUL in the path
        reason = getattr(err, "strerror", None) or str(err)
        raise ConfigError(f"{path}: cannot read the config: {reason}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the config is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None


def parse_config(
    data: Mapping[str, Any], allow_python: bool = False, source: Path | None = None
) -> RunConfig:
    """Validate a parsed config (a dict as read from TOML) and build the run.

    Parameters
    ----------
    data : mapping
        The parsed TOML document.
    allow_python : bool
        Allow ``"package.module:function"`` references: the caller's
        consent to import and run Python code. A config cannot give it; a
        top-level ``allow_python`` key is an error.
    source : Path, optional
        The file `data` was read from (the default title is its stem).

    Returns
    -------
    RunConfig

    Raises
    ------
    ConfigError
        With the offending key and the reason.

    Examples
    --------
    >>> cfg = parse_config({"grid": {"x": [-3, 3, 40]},
    ...                     "model": {"energy": "x**2/2", "temperatur": 1.0}})
    Traceback (most recent call last):
    ...
    fpsolver.cli.config.ConfigError: model.temperatur: unknown key (did you mean ...
    """
    top = _Table(data, "")
    if top.has("allow_python"):
        raise top.error("allow_python", _CONSENT)
    top.check_keys(TOP_LEVEL)
    title = top.get_str("title", default=source.stem if source else "fpsolver run")
    grid = _grid(top.table("grid"))
    constants = _constants(top.table("constants", required=False), grid.names)
    ctx = _Context(grid.names, constants, bool(allow_python))
    model = _model(top.table("model"), grid, ctx)
    p0 = _initial(top.table("initial", required=False), model, ctx)
    solve = _solve(top.table("solve", required=False))
    particles = _particles(top.table("particles", required=False), solve)
    output = _output(top.table("output", required=False))
    check_memory("solve", math.prod(grid.shape), _frame_count(solve))
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


#: Numbers per cell of the sparse generator and the solver's work arrays.
GENERATOR_WORDS = 10
#: Copies of each saved frame a command-line run holds: the solver's store, the
#: frames kept for a Ctrl-C and the stacked result.
FRAME_COPIES = 3
#: Size of the widest standard figure, in inches (six snapshots in a row).
FIGURE_INCHES = (24.0, 4.0)


def memory_estimate(cells: int, frames: int = 0) -> int:
    """Bytes a run needs, estimated before anything is allocated.

    ``8 · cells · (GENERATOR_WORDS + FRAME_COPIES · frames)``: the sparse
    generator and the solver's work arrays (about ten numbers per cell)
    plus the saved frames. A lower bound: factorisations fill in.

    Examples
    --------
    >>> memory_estimate(1000, frames=10)
    320000
    """
    return 8 * int(cells) * (GENERATOR_WORDS + FRAME_COPIES * int(frames))


def figure_memory(dpi: int) -> int:
    """Bytes to draw the widest standard figure at `dpi` (RGBA pixels, twice).

    Examples
    --------
    >>> figure_memory(100)
    7680000
    """
    width, height = FIGURE_INCHES
    return 2 * 4 * int(width * dpi) * int(height * dpi)


def _gigabytes(nbytes: float) -> str:
    return f"{nbytes / 1e9:.3g} GB"


def check_memory(key: str, cells: int, frames: int = 0, figure: int = 0) -> None:
    """Refuse up front a problem whose memory estimate exceeds the available memory.

    Parameters
    ----------
    key : str
        What is refused, the start of the message (e.g. ``"grid"``).
    cells, frames : int
        Grid cells and saved frames (see :func:`memory_estimate`).
    figure : int
        Bytes of the largest figure (see :func:`figure_memory`).

    Raises
    ------
    ConfigError
        With the estimate and the memory available.
    """
    need = memory_estimate(cells, frames) + figure
    avail = available_memory()
    if avail is None or need <= avail:
        return
    if figure and not cells:
        what = f"a figure at this resolution needs about {_gigabytes(need)}"
        hint = "lower the dpi"
    elif frames:
        what = f"{frames} saved frames of {cells} cells need about {_gigabytes(need)}"
        hint = "save fewer frames (a larger save_every) or use fewer cells"
    else:
        what = f"a grid of {cells} cells needs about {_gigabytes(need)}"
        hint = "use fewer cells"
    raise ConfigError(
        f"{key}: too large for memory: {what} (8 bytes a number), more than the "
        f"{_gigabytes(avail)} available; {hint}"
    )


def _plain_name(key: str, value: Any, what: str = "file name") -> str:
    """A file name (`what`) without folders, control characters or a leading dot."""
    if not isinstance(value, str):
        raise ConfigError(f"{key}: must be a string, got {_type_name(value)} {value!r}")
    bad = [c for c in value if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]
    if bad:
        raise ConfigError(f"{key}: must not contain control characters, got {value!r}")
    if not value.strip() or any(c in value for c in "/\\") or value.startswith("."):
        raise ConfigError(
            f"{key}: must be a plain {what} (no '/' or '\\', not empty, not starting "
            f"with '.'), got {value!r}"
        )
    if len(value.encode("utf-8")) > MAX_NAME_BYTES:
        raise ConfigError(
            f"{key}: must be at most {MAX_NAME_BYTES} bytes long, got "
            f"{len(value.encode('utf-8'))} ({value[:20]!r}...)"
        )
    return value


@dataclass
class _Context:
    names: tuple[str, ...]
    constants: dict[str, float]
    allow_python: bool


def _field(key: str, value: Any, ctx: _Context, time: bool = False) -> float | Callable[..., Any]:
    """A scalar field: a number, an expression or (opt-in) a Python reference.

    With `time`, the expression may also use ``t`` (a time-dependent field).
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _number(key, value)
    if not isinstance(value, str):
        raise ConfigError(
            f"{key}: must be a number or an expression string, got {_type_name(value)} {value!r}"
        )
    try:
        if is_reference(value):
            return resolve_reference(value, ctx.allow_python, name=key)
        names = (*ctx.names, "t") if time else ctx.names
        expr = Expression(value, names, ctx.constants, name=key)
    except ExpressionError as err:
        raise ConfigError(str(err)) from None
    if "t" in expr.used and time:
        return time_field(expr)
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


def _tensor(key: str, rows: list, ctx: _Context, names: tuple[str, ...]) -> Any:
    """A d × d mobility tensor: nested numbers, or a callable returning nested fields."""
    n = len(ctx.names)
    if len(rows) != n:
        raise ConfigError(
            f"{key}: a tensor mobility needs {n} rows of {n} entries (axes "
            f"{', '.join(ctx.names)}), got {len(rows)} rows"
        )
    comps = [_components(f"{key}[{i}]", r, ctx) for i, r in enumerate(rows)]
    if all(not callable(c) for r in comps for c in r):
        return [[float(c) for c in r] for r in comps]
    row_fields = [_vector_callable(r, names) for r in comps]

    def tensor(*points: np.ndarray, **named: np.ndarray) -> list[list[np.ndarray]]:
        return [f(*points, **named) for f in row_fields]

    return tensor


# -- sections ------------------------------------------------------------
def _constants(table: _Table | None, axes: tuple[str, ...]) -> dict[str, float]:
    """Named numbers; they may not redefine an axis or a predefined name (pi, exp, ...)."""
    if table is None:
        return {}
    out = {}
    for k, v in table.data.items():
        try:
            check_constant_name(str(k), axes, table.key(str(k)))
        except ExpressionError as err:
            raise ConfigError(str(err)) from None
        out[str(k)] = table.number(str(k), v)
    return out


def _reserved_names() -> frozenset[str]:
    """Names an axis may not take: result variables, diagnostics, expression names."""
    from ..integrate.trackers import DIAGNOSTICS

    return frozenset(RESULT_NAMES) | frozenset(DIAGNOSTICS) | PREDEFINED


def _check_axis_name(key: str, name: Any) -> None:
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        raise ConfigError(
            f"{key}: axis names must be identifiers not starting with '_', got {name!r}"
        )
    if keyword.iskeyword(name):
        raise ConfigError(f"{key}: the axis name {name!r} is a Python keyword; choose another")
    if name in PREDEFINED:
        what = "function" if name in FUNCTIONS else "constant"
        raise ConfigError(
            f"{key}: the axis name {name!r} is a predefined {what} of the expression "
            "language; choose another"
        )
    if name in _reserved_names():
        raise ConfigError(
            f"{key}: axis names must be identifiers that no variable of the result takes; "
            f"the axis name {name!r} is taken (like p, energy, time, mass, mean, covariance, "
            "axis, axis2 and the diagnostics); choose another"
        )


def _cells(key: str, value: Any) -> int:
    """A cell count: a TOML integer, at least 2."""
    if isinstance(value, bool) or not isinstance(value, int):
        hint = ""
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            hint = f"; write {int(value)}, without a decimal point"
        raise ConfigError(
            f"{key}: must be an integer, got {value!r}: the number of cells, at least 2{hint}"
        )
    if value < 2:
        raise ConfigError(f"{key}: needs at least 2 cells, got {value}")
    return value


def _grid(table: _Table):
    from ..core.grid import Grid

    if table.has("kind"):
        return _curved_grid(table)
    periodic = table.raw("periodic", [])
    if isinstance(periodic, str):
        periodic = [periodic]
    if not isinstance(periodic, list) or not all(isinstance(p, str) for p in periodic):
        raise table.error("periodic", f"must be a list of axis names, got {periodic!r}")
    axes: dict[str, Any] = {}
    for name, spec in table.data.items():
        if name != "periodic":
            _check_axis_name(table.key(name), name)
            axes[name] = _axis(table.key(name), spec)
    if not axes:
        raise ConfigError(f"{table.path}: no axes; add e.g. x = [-2, 2, 100]")
    unknown = [p for p in periodic if p not in axes]
    if unknown:
        raise table.error("periodic", f"names unknown axes {unknown}; the axes are {list(axes)}")
    cells = math.prod(a[2] if isinstance(a, tuple) else len(a) - 1 for a in axes.values())
    check_memory(table.path, cells)
    try:
        return Grid(periodic=tuple(periodic), **axes)
    except ValueError as err:
        raise ConfigError(f"{table.path}: {err}") from None


#: Keys of the curved grid kinds (``[grid] kind = ...``).
CURVED_GRIDS = {
    "cartesian": (),
    "polar": ("r", "phi"),
    "sphere": ("n_theta", "n_phi", "radius"),
    "torus": ("theta", "phi", "major", "minor"),
}


def _curved_grid(table: _Table):
    """``[grid] kind = "polar" | "sphere" | "torus"`` (see :meth:`fpsolver.Grid.polar` ...)."""
    from ..core.grid import Grid

    kind = table.get_str("kind", choices=tuple(CURVED_GRIDS))
    if kind == "cartesian":
        rest = {k: v for k, v in table.data.items() if k != "kind"}
        return _grid(_Table(rest, table.path))
    table.check_keys(("kind", *CURVED_GRIDS[kind]))
    kw: dict[str, Any] = {}
    for name in CURVED_GRIDS[kind]:
        if not table.has(name):
            continue
        v = table.raw(name)
        key = table.key(name)
        if name in ("radius", "major", "minor"):
            kw[name] = _number(key, v)
        elif isinstance(v, (list, Mapping)):
            kw[name] = _axis(key, v)
        else:
            kw[name] = _cells(key, v)
    cells = [kw.get(n, 64) for n in CURVED_GRIDS[kind][:2]]
    check_memory(table.path, math.prod(c[2] if isinstance(c, tuple) else np.size(c) for c in cells))
    try:
        return getattr(Grid, kind)(**kw)
    except ValueError as err:
        raise ConfigError(f"{table.path}: {err}") from None


def _axis(key: str, spec: Any) -> Any:
    """One axis: ``(lower, upper, cells)`` or an array of edges."""
    if isinstance(spec, list):
        if len(spec) != 3:
            raise ConfigError(
                f"{key}: must be [lower, upper, cells] or {{ edges = [...] }}, got {spec!r}"
            )
        lo = _number(f"{key}[0]", spec[0])
        hi = _number(f"{key}[1]", spec[1])
        cells = _cells(f"{key}[2]", spec[2])
        if not hi > lo:
            raise ConfigError(f"{key}: needs lower < upper, got [{lo:g}, {hi:g}]")
        return (lo, hi, cells)
    if isinstance(spec, Mapping):
        sub = _Table(spec, key)
        sub.check_keys(("edges",))
        edges = sub.raw("edges", required=True)
        if not isinstance(edges, list) or len(edges) < 3:
            raise sub.error("edges", f"must be a list of at least 3 edges, got {edges!r}")
        values = [_number(f"{key}.edges[{i}]", e) for i, e in enumerate(edges)]
        if not all(b > a for a, b in zip(values, values[1:])):
            raise sub.error("edges", "must be strictly increasing")
        return np.array(values)
    raise ConfigError(
        f"{key}: must be [lower, upper, cells] or {{ edges = [...] }}, "
        f"got {_type_name(spec)} {spec!r}"
    )


MODEL_KEYS = ("energy", "temperature", "mobility", "force", "boundary", "interaction", "local")


def _interaction(table: _Table, ctx: _Context) -> Any:
    """The pair kernel W: an expression of the separations d<axis> (e.g. "-J*cos(dtheta)")."""
    if not table.has("interaction"):
        return None
    value, key = table.raw("interaction"), table.key("interaction")
    if isinstance(value, str) and is_reference(value):
        return resolve_reference(value, ctx.allow_python, name=key)
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ConfigError(f"{key}: must be an expression of {['d' + n for n in ctx.names]}")
    try:
        expr = Expression(str(value), tuple("d" + n for n in ctx.names), ctx.constants, name=key)
    except ExpressionError as err:
        raise ConfigError(str(err)) from None
    return lambda *d: np.broadcast_to(expr(*d), np.broadcast_shapes(*(np.shape(x) for x in d)))


def _model(table: _Table, grid, ctx: _Context):
    from ..api.fokker_planck import FokkerPlanck

    table.check_keys(MODEL_KEYS)
    energy = _field(table.key("energy"), table.raw("energy", 0.0), ctx, time=True)
    temperature = _temperature(table, ctx)
    mob = table.raw("mobility", 1.0)
    if isinstance(mob, list) and mob and all(isinstance(r, list) for r in mob):
        mobility = _tensor(table.key("mobility"), mob, ctx, grid.names)
    elif isinstance(mob, list):
        comps = _components(table.key("mobility"), mob, ctx)
        if all(not callable(c) for c in comps):
            for i, c in enumerate(comps):
                if not c > 0:
                    raise table.error(f"mobility[{i}]", f"must be positive, got {c!r}")
            mobility: Any = [float(c) for c in comps]
        else:
            mobility = _vector_callable(comps, grid.names)
    else:
        mobility = _field(table.key("mobility"), mob, ctx, time=True)
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
    mean_field = {k: v for k, v in (("interaction", _interaction(table, ctx)),
                                    ("local", table.raw("local"))) if v is not None}  # fmt: skip
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
            **mean_field,
        )
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{table.path}: {err}") from None


def _temperature(table: _Table, ctx: _Context) -> Any:
    """A positive number, or an expression of ``t`` (a temperature protocol)."""
    value = table.raw("temperature", None, required=True)
    if not isinstance(value, str):
        return table.number("temperature", value, positive=True)
    try:
        expr = Expression(value, ("t",), ctx.constants, name=table.key("temperature"))
    except ExpressionError as err:
        raise ConfigError(
            f"{table.key('temperature')}: must be a number, got a string that is not an "
            f"expression of t ({err})"
        ) from None
    if not expr.used:
        return table.number("temperature", float(expr()), positive=True)
    return lambda t: float(expr(t=t))


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


#: TOML kinds of pass-through keys, from a parameter's annotation (defaults of None).
_ANNOTATION_KINDS = {
    frozenset({"bool"}): "bool",
    frozenset({"int"}): "int",
    frozenset({"float"}): "number",
    frozenset({"int", "float"}): "number",
    frozenset({"Sequence[float]"}): "numbers",
    frozenset({"str"}): "string",
    frozenset({"str", "Path"}): "string",
}


def _kind(param: inspect.Parameter) -> str | None:
    """The TOML kind a keyword takes: from its default, else its annotation; None if unknown."""
    default = param.default
    if isinstance(default, bool):
        return "bool"
    for kind, types in (("int", int), ("number", float), ("string", str)):
        if isinstance(default, types):
            return kind
    text = param.annotation if isinstance(param.annotation, str) else str(param.annotation)
    parts = frozenset(part.strip() for part in text.split("|")) - {"None"}
    return _ANNOTATION_KINDS.get(parts)


def _pass_through(f: Callable[..., Any], skip: tuple[str, ...]) -> dict[str, str]:
    """Keywords of `f` a config may set (not in `skip`), each with its TOML kind."""
    params = inspect.signature(f).parameters.values()
    kinds = {
        p.name: _kind(p) for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    return {k: v for k, v in kinds.items() if k not in skip and v is not None}


def _typed(key: str, value: Any, kind: str) -> Any:
    """`value` checked to be of the TOML `kind` (no conversions from strings)."""
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(
                f"{key}: must be true or false (a TOML boolean, without quotes), "
                f"got {_type_name(value)} {value!r}"
            )
        return value
    if kind in ("int", "number"):
        return _number(key, value, integer=kind == "int")
    if kind == "string":
        if not isinstance(value, str):
            raise ConfigError(f"{key}: must be a string, got {_type_name(value)} {value!r}")
        return value
    if not isinstance(value, list):
        raise ConfigError(f"{key}: must be a list of numbers, got {_type_name(value)} {value!r}")
    return [_number(f"{key}[{i}]", v) for i, v in enumerate(value)]


def _extra_keys(table: _Table, kinds: dict[str, str]) -> dict[str, Any]:
    """The pass-through keys present in `table`, type-checked."""
    out = {k: _typed(table.key(k), table.raw(k), kind) for k, kind in kinds.items() if table.has(k)}
    if "checkpoint" in out:
        out["checkpoint"] = _plain_name(table.key("checkpoint"), out["checkpoint"])
    return out


SOLVE_KEYS = ("method", "dt", "t_end", "save_every")


def _solve(table: _Table | None) -> dict[str, Any]:
    data = table if table is not None else _Table({}, "solve")
    from ..api.runs import solve

    skip = ("model", "p0", *SOLVE_KEYS, "progress", "callback", "trackers")
    extra = _pass_through(solve, skip)
    data.check_keys(SOLVE_KEYS + tuple(extra))
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
    out.update(_extra_keys(data, extra))
    _check_steps(data, out, inspect.signature(solve).parameters["max_steps"].default)
    return out


def _check_steps(table: _Table, solve: dict[str, Any], default_max: int) -> None:
    """Refuse up front a fixed step that needs more than ``max_steps`` steps."""
    t_end, dt = solve["t_end"], solve.get("dt")
    if not isinstance(t_end, float) or dt is None or solve.get("method") == "adaptive":
        return
    max_steps = solve.get("max_steps", default_max)
    steps = t_end / dt
    if steps > max_steps:
        raise table.error(
            "dt",
            f"dt = {dt:g} needs {steps:.3g} steps to reach t_end = {t_end:g}, more than "
            f"max_steps = {max_steps}; use a larger dt or raise solve.max_steps",
        )


def _frame_count(solve: dict[str, Any]) -> int:
    """Frames a solve will save, as far as the config tells (at least 2)."""
    if "save_at" in solve:
        return len(solve["save_at"]) + 2
    t_end = solve["t_end"]
    horizon = t_end if isinstance(t_end, float) else solve.get("t_max")
    every = solve.get("save_every")
    if every is None and solve.get("method", "bdf2") != "adaptive":
        every = solve.get("dt")  # every step is saved
    if horizon is None or every is None:
        return 2
    frames = math.ceil(min(horizon / every, 1e18)) + 2
    if every == solve.get("dt") and "save_every" not in solve:
        frames = min(frames, solve.get("max_steps", frames) + 2)
    return max(int(frames), 2)


def _check_method(table: _Table, method: str) -> None:
    from ..integrate.protocol import PROTOCOL_METHODS
    from ..integrate.steppers import METHODS

    if method not in METHODS and method not in PROTOCOL_METHODS:
        extra = ", ".join(m for m in PROTOCOL_METHODS if m not in METHODS)
        raise table.error(
            "method",
            f"unknown method {method!r}; valid: {', '.join(METHODS)} "
            f"(time-dependent models also: {extra})",
        )


PARTICLE_KEYS = ("n", "dt", "seed", "save_every")


def _particles(table: _Table | None, solve: dict[str, Any]) -> dict[str, Any] | None:
    if table is None:
        return None
    from ..sampling.particles import simulate_particles

    extra = _pass_through(simulate_particles, ("model", "p0", "t_end", *PARTICLE_KEYS, "progress"))
    table.check_keys(PARTICLE_KEYS + tuple(extra))
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
    out.update(_extra_keys(table, extra))
    return out


def _output(table: _Table | None) -> dict[str, Any]:
    data = table if table is not None else _Table({}, "output")
    data.check_keys(("figures", "animation", "dpi", "name"))
    anim = data.raw("animation", False)
    if anim is True:
        anim = "gif"
    if anim is not False and anim not in ANIMATION_FORMATS:
        raise data.error("animation", f'must be false, "gif" or "mp4"; got {anim!r}')
    name = _plain_name(data.key("name"), data.raw("name", "result"), "file stem")
    dpi = data.get_number("dpi", default=100, integer=True, positive=True)
    if dpi > MAX_DPI:
        raise data.error("dpi", f"must be at most {MAX_DPI}, got {dpi}")
    check_memory(data.key("dpi"), 0, figure=figure_memory(dpi))
    return {"figures": data.get_bool("figures", True), "animation": anim, "dpi": dpi, "name": name}
