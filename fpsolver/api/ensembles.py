"""Particle ensembles spread over Dask workers, reduced where they run.

:func:`simulate_particles_distributed` is :func:`fpsolver.simulate_particles`
with its blocks of :data:`~fpsolver.sampling.particles.BLOCK_SIZE` particles
handed to Dask workers in contiguous ranges. Block ``b`` is seeded by the
``b``-th child of ``SeedSequence(seed)``, as in the serial function, so a
seed gives the same particles whatever the number of workers.

Nothing per particle comes back: each task returns the histogram counts of
its blocks (cells × saved times, integers, summed on the workers in a tree:
exact in any order) and, per block, a few sums per saved time (survivors,
Σx, Σxxᵀ) and the exit times of absorbed particles. The sums are added in
block order on the client, exactly as the serial function adds them, so
the result is bit for bit that of ``fp.simulate_particles`` with the same
arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.model import Model
from ..core.schedule import positive
from ..sampling import particles as _pt
from .cluster import CONNECT_TIMEOUT, dask_client, import_distributed, shippable, worker_count

__all__ = ["simulate_particles_distributed", "block_ranges"]

#: Ranges of blocks per worker thread: enough to balance uneven workers.
TASKS_PER_WORKER = 4


@dataclass
class _Spec:
    """What every task needs to rebuild the plan (sent to each worker once)."""

    model: Model
    steps: np.ndarray
    ends: np.ndarray
    save_after: np.ndarray
    n: int
    init_cdf: np.ndarray | None
    init_positions: np.ndarray | None


@dataclass
class _Partial:
    """The reductions of some blocks: summed counts, small sums per block."""

    counts: np.ndarray  # (nsave, cells), int64
    blocks: dict[int, tuple[np.ndarray, ...]]  # b -> alive, sum_x, sum_xx, exit_time, exit_wall


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


def _run_range(spec: _Spec, children: Sequence[np.random.SeedSequence], first: int) -> _Partial:
    """Simulate blocks ``first, first + 1, …`` (one per seed in `children`); reduce them."""
    plan = _pt._Plan(
        spec.model,
        _pt._Dynamics(spec.model),
        _pt._Walls.of(spec.model),
        spec.steps,
        spec.ends,
        spec.save_after,
        spec.n,
        spec.init_cdf,
        spec.init_positions,
    )
    size, nsave = spec.model.grid.size, spec.save_after.size
    counts = np.zeros((nsave, size), dtype=np.int64)
    blocks = {}
    for offset, child in enumerate(children):
        b = first + offset
        r = _pt._run_block(plan, b, child)
        for s in range(nsave):
            counts[s] += np.bincount(r.cells[s], minlength=size)
        blocks[b] = (r.alive, r.sum_x, r.sum_xx, r.exit_time, r.exit_wall)
    return _Partial(counts, blocks)


def _merge(a: _Partial, b: _Partial) -> _Partial:
    """Two partial reductions as one (counts are integers: exact in any order)."""
    return _Partial(a.counts + b.counts, {**a.blocks, **b.blocks})


def _check_args(model: Any, t_end: Any, dt: Any, tasks: Any) -> tuple[float, float]:
    if not isinstance(model, Model):
        raise TypeError(f"`model` must be an fpsolver.FokkerPlanck, got {type(model).__name__}")
    dt = positive(dt, "dt")
    if not (isinstance(t_end, (int, float, np.floating)) and np.isfinite(t_end) and t_end >= 0):
        raise ValueError(f"`t_end` must be a non-negative finite number, got {t_end!r}")
    if tasks is not None:
        _pt._count(tasks, "tasks")
    return float(t_end), dt


def _prepare(model, p0, n, *, t_end, dt, save_every, save_at, seed):
    """The serial function's validation and plan: (spec, seeds, times, attrs)."""
    steps, ends, save_after, times = _pt._plan_steps(t_end, dt, save_every, save_at)
    n, init_cdf, init_positions = _pt._initial_state(model.grid, p0, n)
    _pt._warn_if_stiff(model, dt, _pt._start_density(model.grid, init_cdf, init_positions))
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    children = ss.spawn(-(-n // _pt.BLOCK_SIZE))
    spec = _Spec(model, steps, ends, save_after, n, init_cdf, init_positions)
    attrs = _pt._result_attrs(model, n, dt, t_end, ss, _pt._Dynamics(model).gradient_source)
    return spec, children, times, attrs


def _bar(total: int, progress: bool | None) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="particle blocks", unit="block")


def _serial(spec: _Spec, children: list, ranges: list[range], progress: bool | None) -> _Partial:
    bar = _bar(len(children), progress)
    try:
        total = None
        for r in ranges:
            part = _run_range(spec, children[r.start : r.stop], r.start)
            total = part if total is None else _merge(total, part)
            if bar is not None:
                bar.update(len(r))
    finally:
        if bar is not None:
            bar.close()
    return total


def _identity(obj: Any) -> Any:
    return obj


def _distributed(client, spec: _Spec, children: list, ranges: list[range], progress) -> _Partial:
    """Run the ranges as tasks; merge their partials on the workers, pairwise."""
    distributed = import_distributed()
    # a task, not scattered data: the scheduler recomputes it if its worker dies
    spec_future = client.submit(_identity, spec, pure=False)
    leaves = [
        client.submit(_run_range, spec_future, children[r.start : r.stop], r.start, pure=False)
        for r in ranges
    ]
    level = list(leaves)
    while len(level) > 1:
        pairs = [
            client.submit(_merge, *level[i : i + 2], pure=False)
            for i in range(0, len(level) - 1, 2)
        ]
        level = pairs + level[len(level) - len(level) % 2 :]
    bar = _bar(len(children), progress)
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
        del spec_future, leaves, level  # released on the workers once unreferenced


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
    """:func:`fpsolver.simulate_particles` with its particle blocks spread over Dask workers.

    The same particles, step for step, as the serial function, and the
    same result bit for bit, whatever the number of workers: see
    :func:`fpsolver.simulate_particles` for the model, the arguments shared
    with it and the result. Each worker reduces its blocks to histogram
    counts and a few sums per saved time; no particle position leaves a
    worker.

    Parameters
    ----------
    model : FokkerPlanck
    p0 : density or positions
    n : int, optional
    t_end, dt, save_every, save_at, seed
        As for :func:`fpsolver.simulate_particles`.
    client : distributed.Client, "local" or None
        Where to run: a Dask client, ``"local"`` (a LocalCluster of one
        process per core, started and closed here) or None (this process,
        one block after another).
    scheduler : str, optional
        Address of a running Dask scheduler (``"tcp://host:8786"``),
        instead of `client`.
    tasks : int, optional
        Ranges of blocks to hand out (default: four per worker thread, at
        most one per block). Results do not depend on it.
    progress : bool, optional
        Show a progress bar over blocks (tqdm).
    timeout : float
        Seconds to wait for the scheduler before a ConnectionError.

    Returns
    -------
    xarray.Dataset
        As :func:`fpsolver.simulate_particles` returns it.

    Raises
    ------
    ImportError
        With `client` or `scheduler` when Dask is not installed
        (``pip install "fpsolver[dask]"``).
    ConnectionError
        When the scheduler does not answer within `timeout` seconds.
    RuntimeError
        When workers keep dying on the same blocks.

    Examples
    --------
    >>> import fpsolver as fp
    >>> grid = fp.Grid(x=(-5, 5, 50))
    >>> model = fp.FokkerPlanck(grid, energy=lambda x: 0.5 * x**2)
    >>> p0 = fp.gaussian(grid, 2.0, 0.25)
    >>> kw = dict(n=20_000, t_end=0.2, dt=0.01, save_every=0.1, seed=1)
    >>> a = simulate_particles_distributed(model, p0, **kw)   # client=None: here
    >>> b = fp.simulate_particles(model, p0, **kw)
    >>> a.identical(b)
    True
    """
    t_end, dt = _check_args(model, t_end, dt, tasks)
    spec, children, times, attrs = _prepare(
        model, p0, n, t_end=t_end, dt=dt, save_every=save_every, save_at=save_at, seed=seed
    )
    with dask_client(client, scheduler, timeout=timeout) as dask:
        if dask is None:
            ranges = block_ranges(len(children), tasks or len(children))
            total = _serial(spec, children, ranges, progress)
        else:
            spec.model = shippable(model)
            ranges = block_ranges(len(children), tasks or TASKS_PER_WORKER * worker_count(dask))
            total = _distributed(dask, spec, children, ranges, progress)
    results = [_pt._BlockResult([], *total.blocks[b]) for b in range(len(children))]
    return _pt._particle_dataset(model, times, total.counts, results, attrs)
