"""How many BLAS/OpenMP threads our solves may use.

Sparse LU and the vector work of a time step gain little from more BLAS
threads, and threads that compete with another process on the same cores
slow a solve down many times (P2 at 128² on two cores with another process
busy on both: 1.5× the idle time with one thread, 9× with two;
``benchmarks/threads.md``). So solves run with
**one** BLAS/OpenMP thread unless told otherwise, by the `threads`
argument of :func:`fpsolver.solve` or the environment variable
``FPSOLVER_THREADS`` (an integer, or ``"all"`` to leave the libraries'
own defaults). Independent work (particle blocks) uses its own worker
threads, set by ``workers=``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["resolve_threads", "limit_threads", "ENV"]

#: The environment variable that sets the default.
ENV = "FPSOLVER_THREADS"


def resolve_threads(threads: Any = None) -> int | None:
    """The thread count to use: `threads`, else ``$FPSOLVER_THREADS``, else 1.

    None means "leave the libraries' defaults" (``"all"``).

    Examples
    --------
    >>> resolve_threads(2)
    2
    >>> resolve_threads("all") is None
    True
    """
    source = "threads"
    if threads is None:
        threads = os.environ.get(ENV, "1")
        source = f"${ENV}"
    if isinstance(threads, str) and threads.strip().lower() == "all":
        return None
    try:
        n = int(threads)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{source}` must be a positive integer or 'all', got {threads!r}"
        ) from None
    if isinstance(threads, bool) or n < 1 or (not isinstance(threads, str) and n != threads):
        raise ValueError(f"`{source}` must be a positive integer or 'all', got {threads!r}")
    return n


@contextlib.contextmanager
def limit_threads(threads: Any = None) -> Iterator[int | None]:
    """Limit BLAS/OpenMP threads inside the block (threadpoolctl); yields the count."""
    n = resolve_threads(threads)
    if n is None:
        yield None
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n):
        yield n
