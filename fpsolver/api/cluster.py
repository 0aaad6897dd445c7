"""Dask clients for sweeps and particle ensembles: import, connect, close.

Dask is optional (``pip install "fpsolver[dask]"``): nothing here imports it
until a client is asked for, and ``import fpsolver`` never does.
:func:`dask_client` turns the ``client=`` / ``scheduler=`` arguments of
:func:`fpsolver.sweep` and :func:`fpsolver.simulate_particles`
into a connected ``distributed.Client`` (or None: run in this process),
and closes whatever it opened. An unreachable scheduler is one clear error
after at most ``timeout`` seconds, never a hang.

Models travel to the workers by pickle. :func:`shippable` registers the
reducers that the immutable :class:`~fpsolver.core.grid.Grid` and
:class:`~fpsolver.core.boundary.Boundary` need, and drops a model's cached
discretisation, which the workers rebuild if they need it.
"""

from __future__ import annotations

import contextlib
import copyreg
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..core.boundary import Boundary
from ..core.grid import Grid
from ..core.model import Model
from .fokker_planck import without_operator

__all__ = [
    "CONNECT_TIMEOUT",
    "DASK_HINT",
    "dask_client",
    "import_distributed",
    "register_pickling",
    "shippable",
    "worker_count",
]

#: Seconds to wait for a scheduler to answer before giving up.
CONNECT_TIMEOUT = 10.0

#: How to get Dask, for the error raised when it is missing.
DASK_HINT = 'install the Dask extra: pip install "fpsolver[dask]"'


def import_distributed() -> Any:
    """The ``distributed`` module, or an ImportError that says how to install it.

    Examples
    --------
    >>> import_distributed().__name__
    'distributed'
    """
    try:
        import distributed
    except ImportError as err:
        raise ImportError(
            f"running on Dask workers needs dask.distributed, which is not installed "
            f"({err}); {DASK_HINT}"
        ) from None
    return distributed


def _check_timeout(timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float, np.floating)):
        raise TypeError(f"`timeout` must be a number of seconds, got {timeout!r}")
    if not (np.isfinite(timeout) and timeout > 0):
        raise ValueError(f"`timeout` must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _probe(address: str, timeout: float) -> None:
    """Refuse a malformed address; check that something listens there, within `timeout`."""
    from distributed.comm.addressing import parse_address, parse_host_port

    if not isinstance(address, str) or not address.strip():
        raise TypeError(
            f"`scheduler` must be an address string like 'tcp://host:8786', got {address!r}"
        )
    try:
        scheme, location = parse_address(address, strict=False)
        host, port = parse_host_port(location)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"`scheduler`={address!r} is not a scheduler address ({err}); "
            "valid: 'tcp://host:port', e.g. 'tcp://10.0.0.5:8786'"
        ) from None
    if scheme not in ("tcp", "tls", "ws", "wss"):
        return  # not a socket we can probe: the client's own timeout applies
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ConnectionError(
            f"cannot reach the Dask scheduler at `scheduler`={address!r} within "
            f"{timeout:g} s ({reason}); start one (`dask scheduler`) or check the address"
        ) from None


def _connect(address: str, timeout: float) -> Any:
    """A client connected to the scheduler at `address` (a clear error within `timeout`)."""
    distributed = import_distributed()
    _probe(address, timeout)
    try:
        return distributed.Client(address, timeout=timeout)
    except Exception as err:  # any failure to connect is one line for the user
        raise ConnectionError(
            f"cannot connect to the Dask scheduler at `scheduler`={address!r} within "
            f"{timeout:g} s ({type(err).__name__}: {err})"
        ) from None


def _local(workers: int | None) -> tuple[Any, Any]:
    """A LocalCluster of worker processes (one thread each) and its client."""
    distributed = import_distributed()
    n = workers or os.cpu_count() or 1
    cluster = distributed.LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # any free port: never a clash with another cluster
        silence_logs=logging.ERROR,
    )
    try:
        return cluster, distributed.Client(cluster)
    except BaseException:
        cluster.close()
        raise


@contextlib.contextmanager
def dask_client(
    client: Any = None,
    scheduler: str | None = None,
    *,
    timeout: float = CONNECT_TIMEOUT,
    workers: int | None = None,
) -> Iterator[Any]:
    """The Dask client to run on, or None to run in this process.

    Parameters
    ----------
    client : distributed.Client, "local" or None
        A connected client (left open), ``"local"`` for a LocalCluster of
        `workers` processes on this machine (default: one per core; closed
        on exit), or None.
    scheduler : str, optional
        Address of a running scheduler, e.g. ``"tcp://10.0.0.5:8786"``
        (instead of `client`); the connection is closed on exit.
    timeout : float
        Seconds to wait for the scheduler before raising ConnectionError.
    workers : int, optional
        Worker processes of ``client="local"``.

    Yields
    ------
    distributed.Client or None

    Examples
    --------
    >>> with dask_client() as client:
    ...     print(client)
    None
    >>> with dask_client(client="lokal"):
    ...     pass
    Traceback (most recent call last):
    ...
    ValueError: `client` must be a dask.distributed.Client, "local" or None, got 'lokal' ...
    """
    timeout = _check_timeout(timeout)
    if client is not None and scheduler is not None:
        raise ValueError(
            f"give `client` or `scheduler`, not both (got client={client!r}, "
            f"scheduler={scheduler!r})"
        )
    if client is None and scheduler is None:
        yield None
        return
    if isinstance(client, str) and client != "local":
        raise ValueError(
            f'`client` must be a dask.distributed.Client, "local" or None, got {client!r} '
            "(pass a scheduler's address as `scheduler=`)"
        )
    if client is not None and not isinstance(client, str):
        if not (hasattr(client, "submit") and hasattr(client, "gather")):
            raise TypeError(
                f"`client` must be a dask.distributed.Client, got {type(client).__name__}"
            )
        yield client
        return
    if client == "local":
        cluster, own = _local(workers)
    else:
        cluster, own = None, _connect(scheduler, timeout)
    try:
        yield own
    finally:
        own.close()
        if cluster is not None:
            cluster.close()


def worker_count(client: Any) -> int:
    """Threads the client's workers offer in all (at least 1)."""
    try:
        return max(1, int(sum(client.nthreads().values())))
    except Exception:  # a client that cannot say: assume one
        return 1


# --------------------------------------------------------------------------
# pickling models
def _rebuild_grid(names: tuple[str, ...], edges: tuple[Any, ...], periodic: tuple[bool, ...]):
    return Grid(periodic=[n for n, p in zip(names, periodic) if p], **dict(zip(names, edges)))


def _reduce_grid(grid: Grid) -> tuple[Any, tuple[Any, ...]]:
    return _rebuild_grid, (grid.names, tuple(np.array(e) for e in grid.edges), grid.periodic)


def _reduce_boundary(boundary: Boundary) -> tuple[Any, tuple[Any, ...]]:
    return Boundary, (boundary.sides,)


def register_pickling() -> None:
    """Let Grid and Boundary (immutable, with ``__slots__``) travel by pickle.

    Examples
    --------
    >>> import pickle, fpsolver as fp
    >>> register_pickling()
    >>> g = fp.Grid(x=(0, 1, 4), y=(0, 2, 3), periodic="y")
    >>> pickle.loads(pickle.dumps(g)) == g
    True
    """
    copyreg.pickle(Grid, _reduce_grid)
    copyreg.pickle(Boundary, _reduce_boundary)


# Any process that unpickles a grid imports this module, and so can pickle it
# on (a worker hands data to another worker).
register_pickling()


def shippable(model: Model) -> Model:
    """`model` without its cached discretisation, ready to pickle to a worker.

    The physics is shared, not copied; the workers rebuild the operator if
    they need it.
    """
    return without_operator(model)
