"""Plots render with Agg and show the data they are given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from matplotlib.collections import LineCollection, QuadMesh

import fpsolver as fp
from fpsolver import plotting as fpp


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def result_1d(nt: int = 6) -> xr.Dataset:
    grid = fp.Grid(x=(-4, 4, 40))
    t = np.linspace(0.0, 1.0, nt)
    p = np.stack([fp.gaussian(grid, 2 * np.exp(-s), 0.3 + s).values for s in t])
    kl = np.exp(-3 * t)
    kl[-1] = 0.0  # exact equilibrium: must be left out of the log plot
    f = 1.5 * kl - 2.0
    return xr.Dataset(
        {
            "p": (("time", "x"), p),
            "free_energy": ("time", f),
            "relative_entropy": ("time", kl),
            "mass": ("time", np.ones(nt)),
        },
        coords={"time": t, "x": grid.centers[0]},
        attrs={"temperature": 1.5, **grid.to_attrs()},
    )


def result_2d(nt: int = 5):
    grid = fp.Grid(x=(-2, 2, 20), y=(-1, 1, 10))
    model = fp.FokkerPlanck(grid, lambda x, y: x**2 + 2 * y**2, 0.5)
    t = np.linspace(0.0, 2.0, nt)
    p = np.stack([fp.gaussian(grid, (1 - s / 2, 0), 0.1 + s / 4).values for s in t])
    ds = xr.Dataset(
        {"p": (("time", "x", "y"), p), "relative_entropy": ("time", np.exp(-t))},
        coords={"time": t, "x": grid.centers[0], "y": grid.centers[1]},
        attrs={"temperature": 0.5, **grid.to_attrs()},
    )
    return ds, model


def test_density_1d_lines_are_the_data() -> None:
    ds = result_1d()
    ax = fpp.plot_density(ds)
    times = ds.time.values[[0, 1, 2, 4, 5]]  # five evenly spread of six
    assert len(ax.lines) == 5
    for line, t in zip(ax.lines, times):
        np.testing.assert_array_equal(line.get_xdata(), ds.x.values)
        np.testing.assert_array_equal(line.get_ydata(), ds.p.sel(time=t).values)
    assert [t.get_text() for t in ax.get_legend().get_texts()][0] == "t = 0"


def test_density_1d_reference_overlay_and_time_choice() -> None:
    ds = result_1d()
    ref = ds.p * 1.01
    ax = fpp.plot_density(ds, time=[0.0, 0.59], reference=ref)
    assert len(ax.lines) == 4  # two snapshots, each with a dashed reference
    t3 = ds.time.values[3]  # 0.6, the saved time nearest to 0.59
    np.testing.assert_array_equal(ax.lines[2].get_ydata(), ds.p.sel(time=t3).values)
    np.testing.assert_array_equal(ax.lines[3].get_ydata(), ref.sel(time=t3).values)
    assert ax.lines[3].get_linestyle() == "--"


def test_density_2d_image_with_energy_contours() -> None:
    ds, model = result_2d()
    ax = fpp.plot_density(ds, energy=model)
    meshes = [c for c in ax.collections if isinstance(c, QuadMesh)]
    assert len(meshes) == 1
    img = np.asarray(meshes[0].get_array()).reshape(10, 20)  # y rows, x columns
    np.testing.assert_array_equal(img, ds.p.isel(time=-1).values.T)
    assert len(ax.collections) == 2  # the image and the contour set
    contour = ax.collections[1]
    assert 0 < len(contour.levels) <= 8
    assert model.energy.min() <= contour.levels[0] < contour.levels[-1] < model.energy.max()
    assert len(ax.figure.axes) == 2  # plot and colour bar
    assert ax.get_title() == "t = 2"


def test_snapshots_share_a_colour_scale() -> None:
    ds, model = result_2d()
    axs = fpp.plot_snapshots(ds, n=3)
    assert len(axs) == 3 and len(axs[0].figure.axes) == 4
    vmax = float(ds.p.max())
    for ax, t in zip(axs, [0.0, 1.0, 2.0]):
        mesh = ax.collections[0]
        assert mesh.get_clim() == (0.0, vmax)
        assert ax.get_title() == f"t = {t:g}"


def test_free_energy_and_relative_entropy() -> None:
    ds = result_1d()
    ax = fpp.plot_free_energy(ds)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), ds.free_energy.values)
    assert ax.lines[1].get_ydata()[0] == -2.0  # F_eq = F - T KL
    ax = fpp.plot_relative_entropy(ds)
    assert ax.get_yscale() == "log"
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), ds.relative_entropy.values[:-1])
    ds2 = ds.assign(relative_entropy_ss=ds.relative_entropy * 2)
    ax = fpp.plot_relative_entropy(ds2)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["KL(p‖q)", "KL(p‖p_ss)"]


def particles_like(ds: xr.Dataset, factor: float) -> xr.Dataset:
    parts = ds[["p"]].rename(p="density").isel(time=[0, -1])
    return parts * factor


def test_comparison_1d_residual_is_the_difference() -> None:
    ds = result_1d()
    parts = particles_like(ds, 1.1)
    axs = fpp.plot_comparison(ds, parts)
    assert len(axs) == 2
    p_last = ds.p.isel(time=-1).values
    np.testing.assert_array_equal(axs[0].lines[0].get_ydata(), p_last)
    np.testing.assert_allclose(axs[0].lines[1].get_ydata(), 1.1 * p_last, rtol=1e-15)
    np.testing.assert_allclose(axs[1].lines[0].get_ydata(), 0.1 * p_last, rtol=1e-12)


def test_comparison_2d_three_panels() -> None:
    ds, _ = result_2d()
    parts = particles_like(ds, 0.9)
    axs = fpp.plot_comparison(ds, parts, time=0.0)
    assert len(axs) == 3
    grid0 = ds.p.isel(time=0).values
    for ax, expected in zip(axs, (grid0, 0.9 * grid0, -0.1 * grid0)):
        img = np.asarray(ax.collections[0].get_array()).reshape(10, 20)
        np.testing.assert_allclose(img, expected.T, rtol=1e-12, atol=1e-14)
    lo, hi = axs[2].collections[0].get_clim()
    assert lo == -hi and hi == pytest.approx(0.1 * grid0.max(), rel=1e-12)
    assert axs[0].collections[0].get_clim() == (0.0, float(grid0.max()))


def test_spectrum_and_modes() -> None:
    x = np.linspace(0, 1, 7)
    modes = np.stack([np.cos(k * np.pi * x) for k in range(3)])
    spec = xr.Dataset(
        {"rate": ("k", [0.0, 1.0, 4.0]), "mode": (("k", "x"), modes)}, coords={"x": x}
    )
    ax = fpp.plot_spectrum(spec)
    assert ax.lines[0].get_ydata().tolist() == [0.0, 1.0, 4.0]
    assert ax.get_yscale() == "linear"  # a zero rate: no log scale
    axs = fpp.plot_modes(spec, k=[1, 2])
    assert len(axs[0].lines) == 2
    np.testing.assert_array_equal(axs[0].lines[1].get_ydata(), modes[2])
    modes2 = np.ones((2, 4, 5))
    spec2 = xr.Dataset({"rate": ("k", [0.5, 1.0]), "mode": (("k", "x", "y"), modes2)})
    axs = fpp.plot_modes(spec2)
    assert len(axs) == 2 and axs[1].get_title() == "λ_1 = 1"
    assert fpp.plot_spectrum(spec2).get_yscale() == "log"


def test_faces_to_centres() -> None:
    j = np.arange(5.0)[:, None] * np.ones((1, 3))  # bounded: 5 faces for 4 cells
    np.testing.assert_array_equal(fpp._faces_to_centres(j, 0, 4)[:, 0], [0.5, 1.5, 2.5, 3.5])
    j = np.array([[1.0, 2.0, 3.0, 4.0]])  # periodic: face i is the upper face of cell i
    np.testing.assert_array_equal(fpp._faces_to_centres(j, 1, 4)[0], [2.5, 1.5, 2.5, 3.5])
    with pytest.raises(ValueError, match="faces"):
        fpp._faces_to_centres(j, 1, 7)


def test_current_streamplot_of_a_rotating_flow() -> None:
    grid = fp.Grid(x=(-3, 3, 24), y=(-3, 3, 24))
    model = fp.FokkerPlanck(grid, lambda x, y: 0.5 * (x**2 + y**2), 1.0, force=lambda x, y: (-y, x))
    q = model.equilibrium()  # stationary for this force (it is divergence-free along q)
    ax = fpp.plot_current(model, q)
    assert isinstance(ax.collections[0], QuadMesh)
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lines) == 1 and len(lines[0].get_segments()) > 10
    widths = np.asarray(lines[0].get_linewidths())
    assert widths.min() >= 0.5 and widths.max() <= 2.5 and widths.max() > 1.5
    assert ax.get_xlim() == (-3.0, 3.0)
    grid1 = fp.Grid(x=(0, 1, 10), periodic="x")
    model1 = fp.FokkerPlanck(grid1, 0.0, 1.0, force=[2.0])
    ax = fpp.plot_current(model1, np.ones(10))
    np.testing.assert_allclose(ax.lines[0].get_ydata(), 2.0, rtol=1e-12)


def test_animation_gif_frames(tmp_path) -> None:
    from PIL import Image

    ds = result_1d(nt=4)
    path = fpp.animate(ds, tmp_path / "p.gif", fps=4)
    with Image.open(path) as im:
        assert im.n_frames == 4
    ds2, model = result_2d(nt=3)
    path = ds2.fp.animate(tmp_path / "q.gif", energy=model)
    with Image.open(path) as im:
        assert im.n_frames == 3
    with pytest.raises(ValueError, match=r"\.gif or \.mp4"):
        fpp.animate(ds, tmp_path / "p.avi")


def test_animation_mp4_needs_ffmpeg(tmp_path) -> None:
    from matplotlib import animation

    ds = result_1d(nt=3)
    if animation.writers.is_available("ffmpeg"):
        assert fpp.animate(ds, tmp_path / "p.mp4").stat().st_size > 0
    else:
        with pytest.raises(RuntimeError, match="needs ffmpeg"):
            fpp.animate(ds, tmp_path / "p.mp4")


def test_accessor_and_standard_figures(tmp_path) -> None:
    ds, model = result_2d()
    ax = ds.fp.plot_density(time=1.0)
    assert ax.get_title() == "t = 1"
    assert ds.fp.plot_relative_entropy().get_yscale() == "log"
    parts = particles_like(ds, 1.0)
    plt.close("all")
    paths = fpp.standard_figures(ds, tmp_path, name="run", model=model, parts=parts)
    assert [p.name for p in paths] == [
        "run_density.png",
        "run_relaxation.png",
        "run_comparison.png",
    ]
    for p in paths:
        assert p.stat().st_size > 1000
    assert plt.get_fignums() == []  # every figure written is closed


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="no density variable"):
        fpp.plot_density(xr.Dataset({"q": ("x", [1.0])}))
    with pytest.raises(TypeError, match="Dataset or DataArray"):
        fpp.plot_density(np.ones(3))
    with pytest.raises(ValueError, match="`axes` must hold 3 Axes"):
        ds, _ = result_2d()
        fpp.plot_comparison(ds, particles_like(ds, 1.0), axes=[plt.gca()])


def test_lazy_plotting_attribute() -> None:
    import subprocess
    import sys

    code = (
        "import sys, fpsolver as fp\n"
        "assert 'matplotlib' not in sys.modules\n"
        "assert fp.plotting.plot_density is not None\n"
        "import xarray as xr\n"
        "assert hasattr(xr.Dataset(), 'fp')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_standard_figures_of_a_3d_result_show_the_marginal(tmp_path) -> None:
    grid = fp.Grid(x=(-2, 2, 8), y=(-2, 2, 6), z=np.array([-1.0, -0.5, 0.5, 2.0]))
    p = fp.gaussian(grid, (0.5, 0, 0), 0.3).values
    ds = xr.Dataset(
        {"p": (("time", "x", "y", "z"), p[None])},
        coords={"time": [0.0], **{n: c for n, c in zip(grid.names, grid.centers)}},
        attrs=grid.to_attrs(),
    )
    marginal = fpp._marginal(ds.p, ds.attrs)
    assert marginal.dims == ("time", "x", "y")
    area = np.outer(grid.widths[0], grid.widths[1])
    assert abs(float((marginal.isel(time=0) * area).sum()) - 1) < 1e-14
    np.testing.assert_allclose(
        marginal.isel(time=0).values, np.sum(p * grid.widths[2], axis=2), rtol=1e-14
    )
    paths = fpp.standard_figures(ds, tmp_path)
    assert [q.name for q in paths] == ["result_density.png"]


def test_relaxation_figure_has_one_panel_per_available_curve(tmp_path, monkeypatch) -> None:
    captured: list[list[str]] = []
    original = plt.Figure.savefig

    def spy(self, *args, **kw):
        captured.append([a.get_ylabel() for a in self.axes])
        return original(self, *args, **kw)

    monkeypatch.setattr(plt.Figure, "savefig", spy)
    ds = result_1d()
    for variant, labels in (
        (ds, ["free energy", "relative entropy"]),
        (ds.drop_vars("relative_entropy"), ["free energy"]),
        (ds.assign(absorbed=0 * ds.mass), ["free energy", "survival probability"]),
    ):
        captured.clear()
        fpp.standard_figures(variant, tmp_path)
        assert captured[1] == labels  # [0] is the density figure
    assert plt.get_fignums() == []
