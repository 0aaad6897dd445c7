"""Run every validation notebook and write ``REPORT.md``.

Usage::

    python validation/run_all.py            # full mode, report in validation/
    python validation/run_all.py --quick    # quick mode (CI, test suite)
    python validation/run_all.py --quick --out val-out --only convergence

Each notebook (a jupytext percent script ``validation/<name>.py``) runs in
its own Python process with ``FPSOLVER_VALIDATION_OUT`` pointing at the output
folder (and ``FPSOLVER_QUICK=1`` with ``--quick``). A notebook asserts its own
acceptance checks and records a JSON summary under ``<out>/results/`` through
``_common.record``; its output goes to ``<out>/logs/<name>.log``. This script
then gathers the summaries into ``<out>/REPORT.md`` (see ``report.py``) and
exits with status 1 if any notebook failed, 0 otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _sibling(name: str):
    """Import ``validation/<name>.py`` without touching ``sys.path``."""
    spec = importlib.util.spec_from_file_location(
        f"fpsolver_validation_{name}", HERE / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


report = _sibling("report")

#: Files in ``validation/`` that are plumbing, not notebooks.
NOT_NOTEBOOKS = {"_common", "run_all", "report"}


@dataclass
class Run:
    """Outcome of one notebook run."""

    name: str
    returncode: int
    seconds: float
    log: Path
    summary: dict | None

    @property
    def passed(self) -> bool:
        """True when the process succeeded and every recorded check passed."""
        if self.returncode != 0 or self.summary is None:
            return False
        return all(self.summary.get("checks", {}).values())


def find_notebooks(folder: Path = HERE) -> list[Path]:
    """The validation notebooks in `folder`, sorted by name."""
    return sorted(
        p
        for p in Path(folder).glob("*.py")
        if p.stem not in NOT_NOTEBOOKS and not p.stem.startswith(("_", "."))
    )


def run_notebook(path: Path, out: Path, quick: bool, timeout: float | None) -> Run:
    """Run one notebook as a script in its own process and read its summary."""
    out = Path(out).resolve()
    summary_path = out / "results" / f"{path.stem}.json"
    summary_path.unlink(missing_ok=True)  # never report a stale summary
    log = out / "logs" / f"{path.stem}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["FPSOLVER_VALIDATION_OUT"] = str(out)
    env["FPSOLVER_QUICK"] = "1" if quick else "0"
    env.setdefault("MPLBACKEND", "Agg")
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), *filter(None, [env.get("PYTHONPATH")])])
    start = time.perf_counter()
    with log.open("w") as fh:
        try:
            proc = subprocess.run(
                [sys.executable, str(Path(path).resolve())],
                cwd=Path(path).resolve().parent,
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
            returncode = proc.returncode
        except subprocess.TimeoutExpired:
            fh.write(f"\n[run_all] timed out after {timeout} s\n")
            returncode = -1
    seconds = time.perf_counter() - start
    summary = None
    if summary_path.exists():
        try:
            summary = json.loads(summary_path.read_text())
        except json.JSONDecodeError as err:
            with log.open("a") as fh:
                fh.write(f"\n[run_all] unreadable summary {summary_path.name}: {err}\n")
    return Run(path.stem, returncode, seconds, log, summary)


def main(argv: list[str] | None = None) -> int:
    """Run the notebooks, write the report; return 0 if all passed, else 1."""
    parser = argparse.ArgumentParser(
        prog="run_all", description="Run the validation notebooks and write REPORT.md."
    )
    parser.add_argument("--quick", action="store_true", help="quick mode (FPSOLVER_QUICK=1)")
    parser.add_argument(
        "--out", type=Path, default=HERE, help="output folder (default: the validation folder)"
    )
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="run only these notebooks (file stems)"
    )
    parser.add_argument("--notebooks", type=Path, default=HERE, help="folder holding the notebooks")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at once (default 1)")
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds allowed per notebook (default: none)"
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")

    notebooks = find_notebooks(args.notebooks)
    if args.only:
        known = {p.stem for p in notebooks}
        unknown = sorted(set(args.only) - known)
        if unknown:
            parser.error(
                f"--only: unknown notebook(s) {unknown}; available: {sorted(known) or 'none'}"
            )
        notebooks = [p for p in notebooks if p.stem in set(args.only)]

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    mode = "quick" if args.quick else "full"
    print(f"validation ({mode} mode): {len(notebooks)} notebook(s), output in {out}")

    def one(path: Path) -> Run:
        run = run_notebook(path, out, args.quick, args.timeout)
        status = "passed" if run.passed else "FAILED"
        print(f"  {run.name:<24s} {status:<7s} {run.seconds:7.1f} s", flush=True)
        return run

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = list(pool.map(one, notebooks))

    path = report.write_report(out, runs, quick=args.quick)
    failed = [r.name for r in runs if not r.passed]
    print(f"report: {path}")
    if failed:
        print(f"failed: {', '.join(failed)} (logs in {out / 'logs'})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
