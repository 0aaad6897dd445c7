"""Parameter sweeps: any function of a model over a grid of parameter values.

:func:`sweep` calls ``make_model(**point)`` for every point of a cartesian
product of parameter values (or of an explicit list of points), applies
``run`` to each model (a solve, a spectrum, a stationary density, a
first-passage time, particles, a comparison, or any function returning an
xarray object or numbers) and returns one :class:`xarray.Dataset` with a
dimension per swept parameter, the parameter values as its coordinates and
a ``status`` per point: ``"ok"``, or the error that point raised.

The points run in this process one after another, or as Dask tasks
(``client=`` or ``scheduler=``); the results are the same either way, bit
for bit, since each point is computed by the same function on one BLAS
thread (``FPSOLVER_THREADS`` to change) and combined in the same order.
With ``store=``, finished points are saved as they come (atomically, at
most every :data:`STORE_INTERVAL` seconds and at the end), and a sweep
started again with the same store computes only the points that are
missing or failed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import itertools
import keyword
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..core.threads import limit_threads
from ..io import FileLock, open_result, save_result
from .cluster import CONNECT_TIMEOUT, dask_client, import_distributed

__all__ = ["sweep", "STORE_INTERVAL", "OK", "PENDING"]

#: Status of a point that ran to completion.
OK = "ok"
#: Status of a point not computed yet (in a store written mid-sweep).
PENDING = "pending"
#: Least time between two writes of the store, in seconds.
STORE_INTERVAL = 2.0
#: Names a swept parameter may not have (the result uses them).
RESERVED = ("status", "point")


# --------------------------------------------------------------------------
# the points
@dataclass
class _Points:
    """The swept points, in order (C order of the product, or as listed)."""

    names: tuple[str, ...]
    coords: dict[str, np.ndarray]  # per parameter (product) or per point (list)
    kwargs: list[dict[str, Any]]
    shape: tuple[int, ...] | None  # None: a list of points along ``point``

    @property
    def dims(self) -> tuple[str, ...]:
        return self.names if self.shape is not None else ("point",)

    @property
    def layout(self) -> str:
        return "product" if self.shape is not None else "points"

    def key(self, i: int) -> tuple[Any, ...]:
        return tuple(self.kwargs[i][n] for n in self.names)


def _check_name(name: Any) -> str:
    if not (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)):
        raise ValueError(
            f"swept parameter name {name!r} must be a Python identifier (it is passed to "
            "`make_model` as a keyword argument)"
        )
    if name in RESERVED:
        raise ValueError(
            f"swept parameter name {name!r} is reserved (the result uses it); valid: any "
            f"other identifier, not {', '.join(RESERVED)}"
        )
    return name


def _coordinate(name: str, values: Any, unique: bool = True) -> np.ndarray:
    """Values of one parameter as a 1-D array of numbers or of strings."""
    if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__iter__"):
        raise TypeError(
            f"parameter {name!r}: values must be a sequence (list, array, range), got "
            f"{type(values).__name__} {values!r}"
        )
    items = list(values)
    arr = np.asarray(items)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"parameter {name!r}: values must be a non-empty 1-D sequence of numbers or "
            f"strings, got shape {arr.shape}"
        )
    numeric = all(isinstance(v, (int, float, np.integer, np.floating, bool)) for v in items)
    if not (numeric or all(isinstance(v, str) for v in items)):
        raise TypeError(
            f"parameter {name!r}: values must be all numbers or all strings, got {items!r}"
        )
    if numeric and not np.all(np.isfinite(arr.astype(float))):
        raise ValueError(f"parameter {name!r}: values must be finite, got {items!r}")
    if unique and np.unique(arr).size != arr.size:
        raise ValueError(f"parameter {name!r}: values must not repeat, got {items!r}")
    return arr


def _points(parameters: Any) -> _Points:
    """The points of a mapping (cartesian product) or of a list of mappings."""
    if isinstance(parameters, Mapping):
        if not parameters:
            raise ValueError("`parameters` is empty; give at least one parameter and its values")
        names = tuple(_check_name(n) for n in parameters)
        coords = {n: _coordinate(n, parameters[n]) for n in names}
        kwargs = [
            dict(zip(names, (v.item() for v in combo)))
            for combo in itertools.product(*coords.values())
        ]
        return _Points(names, coords, kwargs, tuple(c.size for c in coords.values()))
    if isinstance(parameters, Sequence) and not isinstance(parameters, (str, bytes)):
        rows = list(parameters)
        if not rows or not all(isinstance(r, Mapping) for r in rows):
            raise TypeError(
                "`parameters` must be a mapping {name: values} (cartesian product) or a "
                f"non-empty list of mappings {{name: value}} (one per point), got {parameters!r}"
            )
        names = tuple(_check_name(n) for n in rows[0])
        for i, row in enumerate(rows):
            if tuple(row) != names:
                raise ValueError(
                    f"`parameters`[{i}] has keys {list(row)}; every point must set the same "
                    f"parameters as the first, {list(names)}"
                )
        coords = {n: _coordinate(n, [r[n] for r in rows], unique=False) for n in names}
        kwargs = [dict(zip(names, (coords[n][i].item() for n in names))) for i in range(len(rows))]
        if len({tuple(k.values()) for k in kwargs}) != len(kwargs):
            raise ValueError("`parameters` lists the same point twice; every point must differ")
        return _Points(names, coords, kwargs, None)
    raise TypeError(
        "`parameters` must be a mapping {name: values} or a list of mappings, got "
        f"{type(parameters).__name__}"
    )


def _check_signature(make_model: Callable, pts: _Points) -> None:
    """Refuse parameters `make_model` cannot take, or parameters it needs and lacks."""
    try:
        sig = inspect.signature(make_model)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return
    params = sig.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        accepted = None
    else:
        accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [n for n in pts.names if accepted is not None and n not in accepted]
    if unknown:
        raise TypeError(
            f"`make_model` does not accept the swept parameter(s) {unknown}: its parameters "
            f"are ({', '.join(accepted)}); sweep only those, or add them to `make_model`"
        )
    try:
        sig.bind(**pts.kwargs[0])
    except TypeError as err:
        raise TypeError(
            f"`make_model` cannot be called with the swept parameters {list(pts.names)} "
            f"alone ({err}); give the others defaults (e.g. with functools.partial)"
        ) from None


# --------------------------------------------------------------------------
# one point
def _as_dataset(out: Any):
    """The result of one point as a Dataset (numbers become a variable ``value``)."""
    import xarray as xr

    if isinstance(out, xr.DataArray):
        out = out.to_dataset(name=out.name if out.name is not None else "value")
    elif isinstance(out, (bool, int, float, complex, np.number, np.bool_)):
        out = xr.Dataset({"value": ((), out)})
    elif isinstance(out, Mapping):
        out = xr.Dataset(dict(out))
    elif not isinstance(out, xr.Dataset):
        raise TypeError(
            "`run` must return an xarray Dataset or DataArray, a number or a dict of them; "
            f"got {type(out).__name__}"
        )
    if "status" in out.variables:
        raise ValueError("the result of `run` has a variable `status`: the sweep uses that name")
    return out


def _run_point(make_model: Callable, run: Callable | None, kwargs: dict[str, Any]):
    """(status, Dataset or None) of one point; its errors become its status."""
    try:
        with limit_threads():
            model = make_model(**kwargs)
            return OK, _as_dataset(model if run is None else run(model))
    except Exception as err:  # a point's failure is reported, not raised
        return _status(err), None


def _status(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


# --------------------------------------------------------------------------
# combining points
def _missing_like(template: Any):
    """A point like `template` with every value missing (NaN, NaT or empty)."""
    out = template.copy(deep=False)
    for name, var in template.data_vars.items():
        kind = var.dtype.kind
        if kind in "fc":
            fill = np.full(var.shape, np.nan, dtype=var.dtype)
        elif kind in "mM":
            fill = np.full(var.shape, "NaT", dtype=var.dtype)
        elif kind in "iub":
            fill = np.full(var.shape, np.nan)
        else:
            fill = np.full(var.shape, "", dtype=var.dtype if kind in "US" else object)
        out[name] = (var.dims, fill, var.attrs)
    out.attrs = {}
    return out


def _check_clash(pts: _Points, ds: Any) -> None:
    clash = [n for n in pts.names if n in ds.dims or n in ds.variables]
    if clash:
        raise ValueError(
            f"swept parameter(s) {clash} are also dimensions or variables of the result of "
            "`run`; rename the parameter(s) in `parameters` and `make_model`"
        )


def _nest(items: list, shape: tuple[int, ...]) -> list:
    """`items` (C order) as nested lists of `shape`.

    Examples
    --------
    >>> _nest([1, 2, 3, 4, 5, 6], (2, 3))
    [[1, 2, 3], [4, 5, 6]]
    """
    if len(shape) == 1:
        return list(items)
    step = len(items) // shape[0]
    return [_nest(items[k * step : (k + 1) * step], shape[1:]) for k in range(shape[0])]


def _combine(pts: _Points, results: list, attrs: dict[str, Any]):
    """One Dataset from the points' (status, Dataset or None), in order."""
    import xarray as xr

    status = np.array([s for s, _ in results], dtype=str)
    template = next((ds for s, ds in results if ds is not None), None)
    kw = dict(
        data_vars="all",
        coords="different",
        compat="equals",
        join="outer",
        combine_attrs="drop_conflicts",
    )
    if template is None:
        out = xr.Dataset()
    else:
        missing = _missing_like(template)
        dsets = [ds if ds is not None else missing for _, ds in results]
        if pts.shape is None:
            out = xr.concat(dsets, dim="point", **kw)
        else:
            out = xr.combine_nested(_nest(dsets, pts.shape), list(pts.names), **kw)
    shape = pts.shape if pts.shape is not None else (len(results),)
    out["status"] = (pts.dims, status.reshape(shape), {"long_name": "status of the point"})
    out = out.assign_coords({n: (pts.dims[0] if pts.shape is None else n, c)
                             for n, c in pts.coords.items()})  # fmt: skip
    out = out.transpose(*pts.dims, ...)
    out.attrs.update(attrs)
    out.attrs["sweep_failed"] = int(np.sum((status != OK) & (status != PENDING)))
    out.attrs["sweep_pending"] = int(np.sum(status == PENDING))
    return out


# --------------------------------------------------------------------------
# the store
def _code_digest(code: Any, h: Any) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if inspect.iscode(const):
            _code_digest(const, h)
        else:
            h.update(_const_repr(const).encode())


def _const_repr(const: Any) -> str:
    """repr of a code constant, sets sorted (their order changes with the hash seed).

    Examples
    --------
    >>> _const_repr(("a", frozenset({"b", "c"})))
    "('a', frozenset(['b', 'c']))"
    """
    if isinstance(const, frozenset):
        return "frozenset([" + ", ".join(sorted(_const_repr(c) for c in const)) + "])"
    if isinstance(const, tuple):
        return "(" + ", ".join(_const_repr(c) for c in const) + ")"
    return repr(const)


def _describe(f: Any) -> str:
    """A stable description of a callable: its name and code (not its address)."""
    if f is None:
        return "None"
    if isinstance(f, functools.partial):
        return f"partial({_describe(f.func)}, {_stable(f.args)}, {_stable(f.keywords)})"
    name = f"{getattr(f, '__module__', '')}.{getattr(f, '__qualname__', type(f).__qualname__)}"
    code = getattr(f, "__code__", None)
    if code is None:
        return f"{name}:{_stable(f)}"
    h = hashlib.sha256()
    _code_digest(code, h)
    return f"{name}:{h.hexdigest()[:16]}"


def _stable(obj: Any) -> str:
    text = repr(obj)
    return "" if " at 0x" in text else text


def _fingerprint(make_model: Callable, run: Callable | None, pts: _Points) -> str:
    text = "|".join([_describe(make_model), _describe(run), pts.layout, *pts.names])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass
class _Store:
    """A sweep's points on disk: read on resume, written as points finish."""

    path: Path | None
    attrs: dict[str, Any]
    last: float = 0.0
    lock: Any = field(default=None, repr=False)

    def __enter__(self) -> _Store:
        if self.path is not None:
            self.lock = FileLock(self.path)
            self.lock.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.lock is not None:
            self.lock.release()

    def load(self, pts: _Points) -> dict[int, Any]:
        """Points of `pts` the store holds with status ok, by index."""
        if self.path is None or not self.path.exists():
            return {}
        stored = open_result(self.path)
        want = {k: self.attrs[k] for k in ("sweep_fingerprint", "sweep_parameters")}
        have = {k: stored.attrs.get(k) for k in want}
        if have != want:
            raise ValueError(
                f"`store`={str(self.path)!r} holds another sweep (parameters "
                f"{have['sweep_parameters']!r}, fingerprint {have['sweep_fingerprint']!r}; this "
                f"sweep: {want['sweep_parameters']!r}, {want['sweep_fingerprint']!r}: different "
                "parameters, `make_model` or `run`); remove the file or choose another store"
            )
        return _stored_points(stored, pts)

    def save(self, pts: _Points, results: list, force: bool = False) -> None:
        if self.path is None or (not force and time.monotonic() - self.last < STORE_INTERVAL):
            return
        save_result(_combine(pts, results, self.attrs), self.path)
        self.last = time.monotonic()


def _stored_points(stored: Any, pts: _Points) -> dict[int, Any]:
    """The points of `pts` found in `stored` (a sweep read back) with status ok."""
    if pts.shape is not None:
        where = {n: {v.item(): j for j, v in enumerate(stored[n].values)} for n in pts.names}
    else:
        keys = zip(*(stored[n].values for n in pts.names))
        rows = {tuple(v.item() for v in key): j for j, key in enumerate(keys)}
    found = {}
    drop = [*pts.names, "status"]
    for i, kw in enumerate(pts.kwargs):
        if pts.shape is not None:
            if not all(kw[n] in where[n] for n in pts.names):
                continue
            at = {n: where[n][kw[n]] for n in pts.names}
        else:
            if pts.key(i) not in rows:
                continue
            at = {"point": rows[pts.key(i)]}
        point = stored.isel(at)
        if str(point["status"].values) == OK:
            found[i] = point.drop_vars(drop, errors="ignore")
    return found


# --------------------------------------------------------------------------
# running the points
def _bar(total: int, progress: bool | None) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="sweep points", unit="point")


class _Recorder:
    """Takes each finished point: checks it, stores it, advances the bar."""

    def __init__(self, pts: _Points, results: list, store: _Store, bar: Any) -> None:
        self.pts, self.results, self.store, self.bar = pts, results, store, bar
        self.checked = False

    def __call__(self, i: int, status: str, ds: Any) -> None:
        if ds is not None and not self.checked:
            _check_clash(self.pts, ds)
            self.checked = True
        self.results[i] = (status, ds)
        self.store.save(self.pts, self.results)
        if self.bar is not None:
            self.bar.update(1)


def _run_serial(make_model, run, pts: _Points, todo: list[int], record: _Recorder) -> None:
    for i in todo:
        record(i, *_run_point(make_model, run, pts.kwargs[i]))


def _identity(obj: Any) -> Any:
    return obj


def _run_dask(client, make_model, run, pts: _Points, todo: list[int], record, retries: int):
    """Each point a task; a task whose worker dies is retried by the scheduler, then reported."""
    distributed = import_distributed()
    # a task, not scattered data: the scheduler recomputes it if its worker dies
    funcs = [client.submit(_identity, f, pure=False) for f in (make_model, run)]
    tag = uuid.uuid4().hex[:8]
    futures = {
        client.submit(
            _run_point,
            *funcs,
            pts.kwargs[i],
            key=f"fpsolver-sweep-{tag}-{i}",
            retries=retries,
            pure=False,
        ): i
        for i in todo
    }
    try:
        for fut in distributed.as_completed(futures):
            i = futures[fut]
            try:
                status, ds = fut.result()
            except distributed.KilledWorker as err:
                status, ds = f"KilledWorker: the worker died running this point ({err})", None
            except Exception as err:  # lost on the way: reported for this point
                status, ds = _status(err), None
            record(i, status, ds)
    finally:
        del funcs, futures  # released on the workers once unreferenced


def sweep(
    make_model: Callable[..., Any],
    parameters: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
    run: Callable[[Any], Any] | None = None,
    *,
    client: Any = None,
    scheduler: str | None = None,
    store: str | Path | None = None,
    retries: int = 1,
    progress: bool | None = None,
    timeout: float = CONNECT_TIMEOUT,
):
    """Run `run` on ``make_model(**point)`` for every point of a parameter sweep.

    Parameters
    ----------
    make_model : callable
        Called with each point's parameters as keyword arguments; usually
        returns an :class:`fpsolver.FokkerPlanck`. Every swept name must be
        one of its parameters (checked before anything runs).
    parameters : mapping or list of mappings
        ``{name: values}`` sweeps the cartesian product of the values (a
        dimension per name, in this order); a list of ``{name: value}``
        sweeps those points (dimension ``point``). Values are numbers or
        strings, and do not repeat.
    run : callable, optional
        Called with each model; returns an xarray Dataset or DataArray, a
        number, or a dict of numbers and DataArrays: e.g.
        ``lambda m: fp.spectrum(m, 3)``, ``lambda m: m.stationary()``,
        ``lambda m: m.solve(p0, 5.0)``. None: the value of `make_model`
        is the point's result.
    client : distributed.Client, "local" or None
        Run the points as Dask tasks on this client, or on a LocalCluster
        of one process per core (``"local"``, started and closed here).
        None (default): one after another in this process.
    scheduler : str, optional
        Address of a running Dask scheduler, e.g. ``"tcp://host:8786"``
        (instead of `client`).
    store : str or Path, optional
        A netCDF file for the sweep: points are saved as they finish (the
        file is replaced atomically, at most every :data:`STORE_INTERVAL`
        seconds, and at the end, also after an error or Ctrl-C). If it
        exists, the points it holds with status ok are taken from it and
        only the others are computed. It must come from the same
        `make_model`, `run` and parameter names (else ValueError).
    retries : int
        Dask retries of a task that failed outside `run` (a point's own
        error is reported, not retried: it would fail again). A task whose
        worker dies is resubmitted by the scheduler up to its
        ``distributed.scheduler.allowed-failures`` limit, then reported.
    progress : bool, optional
        Show a progress bar over points (tqdm).
    timeout : float
        Seconds to wait for the scheduler before a ConnectionError.

    Returns
    -------
    xarray.Dataset
        The points' results stacked along a dimension per parameter (or
        ``point``), with the parameter values as coordinates, and
        ``status`` (``"ok"`` or ``"ErrorType: message"``) per point. Failed
        points hold NaN (integers become floats). ``attrs``: those the
        points agree on, ``sweep_parameters``, ``sweep_layout``,
        ``sweep_points``, ``sweep_failed``, ``sweep_pending``,
        ``sweep_fingerprint`` and ``sweep_computed`` (points computed by
        this call; the others came from the store).

    Raises
    ------
    TypeError, ValueError
        For parameters `make_model` does not take, or malformed values,
        before any point runs.
    ImportError
        With `client` or `scheduler` when Dask is not installed
        (``pip install "fpsolver[dask]"``).
    ConnectionError
        When the scheduler does not answer within `timeout` seconds.

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> def make_model(temperature, barrier=1.0):
    ...     grid = fp.Grid(x=(-2.0, 2.0, 80))
    ...     return fp.FokkerPlanck(grid, lambda x: barrier * (x**2 - 1) ** 2, temperature)
    >>> ds = sweep(make_model, {"temperature": [0.5, 1.0], "barrier": [1.0, 2.0]},
    ...            run=lambda m: fp.spectrum(m, 2))
    >>> ds["rate"].dims, ds["status"].values.tolist()
    (('temperature', 'barrier', 'k'), [['ok', 'ok'], ['ok', 'ok']])
    >>> rate = ds["rate"].sel(k=1)       # slower at the lower temperature
    >>> bool((rate.sel(temperature=0.5) < rate.sel(temperature=1.0)).all())
    True
    >>> sweep(make_model, {"temprature": [0.5]}, run=fp.stationary)
    Traceback (most recent call last):
    ...
    TypeError: `make_model` does not accept the swept parameter(s) ['temprature']: ...
    """
    pts = _points(parameters)
    _check_callables(make_model, run, retries)
    _check_signature(make_model, pts)
    attrs = {
        "sweep_parameters": " ".join(pts.names),
        "sweep_layout": pts.layout,
        "sweep_points": len(pts.kwargs),
        "sweep_fingerprint": _fingerprint(make_model, run, pts),
        "fpsolver_version": __version__,
    }
    with _Store(None if store is None else Path(store), attrs) as st:
        results: list = [(PENDING, None)] * len(pts.kwargs)
        for i, ds in st.load(pts).items():
            results[i] = (OK, ds)
        todo = [i for i, (s, _) in enumerate(results) if s != OK]
        try:
            if todo:
                record = _Recorder(pts, results, st, None)
                where = dict(client=client, scheduler=scheduler, timeout=timeout)
                _run_points(make_model, run, pts, todo, record, where, retries, progress)
        except BaseException:  # Ctrl-C or an error: keep what is done, then raise
            with contextlib.suppress(Exception):
                st.save(pts, results, force=True)
            raise
        st.save(pts, results, force=True)
        out = _combine(pts, results, attrs)
        out.attrs["sweep_computed"] = len(todo)
        return out


def _run_points(make_model, run, pts, todo, record, where, retries, progress) -> None:
    """Compute the points `todo` here or on Dask (`where`: client, scheduler, timeout)."""
    with dask_client(where["client"], where["scheduler"], timeout=where["timeout"]) as dask:
        record.bar = _bar(len(todo), progress)
        try:
            if dask is None:
                _run_serial(make_model, run, pts, todo, record)
            else:
                _run_dask(dask, make_model, run, pts, todo, record, retries)
        finally:
            if record.bar is not None:
                record.bar.close()


def _check_callables(make_model: Any, run: Any, retries: Any) -> None:
    if not callable(make_model):
        raise TypeError(
            f"`make_model` must be a callable taking the swept parameters as keywords, got "
            f"{type(make_model).__name__}"
        )
    if run is not None and not callable(run):
        raise TypeError(
            f"`run` must be a callable taking a model (or None), got {type(run).__name__}"
        )
    if isinstance(retries, bool) or not isinstance(retries, (int, np.integer)) or retries < 0:
        raise ValueError(f"`retries` must be a non-negative integer, got {retries!r}")
