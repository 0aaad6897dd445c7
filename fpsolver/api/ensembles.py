"""Particle ensembles, in this process or spread over Dask workers.

:func:`simulate_particles` is the top-level ``fp.simulate_particles``: the
serial :func:`fpsolver.sampling.particles.simulate_particles` when neither
``client`` nor ``scheduler`` is given, and otherwise the same run with its
blocks of :data:`~fpsolver.sampling.particles.BLOCK_SIZE` particles handed
to Dask workers in contiguous ranges. Block ``b`` is seeded by the ``b``-th
child of ``SeedSequence(seed)`` in both, so a seed gives the same particles
whatever the number of workers.

Nothing per particle comes back: each task returns the
:class:`~fpsolver.sampling.particles.BlockSums` of its blocks, the
histogram counts (cells × saved times, integers, summed on the workers in a
tree: exact in any order) and, per block, a few sums per saved time
(survivors, Σx, Σxxᵀ) and the exit times of absorbed particles. The sums
are added in block order on the client, exactly as the serial function adds
them, so the result is bit for bit that of the serial run.
"""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.model import Model
from ..sampling import particles as _pt
from ..sampling.particles import BLOCK_SIZE, BlockSums, ParticleBlocks
from .cluster import CONNECT_TIMEOUT, dask_client, import_distributed, shippable, worker_count

__all__ = ["simulate_particles", "simulate_particles_distributed", "block_ranges"]

#: Ranges of blocks per worker thread: enough to balance uneven workers.
TASKS_PER_WORKER = 4


def block_ranges(n_blocks: int, tasks: int) -> list[range]:
    """Split ``range(n_blocks)`` into at most `tasks` contiguous, near-equal ranges.

    Examples
    --------
    >>> [list(r) for r in block_ranges(5, 2)]
    [[0, 1], [2, 3, 4]]
    >>> len(block_ranges(3, 8))
    3
    """
    tasks = max(1, min(int(tasks), n_blocks))
    edges = np.linspace(0, n_blocks, tasks + 1).round().astype(int)
    return [range(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _run_range(run: ParticleBlocks, first: int, stop: int) -> BlockSums:
    """A task: simulate blocks ``first … stop − 1`` where it runs; their sums."""
    return run.run(first, stop)


def _merge(a: BlockSums, b: BlockSums) -> BlockSums:
    return a + b


def _identity(obj: Any) -> Any:
    return obj


def _bar(total: int, progress: bool | None) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="particle blocks", unit="block")


def _on_dask(client: Any, run: ParticleBlocks, ranges: list[range], progress) -> BlockSums:
    """Run the ranges as tasks; merge their sums on the workers, pairwise."""
    distributed = import_distributed()
    ship = copy.copy(run)
    ship.model = shippable(run.model)
    # a task, not scattered data: the scheduler recomputes it if its worker dies
    run_future = client.submit(_identity, ship, pure=False)
    leaves = [client.submit(_run_range, run_future, r.start, r.stop, pure=False) for r in ranges]
    level = list(leaves)
    while len(level) > 1:
        pairs = [
            client.submit(_merge, *level[i : i + 2], pure=False)
            for i in range(0, len(level) - 1, 2)
        ]
        level = pairs + level[len(level) - len(level) % 2 :]
    bar = _bar(run.n_blocks, progress)
    try:
        if bar is not None:
            sizes = {f.key: len(r) for f, r in zip(leaves, ranges)}
            for fut in distributed.as_completed(leaves):
                bar.update(sizes[fut.key])
        return level[0].result()
    except distributed.KilledWorker as err:
        raise RuntimeError(
            f"a Dask worker died while simulating particle blocks ({err}); the blocks were "
            "retried on other workers until the scheduler's limit "
            "(distributed.scheduler.allowed-failures); check the workers' memory"
        ) from None
    finally:
        if bar is not None:
            bar.close()
        del run_future, leaves, level  # released on the workers once unreferenced


def simulate_particles(
    model: Model,
    p0: Any,
    n: int | None = None,
    *,
    t_end: float = 1.0,
    dt: float = 1e-3,
    save_every: float | None = None,
    save_at: Sequence[float] | None = None,
    seed: int | np.random.SeedSequence | None = None,
    batch_size: int = 16 * BLOCK_SIZE,
    workers: int = 1,
    progress: bool | None = None,
    client: Any = None,
    scheduler: str | None = None,
    tasks: int | None = None,
    timeout: float = CONNECT_TIMEOUT,
):
    # the docstring is the serial function's, with the Dask arguments added (below)
    if tasks is not None:
        _pt._count(tasks, "tasks")
    if getattr(model, "time_dependent", False):
        unsupported = {"save_at": save_at, "workers": workers != 1, "client": client,
                       "scheduler": scheduler}  # fmt: skip
        return _protocol_particles(model, p0, n, t_end, dt, seed, save_every, unsupported)
    if client is None and scheduler is None:
        return _pt.simulate_particles(
            model, p0, n, t_end=t_end, dt=dt, save_every=save_every, save_at=save_at,
            seed=seed, batch_size=batch_size, workers=workers, progress=progress,
        )  # fmt: skip
    _pt._count(batch_size, "batch_size")
    _pt._count(workers, "workers")
    run = ParticleBlocks(
        model, p0, n, t_end=t_end, dt=dt, save_every=save_every, save_at=save_at, seed=seed
    )
    with dask_client(client, scheduler, timeout=timeout) as dask:
        ranges = block_ranges(run.n_blocks, tasks or TASKS_PER_WORKER * worker_count(dask))
        sums = _on_dask(dask, run, ranges, progress)
    return run.dataset(sums)


def _protocol_particles(model, p0, n, t_end, dt, seed, save_every, unsupported: dict):
    """A time-dependent model: its own particle run, which records the work."""
    for key, value in unsupported.items():
        if value is not None and value is not False:
            raise NotImplementedError(
                f"`{key}` is not supported for the particles of a time-dependent model (they "
                "run on one machine, in one process, saving every `save_every`)"
            )
    if n is None:
        raise ValueError("`n` (the number of particles) is required for a time-dependent model")
    return model.simulate_particles(p0, n, t_end, dt, seed=seed, save_every=save_every)


_DASK_SUMMARY = """\
With `client` or `scheduler`, the particle blocks run as Dask tasks on
the workers, which reduce them to histogram counts and a few sums per
saved time: no particle position leaves a worker, and the result is bit
for bit the one without them, whatever the number of workers."""

_DASK_PARAMETERS = """\
client : distributed.Client, "local" or None
    Run the blocks on this Dask client's workers, or ``"local"``: on a
    LocalCluster of one process per core, started and closed here. None
    (and no `scheduler`): in this process. Dask is the optional extra
    ``pip install "fpsolver[dask]"``.
scheduler : str, optional
    Address of a running Dask scheduler (``"tcp://host:8786"``), instead
    of `client`.
tasks : int, optional
    With Dask: ranges of blocks to hand out (default four per worker
    thread, at most one per block); `batch_size` and `workers` apply in
    this process only. Results depend on none of them.
timeout : float
    Seconds to wait for the scheduler before a ConnectionError."""

_DASK_RAISES = """\
Raises
------
ImportError
    With `client` or `scheduler` when Dask is not installed.
ConnectionError
    When the scheduler does not answer within `timeout` seconds (one
    line naming the address and the timeout; no hang).
RuntimeError
    When Dask workers keep dying on the same blocks (each is retried on
    another worker up to ``distributed.scheduler.allowed-failures``)."""

_DASK_EXAMPLES = """\
>>> fp.simulate_particles(model, fp.gaussian(grid, 2.0, 0.25), n=4000,
...                       scheduler="tcp://127.0.0.1:1", timeout=1)
Traceback (most recent call last):
...
ConnectionError: cannot reach the Dask scheduler at ... within 1 s ..."""


def _section(doc: str, title: str) -> int:
    """Where the numpydoc section `title` starts in `doc` (its end when absent)."""
    at = doc.find(f"\n{title}\n{'-' * len(title)}\n")
    return len(doc) if at < 0 else at + 1


def _with_dask(doc: str) -> str:
    """The serial function's docstring with the Dask summary, arguments, errors, example."""
    doc = inspect.cleandoc(doc)
    summary_end = doc.find("\n\n") + 2
    doc = doc[:summary_end] + _DASK_SUMMARY + "\n\n" + doc[summary_end:]
    returns = _section(doc, "Returns")
    doc = doc[:returns] + _DASK_PARAMETERS + "\n\n" + doc[returns:]
    notes = min(_section(doc, "Notes"), _section(doc, "References"), _section(doc, "Examples"))
    doc = doc[:notes] + _DASK_RAISES + "\n\n" + doc[notes:]
    return doc.rstrip() + "\n" + _DASK_EXAMPLES + "\n"


simulate_particles.__doc__ = _with_dask(_pt.simulate_particles.__doc__ or "")


def simulate_particles_distributed(
    model: Model,
    p0: Any,
    n: int | None = None,
    *,
    t_end: float = 1.0,
    dt: float = 1e-3,
    save_every: float | None = None,
    save_at: Sequence[float] | None = None,
    seed: int | np.random.SeedSequence | None = None,
    client: Any = None,
    scheduler: str | None = None,
    tasks: int | None = None,
    progress: bool | None = None,
    timeout: float = CONNECT_TIMEOUT,
):
    """Deprecated: :func:`fpsolver.simulate_particles` takes `client` and `scheduler`.

    Kept for one release; the same arguments give the same result.

    Examples
    --------
    >>> import warnings, fpsolver as fp
    >>> grid = fp.Grid(x=(-5, 5, 50))
    >>> model = fp.FokkerPlanck(grid, energy=lambda x: 0.5 * x**2)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     a = simulate_particles_distributed(model, fp.gaussian(grid, 2.0, 0.25), n=100, seed=1)
    >>> caught[0].category.__name__
    'DeprecationWarning'
    """
    warnings.warn(
        "fp.simulate_particles_distributed is deprecated and will be removed in the next "
        "release: call fp.simulate_particles(..., client=..., scheduler=...)",
        DeprecationWarning,
        stacklevel=2,
    )
    return simulate_particles(
        model, p0, n, t_end=t_end, dt=dt, save_every=save_every, save_at=save_at, seed=seed,
        progress=progress, client=client, scheduler=scheduler, tasks=tasks, timeout=timeout,
    )  # fmt: skip
