"""Sphinx configuration for the fpsolver documentation.

Build with ``make docs`` (``sphinx-build -W -b html docs docs/_build/html``).
Nothing is executed during the build except importing the package for the
API reference; notebooks and examples are shown, not run.

Three pages are filled in at read time from what exists in the repository,
so the build stays warning-free as modules, examples and validation results
come and go:

- ``api``: one section per importable ``fpsolver`` module, subpackages too;
- ``examples``: every ``examples/*.py`` script and ``*.toml`` config, with
  its figure when one is committed under ``docs/images/``;
- ``validation``: every validation notebook, with its figures when they are
  committed under ``validation/figures/`` and the report when
  ``validation/REPORT.md`` exists.

The ``architecture`` page includes two tables that
``docs/_scripts/architecture.py`` writes to ``docs/_generated/`` at every
build (the layers, and every module measured), so they stay true.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import pkgutil
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import fpsolver  # noqa: E402

project = "fpsolver"
author = "The fpsolver developers"
copyright = "The fpsolver developers, BSD-3-Clause"
release = fpsolver.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "_generated", "_scripts", "Thumbs.db", ".DS_Store"]
root_doc = "index"

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

autosummary_generate = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_title = f"fpsolver {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "Fokker–Planck equations with exact thermodynamic structure",
    "fixed_sidebar": True,
}


# --------------------------------------------------------------------------
# Architecture: the layer table and the measured modules, written at every
# build by the same script the architecture test reads its layers from.
def _architecture_script():
    path = DOCS / "_scripts" / "architecture.py"
    spec = importlib.util.spec_from_file_location("_fpsolver_architecture", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_architecture_script().write(DOCS / "_generated")


# --------------------------------------------------------------------------
# API reference: every importable module, grouped by layer; new modules appear
# in "Other modules" until they are given a group here. A package's own entry
# shows its docstring; its modules document the members.
API_GROUPS = [
    (
        "Physics: grids, models, initial densities (`fpsolver.core`)",
        ["core", "core.grid", "core.model", "core.boundary", "core.initial", "core.schedule",
         "core.diagnostics", "core.analytic", "core.threads", "core.memory"],
    ),
    (
        "The discretised operator (`fpsolver.discrete`)",
        ["discrete", "discrete.operator", "discrete.sg", "discrete.nullspace",
         "discrete.linsolve", "discrete.lu", "discrete.separable"],
    ),
    (
        "Time integration (`fpsolver.integrate`)",
        ["integrate", "integrate.driver", "integrate.steppers", "integrate.trackers"],
    ),
    (
        "Stationary states, spectra, first passage, Lyapunov functions (`fpsolver.analysis`)",
        ["analysis", "analysis.stationary", "analysis.spectrum", "analysis.passage",
         "analysis.lyapunov", "analysis.latent", "analysis.learning", "analysis.hopfield"],
    ),
    (
        "Particles and statistics (`fpsolver.sampling`)",
        ["sampling", "sampling.particles", "sampling.compare"],
    ),
    ("Results on disk", ["io", "io.results", "io.checkpoint", "io.files"]),
    (
        "The model class, solve and learning (`fpsolver.api`)",
        ["api", "api.fokker_planck", "api.runs", "api.latent", "api.learning",
         "api.sweeps", "api.ensembles", "api.cluster"],
    ),
    ("Plotting", ["plotting"]),
    (
        "Configs and the command line (`fpsolver.cli`)",
        ["cli", "cli.app", "cli.config", "cli.expr", "cli.demo"],
    ),
]  # fmt: skip


def _public_modules() -> dict[str, bool]:
    """Importable public module names (without ``fpsolver.``) → whether each is a package."""
    found = {}
    for info in pkgutil.walk_packages(fpsolver.__path__, prefix="fpsolver."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        try:
            importlib.import_module(info.name)
        except Exception as err:  # a broken module is the test suite's business
            print(f"[fpsolver docs] skipping {info.name}: {err!r}")
            continue
        found[info.name.removeprefix("fpsolver.")] = info.ispkg
    return dict(sorted(found.items()))


def _reexported(name: str) -> list[str]:
    """Classes and functions in the ``__all__`` of module `name` that another module defines."""
    module = importlib.import_module(name)
    out = []
    for member in getattr(module, "__all__", []):
        obj = getattr(module, member, None)
        defined = getattr(obj, "__module__", name) if callable(obj) else name
        if defined != name:
            out.append(member)
    return out


def _api_page() -> str:
    modules = _public_modules()
    grouped = [(title, [m for m in mods if m in modules]) for title, mods in API_GROUPS]
    known = {m for _, mods in API_GROUPS for m in mods}
    other = [m for m in modules if m not in known]
    if other:
        grouped.append(("Other modules", other))

    exported = []
    for name in fpsolver.__all__:
        obj = getattr(fpsolver, name)
        mod = getattr(obj, "__module__", None)
        if callable(obj) and mod and mod.removeprefix("fpsolver.") in modules:
            exported.append(f"{mod}.{obj.__qualname__}")
    lines = [
        "The names most programs need are exported at the top level",
        "(`import fpsolver as fp`); each is documented in its module below.",
        "",
        "```{eval-rst}",
        ".. autosummary::",
        "",
        *[f"   {target}" for target in exported],
        "```",
        "",
    ]
    for title, mods in grouped:
        if not mods:
            continue
        lines += [f"## {title}", ""]
        for m in mods:
            lines += [f"### `fpsolver.{m}`", "", "```{eval-rst}", f".. automodule:: fpsolver.{m}"]
            if not modules[m]:  # a package's members are documented in its modules
                lines.append("   :members:")
                reexported = _reexported(f"fpsolver.{m}")
                if reexported:  # documented where they are defined
                    lines.append(f"   :exclude-members: {', '.join(reexported)}")
            lines += ["```", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Examples gallery and validation notebooks: shown, never run.
def _docstring(path: Path) -> str:
    try:
        return ast.get_docstring(ast.parse(path.read_text())) or ""
    except SyntaxError:
        return ""


def _notebook_intro(path: Path) -> tuple[str, str]:
    """Title and first paragraph of a jupytext notebook (markdown cell or docstring)."""
    text = _docstring(path)
    if not text:
        lines, started = [], False
        for line in path.read_text().splitlines():
            if line.startswith("# %% [markdown]"):
                started = True
                continue
            if started:
                if not line.startswith("#"):
                    break
                lines.append(line[1:].strip())
        text = "\n".join(lines)
    paragraphs = [p.strip() for p in text.strip().split("\n\n") if p.strip()]
    if not paragraphs:
        return path.stem.replace("_", " "), ""
    title = paragraphs[0].splitlines()[0].lstrip("# ").rstrip(".")
    rest = paragraphs[0].splitlines()[1:]
    body = " ".join(rest).strip() or (paragraphs[1] if len(paragraphs) > 1 else "")
    # reST roles (":func:`x`") read as plain code in Markdown
    body = re.sub(r":[\w:]+:`~?([^`]+)`", r"`\1`", " ".join(body.split()))
    if body and not body.endswith((".", "!", "?")):  # it introduces a list not shown here
        cut = body.rfind(". ")
        body = body[: cut + 1] if cut > 0 else body[:-1] + "."
    return title, body


def _images(folder: Path, stem: str, rel: str) -> list[str]:
    found = sorted(set(folder.glob(f"{stem}.png")) | set(folder.glob(f"{stem}_*.png")))
    return [f"```{{image}} {rel}/{p.name}\n:alt: {p.stem}\n:width: 90%\n```\n" for p in found]


def _examples_page() -> str:
    folder = ROOT / "examples"
    scripts = sorted(folder.glob("*.py")) if folder.is_dir() else []
    configs = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    if not scripts and not configs:
        return "No examples are in this version yet.\n"
    lines = []
    for path in scripts:
        title, body = _notebook_intro(path)
        lines += [f"## {title}", "", f"`examples/{path.name}`", ""]
        if body:
            lines += [body, ""]
        lines += _images(DOCS / "images", path.stem, "images")
        lines += [
            f"```{{literalinclude}} ../examples/{path.name}",
            ":language: python",
            "```",
            "",
        ]
    if configs:
        lines += ["## Configuration files", "", "Run any of these with `fpsolver run FILE`.", ""]
        for path in configs:
            lines += [
                f"### `examples/{path.name}`",
                "",
                f"```{{literalinclude}} ../examples/{path.name}",
                ":language: toml",
                "```",
                "",
            ]
    return "\n".join(lines)


def _validation_figures(folder: Path, stem: str) -> list[str]:
    """Figures a notebook recorded in its committed summary, when they exist."""
    summary = folder / "results" / f"{stem}.json"
    try:
        names = json.loads(summary.read_text()).get("figures", [])
    except (OSError, ValueError):
        return []
    return [
        f"```{{image}} ../validation/figures/{name}\n:alt: {Path(name).stem}\n:width: 90%\n```\n"
        for name in names
        if (folder / "figures" / name).exists()
    ]


def _validation_page() -> str:
    folder = ROOT / "validation"
    skip = {"_common", "run_all", "report"}
    notebooks = [p for p in sorted(folder.glob("*.py")) if p.stem not in skip]
    report = folder / "REPORT.md"
    lines = []
    if not notebooks:
        lines += ["No validation notebooks are in this version yet.", ""]
    for path in notebooks:
        title, body = _notebook_intro(path)
        lines += [f"## {title}", "", f"`validation/{path.name}`", ""]
        if body:
            lines += [body, ""]
        if not report.exists():
            lines += _validation_figures(folder, path.stem)
    if report.exists():
        lines += [
            "## The latest report",
            "",
            "```{include} ../validation/REPORT.md",
            ":relative-images:",
            ":heading-offset: 2",
            "```",
            "",
        ]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Docstrings write |x| for absolute values and norms; reStructuredText would
# read "|x|" as an (undefined) substitution. Escape such pairs in prose lines,
# leaving doctests, literal blocks and directive bodies (math) untouched.
_SUBSTITUTION = re.compile(r"(?<![\\|`])\|(?=\S)([^|`]*?\S)\|(?![|_`])")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _escape_bars(app, what, name, obj, options, lines: list[str]) -> None:
    block_indent = None  # indentation of the line that opened a literal block/directive
    for k, line in enumerate(lines):
        stripped = line.strip()
        if block_indent is not None:
            if not stripped or _indent(line) > block_indent:
                continue
            block_indent = None
        if stripped.startswith((">>>", "...")):
            continue
        if stripped.endswith("::") or re.match(r"\.\. [\w:-]+::", stripped):
            block_indent = _indent(line)
        if "|" in line and not stripped.startswith(("|", "+")):
            lines[k] = _SUBSTITUTION.sub(r"\\|\1\\|", line)


GENERATED = {
    "api": ("<!-- api-reference -->", _api_page),
    "examples": ("<!-- examples-gallery -->", _examples_page),
    "validation": ("<!-- validation-notebooks -->", _validation_page),
}


def _fill(app, docname: str, source: list[str]) -> None:
    if docname in GENERATED:
        marker, make = GENERATED[docname]
        source[0] = source[0].replace(marker, make())


def setup(app):
    app.connect("source-read", _fill)
    app.connect("autodoc-process-docstring", _escape_bars)
    return {"parallel_read_safe": True}
