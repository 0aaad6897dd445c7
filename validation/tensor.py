# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Full mobility tensors: Selling links and the antisymmetric part
#
# A mobility K = S + A with S symmetric positive definite and A
# antisymmetric, constant or a field. The symmetric part is split per cell
# by Selling's decomposition into non-negative weights on integer offsets
# (Fehrenbach & Mirebeau, *J. Math. Imaging Vis.* 49 (2014) 123), each link
# carrying a Scharfetter–Gummel flux; the antisymmetric part is the
# divergence-free transport T ∇·(A p) written with a stream function
# (central flux, hybrid beyond the cell Péclet condition). Checked here:
#
# 1. **Ornstein–Uhlenbeck with a non-symmetric constant K**: dx = −K H x dt
#    + √(2T S) dW stays Gaussian; mean and covariance follow linear ODEs
#    (Risken, *The Fokker–Planck Equation*, §6.5). Time is integrated
#    exactly (`expm_multiply`) so the error is purely spatial: order 2.
# 2. **A position-dependent SPD tensor field** (no exact solution):
#    self-convergence of the L1 distance between grids n and 2n, the fine
#    solution summed onto the coarse cells: order 2.
# 3. **Rotating Gibbs state** K = I + aJ: the Gibbs density is stationary
#    (|L q| at rounding) and carries the circulating current
#    T ∇·(A q) = T a (∂_y q, −∂_x q): order 2.
# 4. **No dissipation from A**: dF/dt with and without A differ by a
#    relative amount that falls like h².
# 5. **Strong anisotropy** (condition numbers 1e2 and 1e4, several angles):
#    off-diagonals of the generator ≥ 0, Gibbs residual at rounding, and the
#    stencil width (largest offset).
# 6. **Particles against the grid** for a tensor field with an
#    antisymmetric part: `fp.compare` chi-square p-values and L1 per saved
#    time (fixed seed, α = 1e-3 per saved time).

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import scipy.linalg as sl
from _common import figure_path, quick, record
from scipy.integrate import solve_ivp
from scipy.sparse.linalg import expm_multiply

import fpsolver as fp

numbers, checks = {}, {}


def pair_orders(ns, errors):
    """Observed order between successive refinements."""
    ns, errors = np.asarray(ns, float), np.asarray(errors, float)
    return np.log(errors[:-1] / errors[1:]) / np.log(ns[1:] / ns[:-1])


def order_table(title, ns, errors, label="error"):
    """Print an order table (n, error, observed order) and record its rows."""
    orders = pair_orders(ns, errors)
    print(f"\n{title}\n| n | {label} | observed order |\n|---:|---:|---:|")
    for i, (n, e) in enumerate(zip(ns, errors)):
        o = f"{orders[i - 1]:.3f}" if i else "–"
        print(f"| {n} | {e:.3e} | {o} |")
        numbers[f"{title}: n={n} {label}"] = e
        if i:
            numbers[f"{title}: n={n} observed order"] = orders[i - 1]
    return orders


# %% [markdown]
# ## 1. Ornstein–Uhlenbeck with a non-symmetric constant K

# %%
H = np.array([[1.0, 0.3], [0.3, 0.8]])
K_ou = np.array([[1.0, 0.6], [-0.2, 0.5]])
T_ou, t_ou = 0.5, 0.5
m0, C0 = np.array([0.8, -0.5]), np.array([[0.1, 0.02], [0.02, 0.08]])


def ou_energy(x, y):
    return 0.5 * (H[0, 0] * x * x + 2 * H[0, 1] * x * y + H[1, 1] * y * y)


def ou_moments(B, S, T, t):
    """Exact mean e^{−Bt} m0 and covariance from dC/dt = −BC − CBᵀ + 2TS."""

    def rhs(_, y):
        C = y.reshape(2, 2)
        return (-B @ C - C @ B.T + 2 * T * S).ravel()

    sol = solve_ivp(rhs, (0, t), C0.ravel(), method="DOP853", rtol=1e-13, atol=1e-15)
    return sl.expm(-B * t) @ m0, sol.y[:, -1].reshape(2, 2)


def moments(g, p):
    V, (X, Y) = g.volumes.ravel(), (a.ravel() for a in g.mesh())
    mean = np.array([V @ (p * X), V @ (p * Y)])
    dx, dy = X - mean[0], Y - mean[1]
    cxy = V @ (p * dx * dy)
    return mean, np.array([[V @ (p * dx * dx), cxy], [cxy, V @ (p * dy * dy)]])


m_ex, C_ex = ou_moments(K_ou @ H, 0.5 * (K_ou + K_ou.T), T_ou, t_ou)
ou_ns = [24, 48, 96] if quick() else [24, 48, 96, 192]
ou_mean_err, ou_cov_err = [], []
for n in ou_ns:
    g = fp.Grid(x=(-4, 4, n), y=(-4, 4, n))
    model = fp.FokkerPlanck(g, ou_energy, T_ou, mobility=K_ou)
    p = expm_multiply(model.generator() * t_ou, fp.gaussian(g, m0, C0).values.ravel())
    mean, cov = moments(g, p)
    ou_mean_err.append(float(np.abs(mean - m_ex).max()))
    ou_cov_err.append(float(np.abs(cov - C_ex).max()))
o_mean = order_table("1. OU mean", ou_ns, ou_mean_err)
o_cov = order_table("1. OU covariance", ou_ns, ou_cov_err)
checks["1. OU mean: order of the last pair within 0.1 of 2"] = abs(o_mean[-1] - 2) < 0.1
checks["1. OU covariance: order of the last pair within 0.1 of 2"] = abs(o_cov[-1] - 2) < 0.1

# %% [markdown]
# ## 2. A position-dependent SPD tensor field: self-convergence


# %%
def spd_field(x, y):
    """S(x) with eigenvalues in [0.5, 1.6]: det ≥ 0.7·0.8 − 0.35² > 0."""
    off = 0.35 * np.cos(x + 0.5 * y)
    return [[1 + 0.3 * np.sin(x), off], [off, 1 + 0.2 * np.cos(y)]]


def field_solution(n):
    g = fp.Grid(x=(-4, 4, n), y=(-4, 4, n))
    model = fp.FokkerPlanck(g, ou_energy, T_ou, mobility=spd_field)
    p0 = fp.gaussian(g, m0, C0).values.ravel()
    return g, expm_multiply(model.generator() * t_ou, p0).reshape(g.shape)


def restrict(p_fine):
    """Mass of each 2×2 block of fine cells over the coarse cell's volume."""
    n0, n1 = p_fine.shape
    return p_fine.reshape(n0 // 2, 2, n1 // 2, 2).mean(axis=(1, 3))


field_ns = [24, 48, 96] if quick() else [24, 48, 96, 192, 384]
solutions = [field_solution(n) for n in field_ns]
field_diff = [
    float(gc.volumes.ravel() @ np.abs(pc - restrict(pf)).ravel())
    for (gc, pc), (_, pf) in zip(solutions, solutions[1:])
]
o_field = order_table("2. SPD field, L1(n, 2n)", field_ns[:-1], field_diff, label="L1 distance")
checks["2. SPD field: self-convergence order of the last pair within 0.1 of 2"] = (
    abs(o_field[-1] - 2) < 0.1
)

# %% [markdown]
# ## 3. Rotating Gibbs state and its circulating current

# %%
a_rot, T_rot = 0.8, 0.5
rot_ns = [32, 64, 128] if quick() else [32, 64, 128, 256, 512]
rot_err, rot_res = [], []


def gauss(x, y):
    """The exact Gibbs density exp(−r²/2T) / (2πT)."""
    return np.exp(-(x**2 + y**2) / (2 * T_rot)) / (2 * np.pi * T_rot)


for n in rot_ns:
    g = fp.Grid(x=(-4, 4, n), y=(-4, 4, n))
    model = fp.FokkerPlanck(
        g, lambda x, y: 0.5 * (x**2 + y**2), T_rot, mobility=[[1.0, a_rot], [-a_rot, 1.0]]
    )
    q = np.exp(model.log_equilibrium())
    L = model.generator()
    rot_res.append(float(np.abs(L @ q.ravel()).max() / np.abs(L.diagonal() * q.ravel()).max()))
    J = model.operator.face_fluxes(q)
    xc, yc = g.centers
    xf, yf = g.edges
    exact_x = -a_rot * yc[None, :] * gauss(xf[:, None], yc[None, :])  # T a ∂_y q
    exact_y = a_rot * xc[:, None] * gauss(xc[:, None], yf[None, :])  # −T a ∂_x q
    scale = np.abs(exact_x).max()
    rot_err.append(float(max(np.abs(J[0] - exact_x).max(), np.abs(J[1] - exact_y).max()) / scale))
    rot_peak = float(np.abs(J[0]).max() / scale)
rot_grid, rot_q, rot_J = g, q, J
o_rot = order_table("3. Rotating Gibbs current, max error / max |J|", rot_ns, rot_err)
numbers["3. max |L q| / max |diag(L) q| (all grids)"] = max(rot_res)
numbers["3. max |J_x| / max |J_x exact| (finest)"] = rot_peak
checks["3. current: order of the last pair within 0.1 of 2"] = abs(o_rot[-1] - 2) < 0.1
checks["3. Gibbs state stationary to rounding (|L q| < 1e-13)"] = max(rot_res) < 1e-13
checks["3. the current circulates (max |J| within 10% of exact)"] = abs(rot_peak - 1) < 0.1

# %% [markdown]
# ## 4. The antisymmetric part adds no dissipation (to second order)

# %%
T_d = 0.6
S_d = np.array([[1.0, 0.2], [0.2, 0.8]])
A_d = np.array([[0.0, 0.5], [-0.5, 0.0]])
diss_ns = [24, 48, 96] if quick() else [24, 48, 96, 192, 384]
diss_rel, diss_rates = [], []
for n in diss_ns:
    g = fp.Grid(x=(-4, 4, n), y=(-4, 4, n))
    E = lambda x, y: 0.5 * x**2 + 0.4 * y**2  # noqa: E731
    sym = fp.FokkerPlanck(g, E, T_d, mobility=S_d)
    full = fp.FokkerPlanck(g, E, T_d, mobility=S_d + A_d)
    p = fp.gaussian(g, (1.0, -0.5), [[0.3, 0.1], [0.1, 0.5]]).values.ravel()
    phi = sym.energy.ravel() + T_d * np.log(p)
    V = g.volumes.ravel()
    rates = [float(V @ (phi * (m.generator() @ p))) for m in (sym, full)]
    diss_rates.append(rates)
    diss_rel.append(abs(rates[1] - rates[0]) / abs(rates[0]))
o_diss = order_table("4. |dF/dt(S+A) − dF/dt(S)| / |dF/dt(S)|", diss_ns, diss_rel)
numbers["4. dF/dt with S alone (finest)"] = diss_rates[-1][0]
checks["4. dF/dt < 0 with and without A on every grid"] = all(
    r[0] < 0 and r[1] < 0 for r in diss_rates
)
checks["4. relative difference: order of the last pair within 0.15 of 2"] = (
    abs(o_diss[-1] - 2) < 0.15
)

# %% [markdown]
# ## 5. Strong anisotropy: monotone, exact Gibbs state, stencil width


# %%
def aniso(kappa, theta):
    c, s = np.cos(theta), np.sin(theta)
    R = np.array([[c, -s], [s, c]])
    return R @ np.diag([1.0, 1.0 / kappa]) @ R.T


g5 = fp.Grid(x=(-3, 3, 30), y=(-3, 3, 26))
E5 = lambda x, y: 0.5 * x**2 + 0.3 * y**2 + 0.2 * x * y  # noqa: E731
angles = [0.0, 0.1, 0.3, np.pi / 8, 0.4, np.pi / 4, 1.0]
aniso_rows = []
print("\n5. Strong anisotropy (30×26 grid)")
print("| κ | θ | min off-diagonal | max |L q| / max |diag(L) q| | max offset |")
print("|---:|---:|---:|---:|---:|")
for kappa in (1e2, 1e4):
    for theta in angles:
        m = fp.FokkerPlanck(g5, E5, 0.7, mobility=aniso(kappa, theta))
        L = m.generator().tocoo()
        off_min = float(L.data[L.row != L.col].min())
        q = np.exp(m.log_equilibrium()).ravel()
        res = float(np.abs(L @ q).max() / np.abs(L.diagonal() * q).max())
        rows, cols = (np.array(np.unravel_index(i, g5.shape)) for i in (L.row, L.col))
        width = int(np.abs(rows - cols).max())  # bounded grid: no link wraps
        aniso_rows.append((kappa, theta, off_min, res, width))
        print(f"| {kappa:.0e} | {theta:.3f} | {off_min:.2e} | {res:.1e} | {width} |")
        numbers[f"5. kappa={kappa:.0e} theta={theta:.3f}: max offset"] = width
aniso_rows = np.array(aniso_rows)
numbers["5. min off-diagonal over all cases"] = aniso_rows[:, 2].min()
numbers["5. max Gibbs residual over all cases"] = aniso_rows[:, 3].max()
checks["5. off-diagonals >= 0 in every case"] = bool(aniso_rows[:, 2].min() >= 0)
checks["5. Gibbs residual < 1e-13 in every case"] = bool(aniso_rows[:, 3].max() < 1e-13)

# %% [markdown]
# ## 6. Particles against the grid, tensor field with an antisymmetric part


# %%
def tanh_field(x, y):
    return [
        [1 + 0.4 * np.tanh(x), 0.3 + 0.2 * np.sin(y)],
        [-0.1 + 0.2 * np.sin(y), 0.8 + 0.3 * np.tanh(y)],
    ]


ALPHA = 1e-3  # per saved time
cells6 = 30 if quick() else 60  # 8x more particles in full mode see the grid's error
g6 = fp.Grid(x=(-3, 3, cells6), y=(-3, 3, cells6))
model6 = fp.FokkerPlanck(g6, lambda x, y: 0.5 * x**2 + 0.4 * y**2, 0.6, mobility=tanh_field)
p06 = fp.gaussian(g6, (1.0, -0.5), 0.1)
n_particles = 5_000 if quick() else 40_000
dt6 = 2e-3 if quick() else 5e-4
t6 = 0.6
ds6 = model6.solve(p06, t_end=t6, dt=1e-3, method="bdf2", save_every=0.2)
parts6 = fp.simulate_particles(
    model6, p06, n=n_particles, t_end=t6, dt=dt6, save_every=0.2, seed=11
)
cmp6 = fp.compare(ds6, parts6)
print(f"\n6. Particles ({n_particles} particles, dt = {dt6:g}, seed 11) against the grid")
print("| t | chi-square p-value | L1 | L1 expected from noise |\n|---:|---:|---:|---:|")
for i, t in enumerate(cmp6.time.values):
    pv, l1, l1n = (float(cmp6[k][i]) for k in ("p_value", "l1", "l1_noise"))
    print(f"| {t:.1f} | {pv:.3f} | {l1:.4f} | {l1n:.4f} |")
    if t > 0:
        numbers[f"6. t={t:.1f}: p-value"] = pv
        numbers[f"6. t={t:.1f}: L1 / L1 from noise"] = l1 / l1n
pvals = cmp6["p_value"].values[cmp6.time.values > 0]
checks[f"6. every chi-square p-value > alpha = {ALPHA:g}"] = bool(pvals.min() > ALPHA)

# %%
fig, axes = plt.subplots(2, 3, figsize=(16, 9.5))
ax = axes[0, 0]
ax.loglog(ou_ns, ou_mean_err, "o-", label=f"mean (last order {o_mean[-1]:.2f})")
ax.loglog(ou_ns, ou_cov_err, "s-", label=f"covariance (last order {o_cov[-1]:.2f})")
ax.loglog(ou_ns, ou_cov_err[0] * (ou_ns[0] / np.asarray(ou_ns)) ** 2, "k:", label="n⁻²")
ax.set_xlabel("cells per axis")
ax.set_ylabel("max error at t = 0.5")
ax.set_title("1. OU, K = [[1, 0.6], [−0.2, 0.5]]")
ax.legend(fontsize=8)
ax = axes[0, 1]
ax.loglog(field_ns[:-1], field_diff, "o-", label=f"last order {o_field[-1]:.2f}")
ax.loglog(field_ns[:-1], field_diff[0] * (field_ns[0] / np.asarray(field_ns[:-1])) ** 2, "k:")
ax.set_xlabel("coarse cells per axis n")
ax.set_ylabel("L1 distance between n and 2n")
ax.set_title("2. SPD tensor field: self-convergence")
ax.legend(fontsize=8)
ax = axes[0, 2]
cx, cy = rot_grid.centers
ax.pcolormesh(cx, cy, rot_q.T, shading="auto", cmap="viridis")
jx = 0.5 * (rot_J[0][1:, :] + rot_J[0][:-1, :])
jy = 0.5 * (rot_J[1][:, 1:] + rot_J[1][:, :-1])
step = max(1, len(cx) // 16)
arrow = 0.9 * step * (cx[1] - cx[0]) / np.hypot(jx, jy).max()  # longest arrow: one spacing
ax.quiver(cx[::step], cy[::step], arrow * jx[::step, ::step].T, arrow * jy[::step, ::step].T,
          color="w", angles="xy", scale_units="xy", scale=1.0)  # fmt: skip
ax.set_aspect("equal")
ax.set_title(f"3. Gibbs state of K = I + {a_rot:g} J and its current")
ax = axes[1, 0]
ax.loglog(rot_ns, rot_err, "o-", label=f"3. current (last order {o_rot[-1]:.2f})")
ax.loglog(diss_ns, diss_rel, "s-", label=f"4. dF/dt difference (last order {o_diss[-1]:.2f})")
ax.set_xlabel("cells per axis")
ax.set_ylabel("relative error")
ax.set_title("3–4. circulating current; dissipation of A")
ax.legend(fontsize=8)
ax = axes[1, 1]
for kappa, mk in ((1e2, "o-"), (1e4, "s-")):
    sel = aniso_rows[:, 0] == kappa
    ax.plot(aniso_rows[sel, 1], aniso_rows[sel, 4], mk, label=f"κ = {kappa:.0e}")
ax.set_xlabel("angle θ of the principal axis")
ax.set_ylabel("largest offset (cells)")
ax.set_title("5. Selling stencil width")
ax.legend(fontsize=8)
ax = axes[1, 2]
xs = g6.centers[0]
vol_y = np.diff(g6.edges[1])
ax.plot(xs, ds6["p"].values[-1] @ vol_y, "k-", label="grid")
hist = parts6["count"].values[-1].sum(axis=1) / (n_particles * np.diff(g6.edges[0]))
ax.plot(xs, hist, "r.", label=f"{n_particles} particles")
ax.set_xlabel("x")
ax.set_ylabel(f"marginal density at t = {t6:g}")
ax.set_title(f"6. particles vs grid (min p-value {pvals.min():.3f})")
ax.legend(fontsize=8)
fig.tight_layout()
fig_path = figure_path("tensor.png")
fig.savefig(fig_path, dpi=90)

# %%
record(
    "tensor",
    "Full mobility tensors: OU with non-symmetric K, SPD fields, rotating Gibbs states",
    numbers,
    checks,
    [fig_path],
    notes=(
        "Time integrated exactly with scipy's expm_multiply in 1 and 2, so the errors are "
        "spatial. 1: max error of the mean and of the covariance entries against the linear "
        "moment ODEs. 2: L1 distance between grids n and 2n, the fine density averaged over "
        "each 2x2 block onto the coarse cells. 3: face fluxes of the discrete Gibbs state "
        "against T a (d_y q, -d_x q) at the face centres, relative to the largest; the "
        "residual |L q| is relative to max |diag(L) q|. 4: dF/dt = sum V (E + T ln p) L p for "
        "K = S and K = S + A at the same Gaussian p. 5: generator of a rotated diagonal "
        "tensor with condition number kappa; the max offset is the stencil width in cells. "
        "6: Euler-Maruyama particles (40000, dt = 5e-4, 60x60 cells; quick mode 5000, "
        "dt = 2e-3, 30x30; seed 11) against BDF2 with dt = 1e-3; chi-square p-values per "
        "saved time at alpha = 1e-3 each."
    ),
)
