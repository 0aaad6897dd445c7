"""The Sphinx documentation builds with warnings as errors and has its pages."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fpsolver

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [
    "index",
    "installation",
    "quickstart",
    "theory",
    "guide",
    "examples",
    "validation",
    "api",
    "architecture",
]

pytest.importorskip("sphinx")
pytest.importorskip("myst_parser")
pytest.importorskip("numpydoc")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Build the HTML docs once, in a separate process, with -W."""
    out = tmp_path_factory.mktemp("docs")
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(out / "doctrees"),
            str(DOCS),
            str(out / "html"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc, out / "html", time.perf_counter() - start


def _text(html: Path) -> str:
    return re.sub(r"<[^>]+>", " ", html.read_text())


def test_docs_build_without_warnings(built):
    proc, html, seconds = built
    assert proc.returncode == 0, f"sphinx-build -W failed:\n{proc.stdout}\n{proc.stderr}"
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr
    assert seconds < 60, f"docs build took {seconds:.0f} s (aim: under 30 s)"


@pytest.mark.parametrize("page", PAGES)
def test_page_exists(built, page):
    proc, html, _ = built
    assert (html / f"{page}.html").is_file(), f"{page}.html missing:\n{proc.stderr}"


def test_theory_states_the_scheme_and_its_proofs(built):
    text = _text(built[1] / "theory.html")
    for phrase in ["Scharfetter", "Mass", "Positivity", "Exact Gibbs", "Free-energy decay", "Itô"]:
        assert phrase in text, f"theory page lacks {phrase!r}"


def test_api_reference_covers_every_public_module(built):
    html = (built[1] / "api.html").read_text()
    public = [
        m.name
        for m in pkgutil.walk_packages(fpsolver.__path__, prefix="fpsolver.")
        if not any(part.startswith("_") for part in m.name.split("."))
    ]
    assert "fpsolver.core.grid" in public and "fpsolver.discrete.operator" in public
    for name in public:
        assert f'id="module-{name}"' in html, f"{name} not in the API reference"
    # the top-level exports are documented objects with their own anchors
    exports = ["Grid", "Model", "FokkerPlanck", "Operator", "discretize", "SaveSchedule", "solve"]
    for name in exports:
        obj = getattr(fpsolver, name)
        assert f'id="{obj.__module__}.{name}"' in html, f"fp.{name} has no entry"


def test_architecture_page_shows_the_measured_tables(built):
    text = _text(built[1] / "architecture.html")
    for phrase in ["fpsolver.discrete.operator", "fpsolver.sampling", "longest function"]:
        assert phrase in text, f"architecture page lacks {phrase!r}"
    for name in ["fpsolver.api.runs", "fpsolver.cli.app"]:
        assert name in text, f"the measured table lacks {name}"


def test_gallery_lists_every_example(built):
    text = _text(built[1] / "examples.html")
    examples = sorted((ROOT / "examples").glob("*.py")) + sorted((ROOT / "examples").glob("*.toml"))
    for path in examples:
        assert f"examples/{path.name}" in text, f"{path.name} missing from the gallery"
    images = built[1] / "_images"
    for png in (ROOT / "docs" / "images").glob("*.png"):
        if any(png.stem == p.stem or png.stem.startswith(p.stem + "_") for p in examples):
            assert (images / png.name).is_file(), f"figure {png.name} not shown in the gallery"


def test_validation_page_lists_every_notebook(built):
    text = _text(built[1] / "validation.html")
    skip = {"_common", "run_all", "report"}
    for path in sorted((ROOT / "validation").glob("*.py")):
        if path.stem not in skip:
            assert f"validation/{path.name}" in text, f"{path.name} missing from the docs"


def test_user_guide_covers_every_tool(built):
    text = _text(built[1] / "guide.html")
    sections = ["Boundaries", "Mobilities", "Forces", "Time stepping", "Particles and statistics",
                "Stationary density", "Relaxation spectrum", "First passage",
                "Lyapunov functions of a drift", "Command line and configs"]  # fmt: skip
    for phrase in sections:
        assert phrase in text, f"user guide lacks {phrase!r}"
    for method in fpsolver.METHODS:
        assert f'"{method}"' in text.replace("&quot;", '"'), f"method {method} not in the guide"
