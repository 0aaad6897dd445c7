# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Convergence orders in space and time
#
# benchmark problem P1, the 1-D Ornstein–Uhlenbeck transient: E = x²/2, T = 1,
# K = 1 on [−8, 8] with reflecting walls, p0 = N(3, 0.5²). The exact
# density stays Gaussian with mean 3e^{−t} and variance 1 − 0.75e^{−2t}.
#
# * **Space.** Full solves to t = 1 with TR-BDF2 and a step small enough
#   that the time error is negligible, on N = 50 … 800 cells, against the
#   exact density. The Scharfetter–Gummel scheme should converge at order 2.
# * **Time.** On one grid, every registered method with a ladder of dt,
#   against the exact-in-time solution of the same semi-discretisation
#   (expm_multiply), so the spatial error cannot pollute the slope. Each
#   method must show the order it declares.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from _common import figure_path, quick, record
from scipy.sparse.linalg import expm_multiply

import fpsolver as fp
from fpsolver.core.analytic import ou_density
from fpsolver.integrate.steppers import EXACT, METHODS


def p1(n):
    grid = fp.Grid(x=(-8, 8, n))
    model = fp.FokkerPlanck(grid, energy=lambda x: x**2 / 2, temperature=1.0)
    return grid, model, fp.gaussian(grid, 3.0, 0.25)


def l1(grid, a, b):
    return float(np.sum(grid.volumes * np.abs(a - b)))


# %% [markdown]
# ## Spatial order

# %%
ns = np.array([50, 100, 200, 400] if quick() else [50, 100, 200, 400, 800])
space_err = []
for n in ns:
    grid, model, p0 = p1(n)
    ds = fp.solve(model, p0, 1.0, dt=1e-3, method="tr_bdf2", save_at=[])
    space_err.append(l1(grid, ds.p[-1].values, ou_density(grid, 1.0, 1.0, [3.0], 0.25, 1.0)))
h = 16.0 / ns
space_slopes = np.diff(np.log(space_err)) / np.diff(np.log(h))
space_order = float(np.polyfit(np.log(h), np.log(space_err), 1)[0])
print("L1 errors:", space_err)
print("local slopes:", space_slopes, "fit:", space_order)

# %% [markdown]
# ## Temporal order of every registered method

# %%
grid, model, p0 = p1(160)
ref = expm_multiply(model.generator(), p0.values, start=0, stop=1.0, num=2, endpoint=True)[-1]
dts = np.array([0.1, 0.05, 0.025, 0.0125] if quick() else [0.1, 0.05, 0.025, 0.0125, 0.00625])
time_err = {}
time_order = {}
for name, cls in METHODS.items():
    if name == "adaptive" or cls.order == EXACT:
        continue
    errs = [
        l1(grid, fp.solve(model, p0, 1.0, dt=dt, method=name, save_at=[]).p[-1].values, ref)
        for dt in dts
    ]
    time_err[name] = errs
    time_order[name] = float(np.diff(np.log(errs))[-1] / np.diff(np.log(dts))[-1])
    print(f"{name:16s} declared {cls.order}  observed {time_order[name]:.3f}")
exact_err = l1(grid, fp.solve(model, p0, 1.0, dt=0.25, method="exponential").p[-1].values, ref)
print("exponential (exact in time): error", exact_err)

# %%
fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
a1.loglog(h, space_err, "o-", label=f"Scharfetter–Gummel, slope {space_order:.2f}")
a1.loglog(h, space_err[-1] * (h / h[-1]) ** 2, "k--", lw=1, label="order 2")
a1.set_xlabel("cell width h")
a1.set_ylabel("L¹ error at t = 1")
a1.set_title("space (P1, vs exact)")
a1.legend()
for name, errs in time_err.items():
    a2.loglog(dts, errs, "o-", label=f"{name} ({time_order[name]:.2f})")
a2.set_xlabel("dt")
a2.set_ylabel("L¹ error vs expm_multiply")
a2.set_title("time (P1, same grid)")
a2.legend(fontsize=8)
fig.tight_layout()
fig.savefig(figure_path("convergence_orders.png"), dpi=100)

# %%
numbers = {"space order (fit)": space_order, "space order (finest pair)": space_slopes[-1]}
numbers.update({f"time order {k}": v for k, v in time_order.items()})
numbers["exponential error"] = exact_err
checks = {"space order within 0.1 of 2": bool(np.all(np.abs(space_slopes - 2) < 0.1))}
for name, order in time_order.items():
    checks[f"{name} order within 0.05 of {METHODS[name].order}"] = (
        abs(order - METHODS[name].order) < 0.05
    )
checks["exponential exact in time (< 1e-12)"] = exact_err < 1e-12
record(
    "convergence",
    "Convergence orders in space and time (P1)",
    numbers,
    checks,
    [figure_path("convergence_orders.png")],
    notes=(
        "Spatial order from full TR-BDF2 solves (dt = 1e-3) against the exact OU density; "
        "temporal orders from the last pair of a dt ladder on a 160-cell grid against "
        "expm_multiply on the same grid, so each error is purely spatial or purely temporal."
    ),
)
