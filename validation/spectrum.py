# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Relaxation spectra and first passage
#
# `model.spectrum(k)` returns the k slowest relaxation rates λ (L m = −λ m)
# and their modes. Validated here on
#
# 1. **OU process** E = k x²/2 with mobility K: continuum rates n·K·k
#    exactly. Observed order of the grid error.
# 2. **1-D double well** E = (x² − 1)², T = 0.3: against an independent
#    reference, the symmetrised (Schrödinger-form) operator
#    H = −T K d²/dx² + K (E'²/(4T) − E''/2) discretised by finite
#    differences on 8 000 and 16 001 nodes and Richardson-extrapolated.
# 3. **Kramers' formula**: the relaxation time 1/λ₁ of the double well
#    against the overdamped Kramers rate, λ_K = 2 · sqrt(E''(±1) |E''(0)|)
#    K/(2π) · e^{−ΔE/T} (escape in both directions), as T → 0.
# 4. **Non-reversible 2-D OU**, f = −B x with B non-symmetric: complex
#    rates n₁μ₁ + n₂μ₂ from the eigenvalues μ of B.
# 5. **First passage** in the same double well: `mean_first_passage_time`
#    and `committor` (backward equation with L* = V⁻¹LᵀV) against the exact
#    double integrals, and the escape time against the relaxation time
#    (λ₁ τ(−1 → 1) → 2 as T → 0 for the symmetric well).

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import scipy.linalg as la
from _common import figure_path, quick, record
from scipy.integrate import cumulative_simpson

import fpsolver as fp


def order(ns, errors):
    return float(-np.polyfit(np.log(ns), np.log(errors), 1)[0])


# %% [markdown]
# ## 1. OU rates: λ_n = n K k

# %%
k_spring, K, T_ou = 2.0, 0.5, 0.7
half = 8 * np.sqrt(T_ou / k_spring)
ou_ns = np.array([50, 100, 200] if quick() else [50, 100, 200, 400, 800])
ou_err = []
for n in ou_ns:
    m = fp.FokkerPlanck(fp.Grid(x=(-half, half, int(n))), lambda x: k_spring * x**2 / 2, T_ou,
                        mobility=K)  # fmt: skip
    rate = m.spectrum(5)["rate"].values
    ou_err.append(np.abs(rate[1:] - K * k_spring * np.arange(1, 5)).max())
    print(f"N = {n:4d}: rates {np.round(rate, 6)}, max error {ou_err[-1]:.3e}")
ou_order = order(ou_ns, ou_err)
print(f"observed order {ou_order:.3f}")

# %% [markdown]
# ## 2. Double well against the Schrödinger-form reference


# %%
def schrodinger_rates(temp, lo, hi, count, n):
    x = np.linspace(lo, hi, n + 2)[1:-1]
    h = x[1] - x[0]
    w = (4 * x * (x**2 - 1)) ** 2 / (4 * temp) - (12 * x**2 - 4) / 2
    diag = 2 * temp / h**2 + w
    off = np.full(n - 1, -temp / h**2)
    return la.eigh_tridiagonal(diag, off, select="i", select_range=(0, count - 1))[0]


T_dw, lo, hi = 0.3, -2.5, 2.5
r1 = schrodinger_rates(T_dw, lo, hi, 4, 8000)
r2 = schrodinger_rates(T_dw, lo, hi, 4, 16001)
reference = (4 * r2 - r1) / 3
print("reference rates", reference)
dw_ns = np.array([100, 200, 400] if quick() else [100, 200, 400, 800, 1600])
dw_err = []
for n in dw_ns:
    m = fp.FokkerPlanck(fp.Grid(x=(lo, hi, int(n))), lambda x: (x**2 - 1) ** 2, T_dw)
    rate = m.spectrum(4)["rate"].values
    dw_err.append(np.abs(rate[1:] / reference[1:] - 1).max())
    print(f"N = {n:4d}: rates {rate}, max relative error {dw_err[-1]:.3e}")
dw_order = order(dw_ns, dw_err)
print(f"observed order {dw_order:.3f}")

# %% [markdown]
# ## 3. Relaxation time 1/λ₁ against Kramers' formula
#
# Barrier ΔE = 1, E''(±1) = 8, |E''(0)| = 4, K = 1:
# λ_K = 2 · sqrt(32)/(2π) · e^{−1/T}. The grid resolves each well
# (width sqrt(T/8)) with ≥ 10 cells at the lowest T.

# %%
temps = np.array([0.25, 0.15, 0.1] if quick() else [0.3, 0.25, 0.2, 0.15, 0.1, 0.07, 0.05])
grid_kr = fp.Grid(x=(-2.2, 2.2, 1600 if not quick() else 800))
lam1, lam_k = [], []
for T in temps:
    ds = fp.FokkerPlanck(grid_kr, lambda x: (x**2 - 1) ** 2, T).spectrum(2)
    lam1.append(float(ds["rate"].values[1]))
    lam_k.append(2 * np.sqrt(32) / (2 * np.pi) * np.exp(-1 / T))
lam1, lam_k = np.array(lam1), np.array(lam_k)
ratio = lam1 / lam_k
print("   T     1/λ₁ (grid)   1/λ_K (Kramers)   λ₁/λ_K")
for T, a, b, r in zip(temps, lam1, lam_k, ratio):
    print(f"{T:5.2f}  {1 / a:12.5g}  {1 / b:14.5g}  {r:9.4f}")
# The leading correction to Kramers' rate is O(T): fit λ₁/λ_K ≈ 1 + c T.
slope_c = float(np.polyfit(temps[-3:], ratio[-3:], 1)[0])
intercept = float(np.polyfit(temps[-3:], ratio[-3:], 1)[1])
print(f"linear fit over the three lowest T: λ₁/λ_K ≈ {intercept:.4f} + {slope_c:.3f} T")

# %% [markdown]
# ## 4. Non-reversible 2-D OU: complex rates

# %%
B = np.array([[1.0, -1.0], [1.0, 1.5]])
mu = np.linalg.eigvals(B)
exact_nr = np.array([0, mu[0], mu[1], 2 * mu[0], mu[0] + mu[1], 2 * mu[1]])
nr_ns = [32, 64] if quick() else [32, 64, 128]
nr_err = []
for n in nr_ns:
    g = fp.Grid(x=(-4.0, 4.0, n), y=(-4.0, 4.0, n))
    m = fp.FokkerPlanck.from_drift(g, lambda x, y: (-x + y, -x - 1.5 * y), 0.5)
    nr_rate = m.spectrum(6)["rate"].values
    nr_err.append(max(np.abs(nr_rate - e).min() for e in exact_nr))
    print(f"N = {n}: rates {np.round(nr_rate, 4)}; max error {nr_err[-1]:.3e}")
nr_order = order(nr_ns, nr_err)

# %% [markdown]
# ## 5. First passage: exact double integrals and the escape time
#
# Reflecting wall at a = −2, target = the cells from b = 0.5 on (b a cell
# centre): τ(x) = ∫ₓᵇ dy e^{E(y)/T}/(T K) ∫ₐʸ dz e^{−E(z)/T}. Committor
# between the cells up to −1 and from 1 on:
# c(x) = ∫₋₁ˣ e^{E/T} / ∫₋₁¹ e^{E/T}.


# %%
def energy_dw(x):
    return (x**2 - 1) ** 2


def exact_mfpt(temp, a, b, points):
    y = np.linspace(a, b, 200_001)
    inner = cumulative_simpson(np.exp(-energy_dw(y) / temp), x=y, initial=0)
    outer = cumulative_simpson(np.exp(energy_dw(y) / temp) * inner / temp, x=y, initial=0)
    return np.interp(points, y, outer[-1] - outer)


def exact_committor(temp, points):
    y = np.linspace(-1.0, 1.0, 200_001)
    c = cumulative_simpson(np.exp(energy_dw(y) / temp), x=y, initial=0)
    return np.interp(points, y, c / c[-1])


T_fp = 0.5
fp_ns = np.array([40, 80, 160] if quick() else [40, 80, 160, 320, 640])
mfpt_err, comm_err = [], []
for m_cells in fp_ns:
    h = 2.5 / (m_cells + 0.5)
    n = int(m_cells + 1 + m_cells // 4)
    g1 = fp.Grid(x=(-2.0, -2.0 + n * h, n))
    model_fp = fp.FokkerPlanck(g1, energy_dw, T_fp)
    target = np.zeros(n, dtype=bool)
    target[int(m_cells) :] = True
    tau = model_fp.mean_first_passage_time(target).values
    xs = g1.centers[0][: int(m_cells)]
    ex = exact_mfpt(T_fp, -2.0, 0.5, xs)
    mfpt_err.append(np.abs(tau[: int(m_cells)] - ex).max() / ex.max())
    j = int(m_cells) // 4
    g2 = fp.Grid(x=(-2.0, 2.0, 4 * j + 2))  # centres at exactly −1 and 1
    c = fp.FokkerPlanck(g2, energy_dw, T_fp).committor(
        lambda x: x <= -1 + 1e-9, lambda x: x >= 1 - 1e-9
    )
    inner_c = c.values[j + 1 : 3 * j + 1]
    comm_err.append(np.abs(inner_c - exact_committor(T_fp, g2.centers[0][j + 1 : 3 * j + 1])).max())
mfpt_order = order(fp_ns, mfpt_err)
comm_order = order(fp_ns, comm_err)
print(f"MFPT relative errors {np.array(mfpt_err)}, order {mfpt_order:.3f}")
print(f"committor errors {np.array(comm_err)}, order {comm_order:.3f}")
tau_profile = (xs, tau[: int(m_cells)], ex)

# Escape time from the left minimum to the right one vs relaxation time.
escape = []
for T in temps:
    m = fp.FokkerPlanck(grid_kr, lambda x: (x**2 - 1) ** 2, T)
    tau_esc = m.mean_first_passage_time(lambda x: x >= 1.0).sel(x=-1.0, method="nearest")
    escape.append(float(tau_esc))
escape = np.array(escape)
lam_tau = lam1 * escape
for T, e, lt in zip(temps, escape, lam_tau):
    print(f"T = {T:5.2f}: τ(−1 → 1) = {e:.5g}, λ₁ τ = {lt:.5f}")

# %%
fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))
ax = axes[0]
ax.loglog(ou_ns, ou_err, "o-", label=f"OU, order {ou_order:.2f}")
ax.loglog(dw_ns, dw_err, "s-", label=f"double well (relative), order {dw_order:.2f}")
ax.loglog(nr_ns, nr_err, "^-", label=f"non-reversible OU, order {nr_order:.2f}")
ax.loglog(fp_ns, mfpt_err, "v-", label=f"MFPT (relative), order {mfpt_order:.2f}")
ax.loglog(fp_ns, comm_err, "d-", label=f"committor, order {comm_order:.2f}")
ax.loglog(ou_ns, ou_err[0] * (ou_ns / ou_ns[0]) ** -2.0, "k--", lw=0.8, label="slope −2")
ax.set_xlabel("cells per axis")
ax.set_ylabel("max error")
ax.set_title("grid errors: rates and first passage")
ax.legend(fontsize=8)
ax = axes[1]
ax.semilogy(1 / temps, 1 / lam1, "o-", label="1/λ₁ (grid)")
ax.semilogy(1 / temps, 1 / lam_k, "k--", label="Kramers 1/λ_K")
ax2 = ax.twinx()
ax2.plot(1 / temps, ratio, "r.:", label="λ₁/λ_K")
ax2.set_ylabel("λ₁/λ_K", color="r")
ax.set_xlabel("1/T")
ax.set_ylabel("relaxation time")
ax.set_title("double well: relaxation time vs Kramers")
ax.legend(loc="upper left", fontsize=8)
ax = axes[2]
ax.plot(exact_nr.real, exact_nr.imag, "ko", mfc="none", ms=10, label="continuum n₁μ₁ + n₂μ₂")
ax.plot(nr_rate.real, nr_rate.imag, "r+", ms=10, label=f"grid, N = {nr_ns[-1]}")
ax.set_xlabel("Re λ")
ax.set_ylabel("Im λ")
ax.set_title("non-reversible OU: complex rates")
ax.legend(fontsize=8)
ax = axes[3]
ax.plot(tau_profile[0], tau_profile[2], "k-", label="exact double integral")
ax.plot(tau_profile[0][::8], tau_profile[1][::8], "ro", ms=3, label=f"grid, N = {fp_ns[-1]}")
ax.set_xlabel("x (start)")
ax.set_ylabel("mean first-passage time to x ≥ 0.5")
ax.set_title(f"double well MFPT, T = {T_fp:g}")
ax.legend(fontsize=8)
fig.tight_layout()
fig_path = figure_path("spectrum.png")
fig.savefig(fig_path, dpi=100)

# %%
numbers = {
    "OU observed order": ou_order,
    "OU max error (finest)": ou_err[-1],
    "double-well observed order": dw_order,
    "double-well max relative error (finest)": dw_err[-1],
    "non-reversible OU observed order": nr_order,
    "non-reversible OU max error (finest)": nr_err[-1],
    "Kramers fit intercept (T -> 0)": intercept,
    "Kramers fit slope": slope_c,
    "MFPT observed order": mfpt_order,
    "MFPT max relative error (finest)": mfpt_err[-1],
    "committor observed order": comm_order,
    "committor max error (finest)": comm_err[-1],
}
for T, r, a in zip(temps, ratio, lam1):
    numbers[f"T={T:g}: 1/lambda_1"] = 1 / a
    numbers[f"T={T:g}: lambda_1/lambda_Kramers"] = r
for T, lt in zip(temps, lam_tau):
    numbers[f"T={T:g}: lambda_1 * tau(-1 -> 1)"] = lt
closer = bool(np.all(np.diff(np.abs(ratio - 1)) < 0))
checks = {
    "OU order within 0.05 of 2": abs(ou_order - 2) < 0.05,
    "double-well order within 0.1 of 2": abs(dw_order - 2) < 0.1,
    "double-well rates within 3e-3 of the reference": dw_err[-1] < 3e-3,
    "non-reversible OU converges (order > 1.8)": nr_order > 1.8,
    "lambda_1/lambda_Kramers -> 1 monotonically as T -> 0": closer,
    "Kramers: linear fit extrapolates to 1 within 2%": abs(intercept - 1) < 0.02,
    "MFPT order within 0.1 of 2": abs(mfpt_order - 2) < 0.1,
    "committor order within 0.1 of 2": abs(comm_order - 2) < 0.1,
    "lambda_1 * tau(-1 -> 1) within 1% of 2 at the lowest T": abs(lam_tau[-1] / 2 - 1) < 0.01,
}
record(
    "spectrum",
    "Relaxation spectra and first passage",
    numbers,
    checks,
    [fig_path],
    notes=(
        "Rates from model.spectrum (symmetric form and deflated shift-invert eigsh for "
        "reversible models, eigs otherwise). The double-well reference is an independent "
        "finite-difference discretisation of the Schrödinger-form operator, "
        "Richardson-extrapolated. Kramers' overdamped rate is approached from below with "
        "an O(T) correction; the grid relaxation time matches it as T -> 0. MFPT and "
        "committor solve the backward equation and converge at second order to the exact "
        "double integrals; the escape time times lambda_1 tends to 2 (symmetric well)."
    ),
)
