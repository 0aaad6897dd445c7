"""Every example runs: scripts with ``--outdir``, configs through ``fpsolver run``.

The examples print their own checks; the numbers asserted here are the ones
each example is about (order of convergence, conservation of the current,
∫S dt against the mean first-passage time), read back from their output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from fpsolver.cli.config import load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
CONFIGS = sorted(EXAMPLES.glob("*.toml"))
TIMEOUT = 120


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"
    env["PYTHONWARNINGS"] = "error"  # examples must run without warnings
    return env


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Run every example once, two at a time; keyed by file name."""
    root = tmp_path_factory.mktemp("examples")

    def one(path: Path):
        out = root / path.stem / path.suffix[1:]
        out.mkdir(parents=True)
        if path.suffix == ".py":
            cmd = [sys.executable, str(path), "--outdir", str(out)]
        else:
            cmd = [sys.executable, "-m", "fpsolver", "run", str(path), "-o", str(out)]
        return path.name, (_run(cmd, out), out)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, SCRIPTS + CONFIGS))


def test_there_are_examples() -> None:
    names = {p.name for p in SCRIPTS + CONFIGS}
    expected = {
        "double_well.py",
        "ou_exact.py",
        "tilted_periodic.py",
        "absorbing_wall.py",
        "double_well.toml",
        "ou_particles.toml",
        "tilted_periodic.toml",
        "absorbing_wall.toml",
    }
    assert expected <= names


@pytest.mark.parametrize("path", SCRIPTS + CONFIGS, ids=lambda p: p.name)
def test_example_runs_and_writes_its_outputs(path: Path, runs) -> None:
    proc, out = runs[path.name]
    assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout}\n{proc.stderr}"
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert files, f"{path.name} wrote nothing to --outdir:\n{proc.stdout}"
    for p in files:
        assert p.stat().st_size > 0, p
    # paths the example prints must be files it wrote into --outdir
    printed = [Path(line.strip()) for line in proc.stdout.splitlines()]
    printed = [p for p in printed if p.suffix in (".png", ".gif", ".nc", ".csv", ".mp4")]
    assert set(printed) <= set(files), f"printed paths outside --outdir:\n{proc.stdout}"


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in output:\n{text}"
    return float(match.group(1))


def test_ou_exact_is_second_order(runs) -> None:
    proc, _ = runs["ou_exact.py"]
    assert abs(_number(r"observed order ([-\d.]+)", proc.stdout) - 2.0) < 0.1


def test_tilted_periodic_current_is_conserved(runs) -> None:
    proc, _ = runs["tilted_periodic.py"]
    flux = _number(r"flux through x-sections: ([-\d.e]+)", proc.stdout)
    spread = _number(r"spread ([-\d.e+]+)\)", proc.stdout)
    assert flux > 0 and spread < 1e-9 * flux


def test_absorbing_wall_survival_integral_is_the_mfpt(runs) -> None:
    proc, _ = runs["absorbing_wall.py"]
    integral = _number(r"∫ S dt = ([\d.]+)", proc.stdout)
    mean_tau = _number(r"Σ V p0 τ = ([\d.]+)", proc.stdout)
    assert abs(integral / mean_tau - 1) < 1e-3


def test_double_well_relaxes_at_twice_the_slowest_rate(runs) -> None:
    proc, _ = runs["double_well.py"]
    assert "monotone: True" in proc.stdout
    slope = _number(r"late decay rate of KL: ([\d.]+)", proc.stdout)
    rate2 = _number(r"2 λ_1 from the spectrum: ([\d.]+)", proc.stdout)
    assert abs(slope / rate2 - 1) < 0.02


def test_configs_report_their_summary(runs) -> None:
    for name in ("double_well.toml", "ou_particles.toml", "tilted_periodic.toml"):
        proc, _ = runs[name]
        assert _number(r"mass error\s+([\d.e+-]+)", proc.stdout) < 1e-12
        assert "wall time" in proc.stdout
    proc, _ = runs["tilted_periodic.toml"]
    assert _number(r"KL\(p\|\|p_ss\)\s+([\d.e+-]+)", proc.stdout) < 1e-8
    proc, out = runs["absorbing_wall.toml"]
    survival = _number(r"survival probability\s+([\d.e+-]+)", proc.stdout)
    absorbed = _number(r"absorbed mass\s+([\d.e+-]+)", proc.stdout)
    ds = xr.load_dataset(out / "absorbing_wall.nc")
    # the summary reports the saved run (six printed digits)
    assert survival == pytest.approx(float(ds.mass[-1]), rel=1e-5)
    assert absorbed == pytest.approx(float(ds.absorbed[-1]), rel=1e-5)
    # and the run is right: late on, the survival decays at the slowest rate
    # of the generator (BDF2 at λ dt ≈ 0.008: 2e-5 relative; the next mode
    # has died out by e^{-35})
    rate = load_config(EXAMPLES / "absorbing_wall.toml").model.spectrum(1)["rate"].values[0]
    late = -np.log(float(ds.mass[-1] / ds.mass.sel(time=30.0))) / (float(ds.time[-1]) - 30.0)
    assert late == pytest.approx(rate, rel=1e-3)
    proc, out = runs["ou_particles.toml"]
    assert (out / "ou_particles_comparison.csv").is_file()
