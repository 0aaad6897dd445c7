"""Shared plumbing for the validation notebooks (jupytext percent scripts).

Each notebook computes its acceptance numbers, asserts them, saves its
figures and records a JSON summary that ``validation/report.py`` gathers
into ``REPORT.md``.

Environment:
- ``FPSOLVER_QUICK=1``: quick mode (coarser grids, fewer particles), used
  by the test suite and CI.
- ``FPSOLVER_VALIDATION_OUT``: folder for figures and results (default: the
  ``validation`` folder itself, i.e. ``figures/`` and ``results/`` here).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def quick() -> bool:
    """Whether the notebook should run in quick mode."""
    return os.environ.get("FPSOLVER_QUICK", "0") == "1"


def out_dir() -> Path:
    """Root folder for this run's figures and results."""
    return Path(os.environ.get("FPSOLVER_VALIDATION_OUT", HERE))


def figure_path(name: str) -> Path:
    """Where to save figure `name` (a file name such as ``"orders.png"``)."""
    path = out_dir() / "figures" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def record(
    name: str,
    title: str,
    numbers: dict[str, Any],
    checks: dict[str, bool],
    figures: list[Path],
    notes: str = "",
) -> Path:
    """Write the notebook's summary and fail loudly if a check failed.

    Parameters
    ----------
    name : str
        Short identifier (the notebook's file stem).
    title : str
        Human-readable title for the report.
    numbers : dict
        Acceptance numbers (floats, ints or short strings).
    checks : dict of bool
        Named acceptance checks; all must be True.
    figures : list of Path
        Figures saved by the notebook.
    notes : str
        One paragraph on what was done and how to read the numbers.
    """
    path = out_dir() / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "name": name,
        "title": title,
        "quick": quick(),
        "numbers": {k: (float(v) if hasattr(v, "__float__") else v) for k, v in numbers.items()},
        "checks": {k: bool(v) for k, v in checks.items()},
        "figures": [str(Path(f).name) for f in figures],
        "notes": notes,
    }
    path.write_text(json.dumps(payload, indent=2))
    failed = [k for k, ok in checks.items() if not ok]
    assert not failed, f"{name}: acceptance checks failed: {failed}; numbers: {numbers}"
    return path
