"""The validation runner and report, and every notebook in quick mode."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

VALIDATION = Path(__file__).resolve().parents[1] / "validation"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_validation_{name}", VALIDATION / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


run_all = _load("run_all")
report = _load("report")

NOTEBOOKS = [p.stem for p in run_all.find_notebooks()]

PASSING = """
from _common import figure_path, record
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
ax.plot([0, 1], [0, 1])
fig.savefig(figure_path("line.png"))
record("good", "A passing notebook", {"error": 1.5e-9, "order": 2.01, "n": 64},
       {"order above 1.9": True, "max |z| below 4": True}, [figure_path("line.png")],
       notes="All fine.")
"""

FAILING_CHECK = """
from _common import record
record("badcheck", "A failing check", {"error": 0.3}, {"error below 1e-3": False, "ran": True}, [])
"""

CRASHING = """
import os
assert os.environ["FPSOLVER_QUICK"] == "1", "quick mode not passed on"
raise RuntimeError("boom in the notebook")
"""


def _status_row(text: str, name: str) -> str:
    rows = [line for line in text.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"{name} listed {len(rows)} times in REPORT.md"
    return rows[0]


def test_runner_reports_pass_fail_and_crash(tmp_path):
    nb = tmp_path / "notebooks"
    nb.mkdir()
    (nb / "good.py").write_text(PASSING)
    (nb / "badcheck.py").write_text(FAILING_CHECK)
    (nb / "crash.py").write_text(CRASHING)
    (nb / "_helper.py").write_text("raise SystemExit('helpers are not notebooks')\n")
    (nb / "report.py").write_text("raise SystemExit('report is not a notebook')\n")
    out = tmp_path / "out"
    # A stale summary from an earlier run must not make the crash look like a pass.
    (out / "results").mkdir(parents=True)
    (out / "results" / "crash.json").write_text(
        json.dumps({"name": "crash", "title": "t", "numbers": {}, "checks": {"x": True}})
    )

    rc = run_all.main(["--quick", "--notebooks", str(nb), "--out", str(out)])

    assert rc == 1
    text = (out / "REPORT.md").read_text()
    assert "1 of 3 notebooks passed (quick mode" in text
    assert "| passed | 2/2 |" in _status_row(text, "good")
    assert "**FAILED** | 1/2 |" in _status_row(text, "badcheck")
    assert "**FAILED** | 0/0 |" in _status_row(text, "crash")
    assert "_helper" not in text and "`report`" not in text
    # per-notebook section: title, checks, numbers, figure link, notes
    assert "## A passing notebook" in text
    assert "| order above 1.9 | pass |" in text
    assert "| max \\|z\\| below 4 | pass |" in text  # a bar must not split the cell
    assert "| error below 1e-3 | **FAIL** |" in text
    assert "| error | 1.5e-09 |" in text and "| order | 2.01 |" in text and "| n | 64 |" in text
    assert "![line.png](figures/line.png)" in text and (out / "figures" / "line.png").exists()
    assert "All fine." in text
    # a crash shows its exit status and the end of its log
    assert "no summary recorded" in text and "RuntimeError: boom in the notebook" in text


def test_runner_all_passing_returns_zero_and_rejects_unknown_names(tmp_path, capsys):
    nb = tmp_path / "nb"
    nb.mkdir()
    (nb / "good.py").write_text(PASSING)
    (nb / "other.py").write_text(CRASHING)
    out = tmp_path / "out"
    assert (
        run_all.main(["--quick", "--notebooks", str(nb), "--out", str(out), "--only", "good"]) == 0
    )
    text = (out / "REPORT.md").read_text()
    assert "1 of 1 notebooks passed" in text and "other" not in text
    with pytest.raises(SystemExit) as err:
        run_all.main(["--notebooks", str(nb), "--only", "nosuch"])
    assert err.value.code == 2
    assert "nosuch" in capsys.readouterr().err


def test_report_rebuilds_from_summaries(tmp_path):
    (tmp_path / "results").mkdir()
    for name, ok in [("a", True), ("b", False)]:
        (tmp_path / "results" / f"{name}.json").write_text(
            json.dumps(
                {
                    "name": name,
                    "title": f"Notebook {name}",
                    "quick": False,
                    "numbers": {"value": 3.0},
                    "checks": {"ok": ok},
                    "figures": [],
                    "notes": "",
                }
            )
        )
    assert report.main([str(tmp_path)]) == 1
    text = (tmp_path / "REPORT.md").read_text()
    assert "1 of 2 notebooks passed (full mode" in text
    assert "| passed |" in _status_row(text, "a") and "**FAILED**" in _status_row(text, "b")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2.0, "2"),
        (400000.0, "400000"),
        (5e-4, "0.0005"),
        (2.0054321, "2.0054"),
        (1.23456e-12, "1.235e-12"),
        (0.5, "0.5"),
        (7, "7"),
        (float("nan"), "nan"),
        ("a|b", "a\\|b"),
        (True, "True"),
    ],
)
def test_format_number(value, text):
    assert report.format_number(value) == text


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    """Run every notebook once in quick mode; shared by the per-notebook tests."""
    out = tmp_path_factory.mktemp("validation")
    rc = run_all.main(["--quick", "--out", str(out)])
    return rc, (out / "REPORT.md").read_text(), out


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_passes_in_quick_mode(quick_report, name):
    rc, text, out = quick_report
    row = _status_row(text, name)
    log = out / "logs" / f"{name}.log"
    assert "| passed |" in row, f"{name} failed in quick mode:\n{log.read_text()[-3000:]}"
    summary = json.loads((out / "results" / f"{name}.json").read_text())
    assert summary["quick"] is True and summary["checks"], f"{name} recorded no checks"
    for fig in summary["figures"]:
        assert (out / "figures" / fig).exists(), f"{name}: figure {fig} missing"


def test_every_notebook_is_in_the_report(quick_report):
    rc, text, out = quick_report
    listed = re.findall(r"^\| `([^`]+)` \|", text, flags=re.M)
    assert listed == NOTEBOOKS
    assert rc == (0 if f"{len(NOTEBOOKS)} of {len(NOTEBOOKS)} notebooks passed" in text else 1)


def test_notebooks_are_jupytext_percent_scripts():
    for name in NOTEBOOKS:
        text = (VALIDATION / f"{name}.py").read_text()
        assert "# %%" in text, f"validation/{name}.py has no '# %%' cells"
