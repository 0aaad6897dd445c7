"""Particle ensembles on Dask workers: the serial result, bit for bit, whatever the workers.

One LocalCluster serves every test of the module: four worker processes,
one thread each, scaled down to two and one where a test asks for fewer.
Its scheduler gives up on a task after its worker died twice
(``allowed-failures`` = 1), so the test of a block that kills its worker
stays short. Equality is ``xarray.Dataset.identical``: every variable
(histograms, moments, exit times), coordinate and attribute.
"""

from __future__ import annotations

import inspect
import logging
import os
import pickle
import sys
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

import fpsolver as fp
from fpsolver.api import ensembles
from fpsolver.api.ensembles import block_ranges, simulate_particles_distributed
from fpsolver.sampling import particles as serial_particles
from fpsolver.sampling.particles import BLOCK_SIZE, ParticleBlocks

# the workers get this module's functions by value: they need not import it
cloudpickle.register_pickle_by_value(sys.modules[__name__])

#: This process: a model below kills only the worker processes.
MAIN_PID = os.getpid()


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of four worker processes and its client."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        local = LocalCluster(
            n_workers=4,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,
        )
        client = Client(local)
    try:
        yield local, client
    finally:
        client.close()
        local.close()


def on_workers(cluster, n: int):
    """The module's client with exactly `n` worker processes."""
    local, client = cluster
    local.scale(n)
    deadline = time.monotonic() + 60
    while len(client.scheduler_info()["workers"]) != n:
        assert time.monotonic() < deadline, f"the cluster did not reach {n} workers"
        time.sleep(0.05)
    assert sum(client.nthreads().values()) == n
    return client


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


KW = dict(n=5 * BLOCK_SIZE + 77, t_end=0.1, dt=0.01, save_every=0.05, seed=11)


def test_without_a_client_it_is_the_serial_function_bit_for_bit():
    model = absorbing_well()
    p0 = fp.gaussian(model.grid, (1.0, 0.0), 0.05)
    for extra in ({}, {"workers": 2, "batch_size": BLOCK_SIZE}):
        before = serial_particles.simulate_particles(model, p0, **KW, **extra)
        assert fp.simulate_particles(model, p0, **KW, **extra).identical(before)


def test_the_signature_is_the_serial_one_plus_the_dask_arguments():
    serial = inspect.signature(serial_particles.simulate_particles).parameters
    ours = inspect.signature(fp.simulate_particles).parameters
    assert list(ours) == [*serial, "client", "scheduler", "tasks", "timeout"]
    for name, parameter in serial.items():
        assert ours[name].default == parameter.default and ours[name].kind == parameter.kind
    assert ours["client"].default is None and ours["scheduler"].default is None
    for name in ours:  # every argument documented, the serial text kept
        assert f"\n{name} :" in fp.simulate_particles.__doc__ or f", {name}" in (
            fp.simulate_particles.__doc__
        ), name
    assert inspect.cleandoc(serial_particles.simulate_particles.__doc__).split("\n")[0] in (
        fp.simulate_particles.__doc__
    )


def test_the_same_seed_gives_the_same_result_serially_and_on_4_2_1_workers(cluster):
    """Histograms, moments, free energies and exit times, bit for bit."""
    serial = {}
    for case, (make, density) in CASES.items():
        model = make()
        serial[case] = fp.simulate_particles(model, density(model.grid), **KW)
    assert serial["absorbing 2-D"].sizes["exit"] > 100  # the exit times come back too
    for workers in (4, 2, 1):
        client = on_workers(cluster, workers)
        for case, (make, density) in CASES.items():
            model = make()
            got = fp.simulate_particles(model, density(model.grid), client=client, **KW)
            assert got.identical(serial[case]), (case, workers)


def test_the_grouping_of_blocks_does_not_matter(cluster):
    client = on_workers(cluster, 2)
    model = absorbing_well()
    p0 = fp.gaussian(model.grid, (1.0, 0.0), 0.05)
    kw = dict(n=4 * BLOCK_SIZE, t_end=0.2, dt=0.01, save_at=[0.05, 0.15], seed=5)
    serial = fp.simulate_particles(model, p0, **kw)
    for tasks in (1, 3, 4):
        got = fp.simulate_particles(model, p0, client=client, tasks=tasks, **kw)
        assert got.identical(serial), tasks
    run = ParticleBlocks(model, p0, **kw)
    sums = run.run(3, 4) + run.run(0, 1) + run.run(1, 3)  # any grouping, any order
    assert run.dataset(sums).identical(serial)
    copied = cloudpickle.loads(cloudpickle.dumps(run))  # as a worker gets it
    assert copied.dataset(copied.run(0, 4)).identical(serial)
    with pytest.raises(ValueError, match="the sums lack 1 block"):
        run.dataset(run.run(0, 3))
    with pytest.raises(ValueError, match="outside 0..4"):
        run.run(2, 5)


def test_positions_as_p0_and_a_seed_sequence(cluster):
    client = on_workers(cluster, 2)
    model = ring()
    rng = np.random.default_rng(3)
    positions = rng.uniform(0.0, 1.0, size=(2 * BLOCK_SIZE + 5, 1))
    kw = dict(t_end=0.1, dt=0.01, save_every=0.05)
    # spawning is stateful: each run gets its own, equal, SeedSequence
    serial = fp.simulate_particles(model, positions, seed=np.random.SeedSequence(2024), **kw)
    parent = np.random.SeedSequence(2024)
    dist = fp.simulate_particles(model, positions, client=client, seed=parent, **kw)
    assert dist.identical(serial)
    # the parent moved on as the serial run moves it: a second run is another one
    assert parent.n_children_spawned == 3


def _dies_in_a_worker(marker: str | None):
    """A double well whose gradient kills the worker process calling it: once (the
    first time, `marker` not yet there) or, with no marker, always."""

    def gradient(x, y):
        if os.getpid() != MAIN_PID and (marker is None or not os.path.exists(marker)):
            if marker is not None:
                Path(marker).touch()
            os._exit(1)
        return 4 * x * (x * x - 1), y

    model = absorbing_well()
    return fp.FokkerPlanck(
        model.grid,
        energy=lambda x, y: (x**2 - 1) ** 2 + 0.5 * y**2,
        temperature=0.6,
        boundary={"x": ("reflecting", "absorbing")},
        energy_gradient=gradient,
    )


def test_blocks_whose_worker_dies_are_retried_or_reported(cluster, tmp_path):
    client = on_workers(cluster, 2)
    kw = dict(n=2 * BLOCK_SIZE, t_end=0.05, dt=0.01, seed=8)
    model = _dies_in_a_worker(str(tmp_path / "died"))
    p0 = fp.gaussian(model.grid, (1.0, 0.0), 0.05)
    start = time.perf_counter()
    got = fp.simulate_particles(model, p0, client=client, tasks=2, **kw)
    assert (tmp_path / "died").exists()  # a worker did die
    assert got.identical(fp.simulate_particles(model, p0, **kw))  # its blocks were rerun
    with pytest.raises(RuntimeError, match="a Dask worker died while simulating particle"):
        fp.simulate_particles(_dies_in_a_worker(None), p0, client=client, tasks=1, **kw)
    assert time.perf_counter() - start < 30
    client.wait_for_workers(2, timeout=30)


def test_no_particle_positions_come_back():
    """A task's result grows with the cells and the saves, not with its particles."""
    model = ring()
    p0 = fp.gaussian(model.grid, 0.5, 0.01)
    run = ParticleBlocks(model, p0, 8 * BLOCK_SIZE, t_end=0.05, dt=0.01, seed=1)
    one = len(pickle.dumps(ensembles._run_range(run, 0, 1)))
    eight = len(pickle.dumps(ensembles._run_range(run, 0, 8)))
    per_block = (eight - one) / 7
    assert per_block < 2000  # a few sums per save, not 8192 positions (65 kB)


def test_bad_arguments_are_refused_before_connecting():
    model = ring()
    p0 = fp.gaussian(model.grid, 0.5, 0.01)
    nowhere = {"scheduler": "tcp://127.0.0.1:1", "timeout": 2}
    with pytest.raises(TypeError, match="`model` must be an fpsolver.FokkerPlanck"):
        fp.simulate_particles("model", p0, n=10, **nowhere)
    with pytest.raises(ValueError, match="`tasks` must be a positive integer, got 0"):
        fp.simulate_particles(model, p0, n=10, tasks=0, **nowhere)
    with pytest.raises(ValueError, match="`t_end` must be a non-negative finite number"):
        fp.simulate_particles(model, p0, n=10, t_end=-1.0, **nowhere)
    with pytest.raises(ValueError, match="`workers` must be a positive integer"):
        fp.simulate_particles(model, p0, n=10, workers=0, **nowhere)
    with pytest.raises(ValueError, match="not both"):
        fp.simulate_particles(model, p0, n=10, client="local", scheduler="tcp://h:1")
    with pytest.raises(ValueError, match='"local" or None'):
        fp.simulate_particles(model, p0, n=10, client="tcp://127.0.0.1:1")


def test_an_unreachable_scheduler_is_one_clear_error_within_the_timeout():
    model = ring()
    p0 = fp.gaussian(model.grid, 0.5, 0.01)
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"cannot reach the Dask scheduler at .* within 2 s"):
        fp.simulate_particles(model, p0, n=10, scheduler="tcp://127.0.0.1:1", timeout=2)
    assert time.perf_counter() - start < 4


def test_without_dask_the_error_says_how_to_install_it(monkeypatch):
    model = ring()
    p0 = fp.gaussian(model.grid, 0.5, 0.01)
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r'pip install "fpsolver\[dask\]"'):
        fp.simulate_particles(model, p0, n=10, client="local")
    assert fp.simulate_particles(model, p0, n=10, seed=0).attrs["n"] == 10  # serial: no Dask


def test_simulate_particles_distributed_is_deprecated_and_gives_the_same_result():
    model = ring()
    p0 = fp.gaussian(model.grid, 0.5, 0.01)
    kw = dict(n=BLOCK_SIZE + 3, t_end=0.05, dt=0.01, seed=2)
    with pytest.warns(DeprecationWarning, match=r"fp.simulate_particles\(\.\.\., client="):
        old = simulate_particles_distributed(model, p0, tasks=2, **kw)
    assert old.identical(fp.simulate_particles(model, p0, **kw))


def test_block_ranges_cover_every_block_once():
    for n_blocks in (1, 2, 7, 64):
        for tasks in (1, 3, 8, 100):
            ranges = block_ranges(n_blocks, tasks)
            assert [b for r in ranges for b in r] == list(range(n_blocks))
            assert len(ranges) == min(tasks, n_blocks)
