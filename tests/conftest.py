"""Suite-wide settings: floating-point errors, random state, hypothesis profiles.

* Every test runs with numpy's floating-point errors set to raise
  (division by zero, overflow, invalid operations; underflow is ignored, as
  numpy does by default), and the previous state is restored afterwards. The
  package silences these locally (``np.errstate``) where they are expected,
  so anything else is a bug.
* Tests draw random numbers only from explicit generators,
  ``np.random.default_rng(seed)``. Some libraries the package calls still use
  numpy's global generator (scipy's ``onenormest`` inside
  ``expm_multiply``, pyamg's spectral-radius estimate), so it is seeded
  before each test and restored after: every test is reproducible.
* Hypothesis runs a fixed, derandomised set of examples by default, so a
  run is judged on the same draws everywhere. ``FPSOLVER_HYPOTHESIS_EXAMPLES=n``
  selects the "wide" profile: n random examples per test (1500 per test
  passed when the generator tests were written).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

FLOATING_POINT_ERRORS = {"divide": "raise", "over": "raise", "invalid": "raise", "under": "ignore"}
GLOBAL_SEED = 20240531

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("fixed", max_examples=60, derandomize=True, database=None, **_COMMON)
_WIDE = os.environ.get("FPSOLVER_HYPOTHESIS_EXAMPLES", "").strip()
if _WIDE:
    settings.register_profile("wide", max_examples=int(_WIDE), derandomize=False, **_COMMON)
settings.load_profile("wide" if _WIDE else "fixed")


@pytest.fixture(autouse=True)
def _numerics():
    """Raise on floating-point errors and seed numpy's global generator; restore both."""
    old_err = np.seterr(**FLOATING_POINT_ERRORS)
    # The one place the legacy global generator is touched (see the module notes).
    old_state = np.random.get_state()  # noqa: NPY002
    np.random.seed(GLOBAL_SEED)  # noqa: NPY002
    try:
        yield
    finally:
        np.seterr(**old_err)
        np.random.set_state(old_state)  # noqa: NPY002
