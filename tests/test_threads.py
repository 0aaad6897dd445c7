"""BLAS/OpenMP threads during solves: one by default, or as asked."""

import pytest
from threadpoolctl import threadpool_info

import fpsolver as fp
from fpsolver.core.threads import ENV, limit_threads, resolve_threads


def test_resolution_order(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert resolve_threads() == 1
    monkeypatch.setenv(ENV, "3")
    assert resolve_threads() == 3 and resolve_threads(2) == 2
    monkeypatch.setenv(ENV, "all")
    assert resolve_threads() is None


@pytest.mark.parametrize("bad", [0, -1, 1.5, "two", True])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match="must be a positive integer or 'all'"):
        resolve_threads(bad)


def test_environment_value_is_checked(monkeypatch):
    monkeypatch.setenv(ENV, "many")
    with pytest.raises(ValueError, match=r"\$FPSOLVER_THREADS"):
        resolve_threads()


def test_limit_applies_inside_the_block_only():
    pools = [p for p in threadpool_info() if p["user_api"] == "blas"]
    if not pools:
        pytest.skip("no BLAS thread pool visible to threadpoolctl")
    before = [p["num_threads"] for p in pools]
    with limit_threads(1):
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
    assert [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"] == before


def test_solve_records_its_thread_count(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    g = fp.Grid(x=(-2, 2, 20))
    m = fp.FokkerPlanck(g, energy=lambda x: x**2)
    p0 = fp.gaussian(g, 0.5, 0.1)
    assert m.solve(p0, 0.1, dt=0.05).attrs["threads"] == 1
    assert m.solve(p0, 0.1, dt=0.05, threads="all").attrs["threads"] == "all"
