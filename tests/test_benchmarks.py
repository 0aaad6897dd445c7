"""The benchmark scripts run (quick mode) and write their markdown tables.

Timings are not asserted here (the machine is shared and noisy); the point
is that every number the README points to can be reproduced by a script
that works.
"""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py"))


def test_every_benchmark_has_a_committed_table():
    assert SCRIPTS, "no benchmark scripts found"
    for name in SCRIPTS:
        table = BENCH / name.replace(".py", ".md")
        assert table.exists(), f"{table.name} missing: run benchmarks/{name} and commit it"
        assert "|---" in table.read_text()


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_runs_in_quick_mode(tmp_path, name):
    out = tmp_path / name.replace(".py", ".md")
    proc = subprocess.run(
        [sys.executable, str(BENCH / name), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert text.startswith("#") and "|---" in text
