"""Configs with time-dependent expressions (``t``) and the thermodynamic summary of the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from fpsolver.cli.app import main
from fpsolver.cli.config import ConfigError, load_config
from fpsolver.core.protocol import TimeDependentModel

DRAG = """
title = "dragged trap"
[grid]
x = [-6, 6, 80]
[model]
energy = "0.5*(x - v*t)**2"
temperature = "1 + 0.2*t"
[constants]
v = 0.5
[initial]
type = "gaussian"
mean = [0.0]
cov = 1.0
[solve]
t_end = 1.0
dt = 0.05
method = "tr_bdf2"
save_every = 0.5
[output]
name = "drag"
figures = false
"""


def write(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_config_expressions_may_use_t_in_energy_and_temperature(tmp_path):
    cfg = load_config(write(tmp_path, DRAG))
    m = cfg.model
    assert isinstance(m, TimeDependentModel) and m.depends == {"energy", "temperature"}
    x = m.grid.centers[0]
    assert np.allclose(m.energy_cells(2.0), 0.5 * (x - 1.0) ** 2)
    assert m.temperature_at(2.0) == pytest.approx(1.4)


def test_time_is_refused_where_it_is_not_allowed(tmp_path):
    with pytest.raises(
        ConfigError, match=r"model.temperature: must be a number, got a string .*unknown name 'x'"
    ):
        load_config(write(tmp_path, DRAG.replace('"1 + 0.2*t"', '"1 + x"')))
    with pytest.raises(ConfigError, match=r"`temperature` returned -1.0 at t=0"):
        load_config(write(tmp_path, DRAG.replace('"1 + 0.2*t"', '"-1 + 0*t"')))


def test_cli_prints_the_thermodynamic_summary(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["run", str(write(tmp_path, DRAG)), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    for line in ("work done on the system W", "heat released to the bath Q", "entropy produced"):
        assert line in text
    assert (out / "drag.nc").exists()
