# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # The continuous Hopfield network: Fokker–Planck model versus Theorem 16's SDE as printed
#
# One visible and one hidden unit with linear activations g = a v, f = b h
# (L_v = a v²/2, L_h = b h²/2), coupling U = 0.4, input I = 0.3, T = 0.5.
# Both dynamics are linear, so their means and covariances are known
# exactly (`linear_moments`). Checks: the gradient of E against finite
# differences (and the printed proof's formula failing it); the noise-free
# drift −K∇E of the model equal to the ODE of Definition 15 at every point;
# the grid solution of the Fokker–Planck model following the exact moments
# at second order in h; Euler–Maruyama particles of the printed SDE
# following *their* exact moments; and the two processes agreeing when
# a = b = 1 (K = I) and disagreeing, far beyond the sampling error, when
# a = 2, b = 1/2.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from _common import figure_path, quick, record

import fpsolver as fp
from fpsolver.analysis.hopfield import Network
from fpsolver.core.analytic import linear_moments

QUICK = quick()
T = 0.5
NET = Network(U=0.4, I=0.3, L_v=2.0, L_h=0.5)  # K = diag(1/2, 2)
UNIT = Network(U=0.4, I=0.3, L_v=1.0, L_h=1.0)  # K = I
M0, C0 = np.array([1.5, -1.0]), np.diag([0.05, 0.1])
N = 20_000 if QUICK else 200_000

# %% [markdown]
# ## The gradient of E and the noise-free limit

# %%
rng = np.random.default_rng(0)
v, h = rng.normal(0, 1.5, (1000, 1)), rng.normal(0, 1.5, (1000, 1))
d = 1e-5
fd_v = (NET.energy(v + d, h) - NET.energy(v - d, h)) / (2 * d)
fd_h = (NET.energy(v, h + d) - NET.energy(v, h - d)) / (2 * d)
gv, gh = NET.energy_gradient(v, h)
grad_err = float(max(np.abs(gv[:, 0] - fd_v).max(), np.abs(gh[:, 0] - fd_h).max()))
# the proof of Theorem 16 as printed: −[U f + v − I] a and −[U g + h] b
printed_v = -(NET.U[0, 0] * 0.5 * h[:, 0] + v[:, 0] - NET.I[0]) * 2.0
printed_h = -(NET.U[0, 0] * 2.0 * v[:, 0] + h[:, 0]) * 0.5
printed_err = float(max(np.abs(printed_v - fd_v).max(), np.abs(printed_h - fd_h).max()))
dv, dh = NET.rhs(v, h)
kv, kh = NET.mobility()
ode_err = float(max(np.abs(-kv @ gv.T - dv.T).max(), np.abs(-kh @ gh.T - dh.T).max()))
print(f"|∇E − FD| = {grad_err:.2e}; printed formula: {printed_err:.3g}")
print(f"|−K∇E − ODE| = {ode_err:.2e}")

# %% [markdown]
# ## The Fokker–Planck model on the grid against the exact moments

# %%
x_star = NET.fixed_point()
b_fp, d_fp = NET.linear_coefficients(T)
cells = [24, 48, 96] if QUICK else [24, 48, 96, 192]
grid_err = []
for n in cells:
    grid = fp.Grid(v=(-2.5, 3.0, n), h=(-5.0, 5.0, n))
    model = NET.model(grid, T, cls=fp.FokkerPlanck)
    ds = model.solve(fp.gaussian(grid, M0, C0), 1.0, save_at=[], rtol=1e-7)
    mean, cov = linear_moments(b_fp, d_fp, M0 - x_star, C0, 1.0)
    cell_var = np.diag([grid.widths[0][0] ** 2, grid.widths[1][0] ** 2]) / 12
    err = max(np.abs(ds["mean"].values[-1] - x_star - mean).max(),
              np.abs(ds["covariance"].values[-1] - cell_var - cov).max())  # fmt: skip
    grid_err.append(float(err))
grid_order = float(-np.polyfit(np.log(cells), np.log(grid_err), 1)[0])
print("grid errors", grid_err, "order", grid_order)

# %% [markdown]
# ## Theorem 16 as printed, with particles


# %%
def z_scores(frame_mean, frame_cov, mean, cov, n):
    """Largest |z| of the particle mean and covariance (Gaussian standard errors)."""
    z_mean = (frame_mean - mean) / np.sqrt(np.diag(cov) / n)
    se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    return float(max(np.abs(z_mean).max(), np.abs((frame_cov - cov) / se).max()))


start = np.random.default_rng(1).multivariate_normal(M0, C0, N)
t_end, save = 3.0, 0.5
parts = NET.particles(start, temperature=T, t_end=t_end, dt=0.002, save_every=save, seed=2)
b_pr, d_pr = NET.linear_coefficients(T, "printed")
z_own, z_fp = [], []
for k, t in enumerate(parts["time"].values[1:], start=1):
    pm, pc = parts["mean"].values[k] - x_star, parts["covariance"].values[k]
    z_own.append(z_scores(pm, pc, *linear_moments(b_pr, d_pr, M0 - x_star, C0, t), N))
    z_fp.append(z_scores(pm, pc, *linear_moments(b_fp, d_fp, M0 - x_star, C0, t), N))
stationary_printed = linear_moments(b_pr, d_pr, [0, 0], C0, 200.0)[1]
stationary_gibbs = T * np.linalg.inv(NET.hessian())
print("max |z| against its own moments", max(z_own), "against the FP moments", max(z_fp))
print("stationary covariance, printed:\n", stationary_printed)
print("Gibbs T H^-1:\n", stationary_gibbs)

# K = I: the printed SDE is the Fokker–Planck process
unit_parts = UNIT.particles(start, temperature=T, t_end=t_end, dt=0.002, save_every=save, seed=3)
b_u, d_u = UNIT.linear_coefficients(T)
xs_u = UNIT.fixed_point()
z_unit = []
for k, t in enumerate(unit_parts["time"].values[1:], start=1):
    pm, pc = unit_parts["mean"].values[k] - xs_u, unit_parts["covariance"].values[k]
    z_unit.append(z_scores(pm, pc, *linear_moments(b_u, d_u, M0 - xs_u, C0, t), N))
print("K = I: max |z| against the FP moments", max(z_unit))

# %%
fig, axs = plt.subplots(1, 3, figsize=(14, 4))
ts = np.linspace(0, t_end, 61)
for ax, (i, j), label in ((axs[0], (0, 0), "var v"), (axs[1], (1, 1), "var h")):
    fp_c = [linear_moments(b_fp, d_fp, M0 - x_star, C0, t)[1][i, j] for t in ts]
    pr_c = [linear_moments(b_pr, d_pr, M0 - x_star, C0, t)[1][i, j] for t in ts]
    ax.plot(ts, fp_c, label="Fokker–Planck (exact)")
    ax.plot(ts, pr_c, "--", label="printed SDE (exact)")
    ax.plot(parts["time"], parts["covariance"].values[:, i, j], "o", label="printed SDE particles")
    ax.plot(unit_parts["time"], unit_parts["covariance"].values[:, i, j], "s", mfc="none",
            label="K = I: particles")  # fmt: skip
    ax.plot(ts, [linear_moments(b_u, d_u, M0 - xs_u, C0, t)[1][i, j] for t in ts], ":",
            label="K = I: Fokker–Planck")  # fmt: skip
    ax.set_xlabel("time")
    ax.set_title(label)
axs[0].legend(fontsize="x-small")
axs[2].loglog(cells, grid_err, "o-", label=f"grid vs exact moments, order {grid_order:.2f}")
axs[2].loglog(cells, grid_err[0] * (np.array(cells) / cells[0]) ** -2.0, "k--", lw=1,
              label="order 2")  # fmt: skip
axs[2].set_xlabel("cells per axis")
axs[2].set_ylabel("max moment error at t = 1")
axs[2].legend(fontsize="small")
fig.tight_layout()
fig.savefig(figure_path("latent_hopfield.png"), dpi=100)

# %%
record(
    "latent_hopfield",
    "Hopfield network: Fokker–Planck model versus Theorem 16 as printed",
    {
        "|∇E − finite differences|": grad_err,
        "printed proof's gradient − finite differences": printed_err,
        "|−K∇E − ODE| (noise-free limit)": ode_err,
        "grid moments: observed order": grid_order,
        "grid moments: error on the finest grid": grid_err[-1],
        "printed SDE particles vs own moments: max |z|": max(z_own),
        "printed SDE particles vs Fokker–Planck moments: max |z|": max(z_fp),
        "K = I particles vs Fokker–Planck moments: max |z|": max(z_unit),
        "stationary var v: printed / Gibbs": stationary_printed[0, 0] / stationary_gibbs[0, 0],
        "particles": N,
    },
    {
        "gradient of E matches finite differences (< 1e-8)": grad_err < 1e-8,
        "the printed proof's gradient does not (> 0.1)": printed_err > 0.1,
        "noise-free drift is the ODE to rounding (< 1e-13)": ode_err < 1e-13,
        "grid moments converge at order 2 (±0.2)": abs(grid_order - 2) < 0.2,
        "printed SDE particles follow their own exact moments (|z| < 4.5)": max(z_own) < 4.5,
        "... and not the Fokker–Planck ones when K ≠ I (|z| > 20)": max(z_fp) > 20,
        "K = I: printed SDE particles follow the Fokker–Planck moments": max(z_unit) < 4.5,
    },
    [figure_path("latent_hopfield.png")],
    notes=(
        "z-scores use Gaussian standard errors of the sample mean and covariance; 6 saved "
        "times × 5 moments at |z| < 4.5 give a false-alarm rate of about 2e-4 per check. "
        "Euler–Maruyama with dt = 0.002 has a relative bias of about λ dt / 2 ≈ 0.2 % in "
        "the covariance, below the sampling error at this N. The grid covariance is "
        "compared after removing the within-cell variance h²/12 that the piecewise-constant "
        "density carries."
    ),
)
