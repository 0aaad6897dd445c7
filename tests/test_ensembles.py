"""Particle ensembles on Dask workers: the serial result, bit for bit, whatever the workers.

Two LocalClusters (one and two worker processes, one thread each) serve
every test of the module. Equality is ``xarray.Dataset.identical``: every
variable, coordinate and attribute of ``fp.simulate_particles``.
"""

from __future__ import annotations

import logging
import pickle
import sys

import cloudpickle
import numpy as np
import pytest

import fpsolver as fp
from fpsolver.api import ensembles
from fpsolver.api.ensembles import block_ranges, simulate_particles_distributed
from fpsolver.sampling.particles import BLOCK_SIZE

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _cluster(n: int):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.CRITICAL,
    )
    return cluster, Client(cluster)


@pytest.fixture(scope="module")
def clients():
    """{workers: client} for one and two worker processes."""
    made = {n: _cluster(n) for n in (1, 2)}
    try:
        yield {n: client for n, (_, client) in made.items()}
    finally:
        # last opened, first closed: each client restores the dask config it found
        for cluster, client in reversed(list(made.values())):
            client.close()
            cluster.close()


def absorbing_well():
    """2-D double well with an absorbing wall close to the right well: particles exit."""
    grid = fp.Grid(x=(-1.8, 1.4, 32), y=(-1.5, 1.5, 24))
    return fp.FokkerPlanck(
        grid,
        energy=lambda x, y: (x**2 - 1) ** 2 + 0.5 * y**2,
        temperature=0.6,
        boundary={"x": ("reflecting", "absorbing")},
        energy_gradient=lambda x, y: (4 * x * (x * x - 1), y),
    )


def ring():
    """1-D tilted periodic ring with the energy on cells only (interpolated gradient)."""
    grid = fp.Grid(x=(0.0, 1.0, 40), periodic="x")
    x = grid.centers[0]
    return fp.FokkerPlanck(grid, energy=-0.5 * np.cos(2 * np.pi * x), force=[1.0])


CASES = {
    "absorbing 2-D": (absorbing_well, lambda g: fp.gaussian(g, (1.0, 0.0), 0.05)),
    "periodic 1-D": (ring, lambda g: fp.gaussian(g, 0.5, 0.01)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("workers", [1, 2])
def test_distributed_is_the_serial_result_bit_for_bit(clients, case, workers):
    make, density = CASES[case]
    model = make()
    kw = dict(n=5 * BLOCK_SIZE + 77, t_end=0.4, dt=0.01, save_every=0.1, seed=11)
    serial = fp.simulate_particles(model, density(model.grid), **kw)
    dist = simulate_particles_distributed(model, density(model.grid), client=clients[workers], **kw)
    assert dist.identical(serial)
    if case == "absorbing 2-D":
        assert serial.sizes["exit"] > 100  # the exit times came back too


def test_the_grouping_of_blocks_does_not_matter(clients):
    model = absorbing_well()
    p0 = fp.gaussian(model.grid, (1.0, 0.0), 0.05)
    kw = dict(n=4 * BLOCK_SIZE, t_end=0.2, dt=0.01, save_at=[0.05, 0.15], seed=5)
    serial = fp.simulate_particles(model, p0, **kw)
    for tasks in (1, 3, 4):
        got = simulate_particles_distributed(model, p0, client=clients[2], tasks=tasks, **kw)
        assert got.identical(serial), tasks
    here = simulate_particles_distributed(model, p0, tasks=2, **kw)  # client=None: here
    assert here.identical(serial)


def test_positions_as_p0_and_a_seed_sequence(clients):
    model = ring()
    rng = np.random.default_rng(3)
    positions = rng.uniform(0.0, 1.0, size=(2 * BLOCK_SIZE + 5, 1))
    kw = dict(t_end=0.1, dt=0.01, save_every=0.05)
    # spawning is stateful: each run gets its own, equal, SeedSequence
    serial = fp.simulate_particles(model, positions, seed=np.random.SeedSequence(2024), **kw)
    dist = simulate_particles_distributed(
        model, positions, client=clients[2], seed=np.random.SeedSequence(2024), **kw
    )
    assert dist.identical(serial)


def test_no_particle_positions_come_back():
    """A task's result grows with the cells and the saves, not with its particles."""
    model = ring()
    p0 = fp.gaussian(model.grid, 0.5, 0.01)
    spec, children, _, _ = ensembles._prepare(
        model, p0, 8 * BLOCK_SIZE, t_end=0.05, dt=0.01, save_every=None, save_at=None, seed=1
    )
    one = len(pickle.dumps(ensembles._run_range(spec, children[:1], 0)))
    eight = len(pickle.dumps(ensembles._run_range(spec, children, 0)))
    per_block = (eight - one) / 7
    assert per_block < 2000  # a few sums per save, not 8192 positions (65 kB)


def test_bad_arguments_are_refused():
    model = ring()
    p0 = fp.gaussian(model.grid, 0.5, 0.01)
    with pytest.raises(TypeError, match="`model` must be an fpsolver.FokkerPlanck"):
        simulate_particles_distributed("model", p0, n=10)
    with pytest.raises(ValueError, match="`tasks` must be a positive integer, got 0"):
        simulate_particles_distributed(model, p0, n=10, tasks=0)
    with pytest.raises(ValueError, match="`t_end` must be a non-negative finite number"):
        simulate_particles_distributed(model, p0, n=10, t_end=-1.0)
    with pytest.raises(ValueError, match="not both"):
        simulate_particles_distributed(model, p0, n=10, client="local", scheduler="tcp://h:1")
    with pytest.raises(ConnectionError, match="cannot reach the Dask scheduler"):
        simulate_particles_distributed(model, p0, n=10, scheduler="tcp://127.0.0.1:1", timeout=2)


def test_block_ranges_cover_every_block_once():
    for n_blocks in (1, 2, 7, 64):
        for tasks in (1, 3, 8, 100):
            ranges = block_ranges(n_blocks, tasks)
            assert [b for r in ranges for b in r] == list(range(n_blocks))
            assert len(ranges) == min(tasks, n_blocks)
