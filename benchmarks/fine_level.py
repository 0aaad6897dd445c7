"""P5 at the L¹ level 1e-5: the default ``solve(p0, t_end)`` against the fastest fixed steps.

Usage::

    python benchmarks/fine_level.py [--quick] [--out benchmarks/fine_level.md]

``accuracy.py`` measures P5 (Müller–Brown, 2-D, not separable) up to the
level 1e-4: a spatial error below 0.9·1e-5 needs about 1725 cells per axis,
and its reference (1152², Richardson with 576²) refines no such grid. Here
the level is measured on N = 1728 (its own grid, three times 576), which a
sparse LU fits in about 11 GiB.

**Reference on N².** The solution exact in time (the Chebyshev expansion of
``accuracy.py``, independent of the package's steppers) on N² and on a
coarse partner a = N/r, Richardson-extrapolated in h² *on the fine grid*:

    p_ref = p_N + prolong((R_r p_N − p_a)/(r² − 1), r),

where R_r aggregates r×r cells (``problems.restrict``) and ``prolong`` is
the conservative piecewise-quadratic reconstruction (``problems.prolong``,
exact on quadratics). The correction is the grid's own h² error term,
measured on the a-grid; carried to the N-grid it errs by O(h²·H³), below
the O(h⁴) the extrapolation leaves anyway. Two partners (N/2, N/3) give two
references: their L¹ distance is the estimate of the reference's error.
Independent check: the reference aggregated onto 576² against
``accuracy.py``'s cached one there (a different fine grid and partner).

**Options.** The default, saving every step (its own output) and with
``save_at=[]``; then TR-BDF2, Crank–Nicolson and BDF2 with ``save_at=[]``
on the ladder dt = t_end/2^k from the rung that reached 1e-4 in
``accuracy.md`` (a coarser rung's time error alone already exceeded 1e-5
there), each ladder stopping at its first success or when a run took longer
than the default (a finer rung would only take longer). Backward Euler,
the per-step adaptive method and ``exponential`` are not run: at 1e-4 they
took more than twice as long as TR-BDF2 or did not reach it. The fastest
success is run again saving every step, for the comparison with the
default's own output. Each run: once, in a fresh process, one thread
(runs of minutes; the machine's noise is a few per cent there).

``--quick``: the level 1e-2 on N = 96 (partners 48, 32), every ladder from dt = t_end/4.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import accuracy as A  # the sibling modules (benchmarks/ is not a package)
import problems as P

#: (level, N, partners, the accuracy.py setups checked against, first rung k per method)
FULL = (1e-5, 1728, (864, 576), A.FULL, {"tr_bdf2": 5, "crank_nicolson": 6, "bdf2": 6})
QUICK = (1e-2, 96, (48, 32), A.QUICK, {"tr_bdf2": 2, "crank_nicolson": 2, "bdf2": 2})


def corrected(problem: P.Problem, n: int, p_n: np.ndarray, a: int, p_a: np.ndarray):
    """p_n plus its h² error term, measured against partner `a` and prolonged to n."""
    r = n // a
    correction = (P.restrict(p_n, problem.grid(n), r) - p_a) / (r * r - 1)
    return p_n + P.prolong(correction, r)


def compute_reference(problem: P.Problem, n: int, partners: tuple) -> tuple[np.ndarray, dict]:
    """The reference on n² from its exact-in-time solution and two partners."""
    p_n, terms, secs = A.exact_solution(problem, n)
    grid = problem.grid(n)
    refs, info = {}, {"n": n, "partners": list(partners), "terms": terms}
    for a in partners:
        p_a, _, s = A.exact_solution(problem, a)
        secs += s
        refs[a] = corrected(problem, n, p_n, a, p_a)
    first, second = (refs[a] for a in partners)
    info["seconds"] = round(secs, 1)
    info["spread"] = A.l1(grid, first, second)
    info["spatial_error"] = A.l1(grid, p_n, first)
    return first, info


def cross_check(setup: A.Setup, n: int, ref: np.ndarray) -> dict:
    """L¹ distance to accuracy.py's reference, both aggregated onto their finest common grid."""
    problem = setup.problem
    other = A.reference_for(setup, write_cache=False)
    m, a = max((math.gcd(n, a), a) for a in other.arrays)
    ours = P.restrict(ref, problem.grid(n), n // m)
    theirs = P.restrict(other.arrays[a], problem.grid(a), a // m)
    return {"check_grid": m, "check_l1": A.l1(problem.grid(m), ours, theirs)}


def cache_file(problem: P.Problem, n: int) -> Path:
    return A.DATA / "local" / f"fine_level_{problem.name}_{n}.npz"


def reference(problem: P.Problem, n: int, partners: tuple, setups, use_cache: bool):
    """The cached reference (matching the fingerprint of accuracy.py's setup) or a new one."""
    setup = next(s for s in setups if s.name == problem.name)
    key = f"{A.fingerprint(setup)}-{n}-{partners}"
    path = cache_file(problem, n)
    if use_cache and path.exists():
        with np.load(path, allow_pickle=False) as data:
            info = json.loads(str(data["info"]))
            if info.get("key") == key:
                return data["ref"], dict(info, cached=True)
    print(f"{problem.name}: computing the reference on {n}² …", flush=True)
    ref, info = compute_reference(problem, n, partners)
    info.update(cross_check(setup, n, ref), key=key)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, info=json.dumps(info), ref=ref)
    return ref, dict(info, cached=False)


def run(ctx, problem, option: A.Option, ref: np.ndarray, level: float, log) -> dict:
    """One run in a fresh process: wall, ΔRSS, work and L¹ error (or its failure)."""
    r = A.measure(ctx, problem.name, option, timeout=7200)
    if "error" not in r:
        r["l1"] = A.l1(problem.grid(option.n), r.pop("p"), ref)
        r["work"] = A.work_text(r["steps"], r["factorizations"])
        log(f"  {option.describe():38s} {r['wall']:8.1f} s  L1 {r['l1']:.3e}  {r['work']}")
    else:
        log(f"  {option.describe():38s} failed: {r['error']}")
    r["option"] = option
    return r


def ladders(ctx, problem, level, n: int, first: dict, ref, budget: float, log) -> list[dict]:
    """Each method's ladder from its first rung to its first success, within `budget` s a run."""
    runs = []
    for method, k0 in first.items():
        for k in range(k0, 17):
            r = run(ctx, problem, A.Option(method, n, dt=problem.t_end / 2**k), ref, level, log)
            runs.append(r)
            if "error" in r or r["l1"] <= level or r["wall"] > budget:
                break
    return runs


def row(r: dict, level: float) -> str:
    """A table row of one run."""
    o = r["option"]
    output = "every step" if o.family == "default" or o.every_step else "`save_at=[]`"
    if "error" in r:
        return f"| {o.describe()} | {output} | failed: {r['error'][:80]} | | | | |"
    hit = "yes" if r["l1"] <= level else "no"
    return (
        f"| {o.describe()} | {output} | {r['wall']:.1f} | {r['memory']:.0f} | {r['work']} "
        f"| {r['l1']:.2e} | {hit} |"
    )


def verdict(level, default: dict, nosave: dict, best: dict | None, best_out) -> str:
    """The goal line: default / best with the same output."""
    if "error" in default or default["l1"] > level:
        return "The default did not reach the level on this grid."
    if best is None:
        return (
            "No fixed-step option reached the level in less time than the default "
            f"({nosave['wall']:.1f} s with `save_at=[]`): default / best ≤ 1."
        )
    saved = default["wall"] / best_out["wall"] if best_out and "error" not in best_out else None
    bare = nosave["wall"] / best["wall"]
    text = f"**Default / best: {saved:.2f}** saving every step, " if saved else ""
    return text + f"{bare:.2f} with `save_at=[]` (goal ≤ 1.5)."


def reference_text(info: dict, level: float) -> str:
    a, b = info["partners"]
    cached = ", read from the cache" if info["cached"] else ""
    return (
        f"Reference: {info['n']}² exact in time (Chebyshev, {info['terms']} products), "
        f"corrected by its h² error term measured against {a}² and prolonged "
        f"(computed in {info['seconds']:.0f} s{cached}). "
        f"The same correction from {b}² differs by {info['spread']:.1e} (the estimate of "
        f"the reference's error); aggregated onto {info['check_grid']}², it differs from "
        f"`accuracy.py`'s reference there by {info['check_l1']:.1e}. Spatial error of the "
        f"{info['n']}² grid: {info['spatial_error']:.2e} ({info['spatial_error'] / level:.3f} ε)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 96, for the tests")
    parser.add_argument("--out", default=str(HERE / "fine_level.md"))
    args = parser.parse_args(argv)
    level, n, partners, setups, first = QUICK if args.quick else FULL
    problem = P.PROBLEMS["P5"]
    t0 = time.perf_counter()
    ctx = A.fresh_context()  # before this process grows
    ref, info = reference(problem, n, partners, setups, use_cache=not args.quick)
    log = print
    log(reference_text(info, level))
    default = run(ctx, problem, A.Option("default", n), ref, level, log)
    nosave = run(ctx, problem, A.Option("default_nosave", n), ref, level, log)
    budget = nosave.get("wall", 7200.0)
    runs = ladders(ctx, problem, level, n, first, ref, budget, log)
    hits = [r for r in runs if "error" not in r and r["l1"] <= level]
    best = min(hits, key=lambda r: r["wall"]) if hits else None
    best_out = None
    if best is not None:
        best_out = run(ctx, problem, replace(best["option"], every_step=True), ref, level, log)
    table = [
        f"| option | output | wall [s] | ΔRSS [MiB] | work | L¹ error | reaches {level:.0e} |",
        "|---|---|---:|---:|---|---:|---|",
        *(row(r, level) for r in [default, nosave, *runs] + ([best_out] if best_out else [])),
    ]
    lines = [
        f"# P5 at the L¹ level {level:.0e} on {n}²{' (quick)' if args.quick else ''}",
        "",
        f"Machine: {P.machine_line()}. One thread. Each run once, in a fresh process "
        "(building the model and solving); ΔRSS: growth of its peak resident set. "
        "Method: the docstring of `fine_level.py`.",
        "",
        reference_text(info, level),
        "",
        *table,
        "",
        verdict(level, default, nosave, best, best_out),
        "",
        f"Total run time of this script: {time.perf_counter() - t0:.0f} s.",
        "",
    ]
    return P.write_report(args.out, lines)


if __name__ == "__main__":
    raise SystemExit(main())
