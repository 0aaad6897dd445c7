"""Gather the validation notebooks' JSON summaries into ``REPORT.md``.

``run_all.py`` calls :func:`write_report` after running the notebooks. Run
on its own, ``python validation/report.py [OUT]`` rebuilds the report from
the summaries already in ``OUT/results`` (default: the validation folder).

The report has one table with every notebook and its status, then one
section per notebook: its title, notes, each acceptance check with pass or
fail, the acceptance numbers, and links to its figures (relative to the
report, so the folder can be moved or published as is).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent

#: Last lines of a failed notebook's log shown in the report.
LOG_TAIL = 25


class RunLike(Protocol):
    """What the report needs to know about one notebook run."""

    name: str
    returncode: int
    seconds: float
    log: Path | None
    summary: dict | None

    @property
    def passed(self) -> bool: ...


def format_number(value: Any) -> str:
    """Format an acceptance number for a Markdown table."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))  # counts recorded as floats
        if 1e-4 <= abs(value) < 1e6:
            return f"{value:.5g}"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_number(v) for v in value)
    return _cell(value)


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell (``|`` would split the cell)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _version() -> str:
    try:
        from fpsolver import __version__
    except Exception:  # the report must not fail because the package is broken
        return "unknown"
    return __version__


def _log_tail(log: Path | None, out: Path) -> list[str]:
    if log is None or not Path(log).exists():
        return []
    lines = Path(log).read_text(errors="replace").splitlines()[-LOG_TAIL:]
    try:
        shown = Path(log).resolve().relative_to(out.resolve())
    except ValueError:
        shown = Path(log).name
    return [f"Last lines of `{shown}`:", "", "```", *lines, "```", ""]


def _seconds(run: RunLike) -> str:
    return "–" if math.isnan(run.seconds) else f"{run.seconds:.1f}"


def _status(run: RunLike) -> str:
    if run.passed:
        return "passed"
    if run.summary is None:
        return f"FAILED (exit status {run.returncode}, no summary recorded)"
    if run.returncode != 0 and all(run.summary.get("checks", {}).values()):
        return f"FAILED (exit status {run.returncode})"
    return "FAILED"


def render(out: Path, runs: Sequence[RunLike], quick: bool) -> str:
    """The report as Markdown text."""
    out = Path(out)
    n_pass = sum(r.passed for r in runs)
    mode = "quick" if quick else "full"
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# fpsolver validation report",
        "",
        f"{n_pass} of {len(runs)} notebooks passed ({mode} mode; fpsolver {_version()}; {stamp}).",
        "",
        "Each notebook computes its acceptance numbers, asserts them and saves its",
        "figures; this report is written by `validation/run_all.py`.",
        "",
        "| Notebook | Title | Result | Checks | Time (s) |",
        "|---|---|---|---|---|",
    ]
    for r in runs:
        title = (r.summary or {}).get("title", r.name)
        checks = (r.summary or {}).get("checks", {})
        n_ok = sum(bool(v) for v in checks.values())
        lines.append(
            f"| `{r.name}` | {format_number(title)} | "
            f"{'passed' if r.passed else '**FAILED**'} | {n_ok}/{len(checks)} | "
            f"{_seconds(r)} |"
        )
    lines.append("")
    for r in runs:
        summary = r.summary or {}
        title = summary.get("title", r.name)
        lines += [f"## {title}", ""]
        lines += [f"`validation/{r.name}.py`: **{_status(r)}** ({_seconds(r)} s).", ""]
        if summary.get("notes"):
            lines += [str(summary["notes"]).strip(), ""]
        checks = summary.get("checks", {})
        if checks:
            lines += ["| Check | Result |", "|---|---|"]
            lines += [f"| {_cell(k)} | {'pass' if v else '**FAIL**'} |" for k, v in checks.items()]
            lines.append("")
        numbers = summary.get("numbers", {})
        if numbers:
            lines += ["| Quantity | Value |", "|---|---|"]
            lines += [f"| {_cell(k)} | {format_number(v)} |" for k, v in numbers.items()]
            lines.append("")
        for fig in summary.get("figures", []):
            rel = Path("figures") / fig
            if (out / rel).exists():
                lines += [f"![{fig}]({rel.as_posix()})", ""]
            else:
                lines += [f"Figure `{fig}` was recorded but not found.", ""]
        if not r.passed:
            lines += _log_tail(r.log, out)
    return "\n".join(lines).rstrip() + "\n"


def write_report(out: Path, runs: Sequence[RunLike], quick: bool = False) -> Path:
    """Write ``<out>/REPORT.md`` for `runs` and return its path."""
    path = Path(out) / "REPORT.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(out, runs, quick))
    return path


class _Recorded:
    """A run known only from its JSON summary (report rebuilt on its own)."""

    def __init__(self, summary: dict):
        self.name = summary["name"]
        self.summary = summary
        self.returncode = 0
        self.seconds = float("nan")
        self.log = None

    @property
    def passed(self) -> bool:
        return all(self.summary.get("checks", {}).values())


def main(argv: list[str] | None = None) -> int:
    """Rebuild the report from the summaries in ``OUT/results``."""
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else HERE
    summaries = [json.loads(p.read_text()) for p in sorted((out / "results").glob("*.json"))]
    runs = [_Recorded(s) for s in summaries]
    quick = any(s.get("quick") for s in summaries)
    print(write_report(out, runs, quick=quick))
    return 0 if all(r.passed for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
