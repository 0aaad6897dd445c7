"""Every Python snippet in README.md and docs/*.md runs.

Each page's ```` ```python ```` blocks run in page order in one fresh
namespace (a later block may use what an earlier one defined, as a reader
would), in a temporary working directory with the Agg backend. A block that
cannot run here carries a marker on the line before its fence,

    <!-- snippet: skip — <reason> -->

(an HTML comment: invisible on GitHub and in the Sphinx build). Markers are
reserved for blocks that cannot run anywhere (a remote scheduler) or take
more than about 15 s; the tests below check that every marker states a
reason and sits right above a Python block, and that skipped blocks still
compile. Blocks are compiled with the page's path and their own line
numbers, so a traceback points into the Markdown file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*?)\s*$")
MARKER = re.compile(r"^<!--\s*snippet:\s*skip\s*[—–-]\s*(?P<reason>.*?)\s*-->\s*$")
MENTION = re.compile(r"<!--\s*snippet\b")


@dataclass(frozen=True)
class Snippet:
    """One ```python block: its page, number (from 1), fence line (from 1), code, skip reason."""

    page: Path
    number: int
    line: int
    code: str
    skip: str | None

    @property
    def name(self) -> str:
        first = next((s for s in self.code.splitlines() if s.strip()), "")
        return f"{_rel(self.page)}, block {self.number} (line {self.line}): {first.strip()!r}"


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


def snippets(page: Path) -> list[Snippet]:
    """The page's Python blocks in order, each with the reason of a skip marker above it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Snippet] = []
    k = 0
    while k < len(lines):
        opening = FENCE.match(lines[k])
        if not opening:
            k += 1
            continue
        fence, start = opening["fence"], k
        k += 1
        while k < len(lines) and not (
            lines[k].strip().startswith(fence[0] * len(fence))
            and not lines[k].strip().strip(fence[0])
        ):
            k += 1
        if opening["info"] == "python":
            marker = MARKER.match(lines[start - 1]) if start else None
            found.append(
                Snippet(
                    page=page,
                    number=len(found) + 1,
                    line=start + 1,
                    code="\n".join(lines[start + 1 : k]) + "\n",
                    skip=marker["reason"] if marker else None,
                )
            )
        k += 1
    return found


def compiled(snippet: Snippet):
    """The block's code object, with the page's path and the block's line numbers."""
    return compile("\n" * snippet.line + snippet.code, str(snippet.page), "exec")


WITH_CODE = [page for page in PAGES if snippets(page)]


@pytest.mark.parametrize("page", WITH_CODE, ids=_rel)
def test_page_snippets_run_in_order(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace = {"__name__": "__snippet__"}
    ran = 0
    try:
        for snippet in snippets(page):
            if snippet.skip is not None:
                continue
            try:
                exec(compiled(snippet), namespace)  # noqa: S102 - the documentation's own code
            except Exception as err:
                raise AssertionError(f"{snippet.name} raised {type(err).__name__}: {err}") from err
            ran += 1
    finally:
        plt.close("all")
    assert ran > 0, f"{_rel(page)}: every Python block is skipped"


def test_skip_markers_state_a_reason_and_precede_a_python_block():
    problems = []
    markers = 0
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        rel = _rel(page)
        for k, line in enumerate(lines):
            if not MENTION.search(line):
                continue
            markers += 1
            marker = MARKER.match(line.strip())
            if marker is None or not marker["reason"]:
                problems.append(f"{rel}:{k + 1}: not '<!-- snippet: skip — <reason> -->': {line!r}")
                continue
            after = FENCE.match(lines[k + 1]) if k + 1 < len(lines) else None
            if after is None or after["info"] != "python":
                problems.append(f"{rel}:{k + 1}: the next line does not open a ```python block")
    skipped = [s for page in PAGES for s in snippets(page) if s.skip is not None]
    assert not problems, "\n".join(problems)
    assert len(skipped) == markers


def test_every_snippet_compiles_skipped_ones_too():
    every = [s for page in PAGES for s in snippets(page)]
    assert len(every) >= 20  # the parser finds the pages' blocks
    for snippet in every:
        try:
            compiled(snippet)
        except SyntaxError as err:
            raise AssertionError(f"{snippet.name}: {err}") from err


def test_the_parser_reads_fences_markers_and_line_numbers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "text\n"
        "```python\na = 1\n```\n"
        "```text\nnot code\n```\n"
        "<!-- snippet: skip — needs a cluster -->\n"
        "````python\nb = 2\n```\nc = 3\n````\n",
        encoding="utf-8",
    )
    first, second = snippets(page)
    assert (first.number, first.line, first.code, first.skip) == (1, 2, "a = 1\n", None)
    assert (second.number, second.line, second.skip) == (2, 9, "needs a cluster")
    assert second.code == "b = 2\n```\nc = 3\n"
    namespace: dict = {}
    exec(compiled(first), namespace)  # noqa: S102
    assert namespace["a"] == 1
    assert compiled(first).co_filename == str(page)
