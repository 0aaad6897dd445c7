"""The ``fpsolver`` command line (also ``python -m fpsolver``).

Subcommands::

    fpsolver run CONFIG.toml [-o OUTDIR] [--allow-python] [--no-figures]
    fpsolver sweep CONFIG.toml [-o OUTDIR] [--scheduler ADDRESS | --local] [--timeout S]
    fpsolver demo [-o OUTDIR]
    fpsolver validate [--quick] [-o OUTDIR]
    fpsolver plot RESULT.nc [-o OUTDIR] [--animation {gif,mp4}] [--dpi DPI]

Exit status: 0 on success; 1 for a numerical failure (a solver error or a
result that is not finite); 2 for bad usage or bad input: a bad config (the
message names the key and the reason), a file or folder that cannot be read
or written, a result file that is not one, a problem too large for memory;
130 when interrupted (Ctrl-C). A user's problem is never a traceback: it is
one line on stderr, ``fpsolver COMMAND: error: ...`` (``fpsolver COMMAND:
numerical failure: ...`` for status 1). Ctrl-C during ``run`` saves the
frames computed so far as ``<name>_interrupted.nc`` in the output folder and
says so.

Python code named in a config (``"package.module:function"``) is imported
only with ``--allow-python``: the consent of the person running the command,
never of the config file.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..integrate.trackers import Tracker
from .sweep import add_parser as add_sweep_parser

__all__ = ["EXIT_INTERRUPTED", "EXIT_NUMERICAL", "EXIT_OK", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_NUMERICAL = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _UsageError(Exception):
    """Bad usage or input: exit status 2."""


class _NumericalError(Exception):
    """The numerics failed: exit status 1."""


class _Interrupted(Exception):
    """Ctrl-C, with what was saved: exit status 130."""


def _parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="fpsolver",
        description="Solve Fokker-Planck equations with Scharfetter-Gummel finite volumes.",
        epilog="Exit status: 0 success, 1 numerical failure, 2 bad usage or input "
        "(config, files, memory), 130 interrupted (Ctrl-C).",
    )
    parser.add_argument("--version", action="version", version=f"fpsolver {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="solve the problem described by a TOML config",
        description="Solve the problem of CONFIG.toml; write the netCDF result, the "
        "particle comparison table (if configured) and figures; print a summary.",
    )
    run.add_argument("config", type=Path, help="the TOML config")
    run.add_argument("-o", "--outdir", type=Path, default=Path("results"), help="output folder")
    run.add_argument(
        "--allow-python",
        action="store_true",
        help="allow 'package.module:function' references in the config: they import and "
        "run Python code; only this flag can allow it, never the config itself",
    )
    run.add_argument("--no-figures", action="store_true", help="skip the figures")
    add_sweep_parser(sub)

    demo = sub.add_parser("demo", help="solve the 2-D double well and write figures")
    demo.add_argument("-o", "--outdir", type=Path, default=Path("results"), help="output folder")

    val = sub.add_parser(
        "validate",
        help="run the validation notebooks and write REPORT.md",
        description="Run the validation notebooks (they ship with the source tree, "
        "next to the package) and write a report.",
    )
    val.add_argument("--quick", action="store_true", help="quick mode (coarser, faster)")
    val.add_argument("-o", "--outdir", type=Path, default=None, help="report folder")

    plot = sub.add_parser("plot", help="the standard figures of a saved result")
    plot.add_argument("result", type=Path, help="a result written by `fpsolver run` (.nc)")
    plot.add_argument("-o", "--outdir", type=Path, default=None, help="output folder")
    plot.add_argument("--animation", choices=("gif", "mp4"), default=None, help="also animate")
    plot.add_argument("--dpi", type=int, default=100)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fpsolver`` and ``python -m fpsolver``; returns the exit status.

    A user's problem (bad input, files, memory, Ctrl-C) is one line on
    stderr and an exit status (:data:`EXIT_USAGE`, :data:`EXIT_NUMERICAL`,
    :data:`EXIT_INTERRUPTED`), never a traceback.

    Examples
    --------
    >>> main(["--version"])  # doctest: +ELLIPSIS
    fpsolver ...
    0
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help/--version, 2 for bad usage
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    commands = {"run": _run, "sweep": _sweep, "demo": _demo, "validate": _validate, "plot": _plot}
    try:
        return commands[args.command](args)
    except _UsageError as err:
        return _fail(args.command, "error", err, EXIT_USAGE)
    except _NumericalError as err:
        return _fail(args.command, "numerical failure", err, EXIT_NUMERICAL)
    except _Interrupted as err:
        return _fail(args.command, "error", err, EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        return _fail(args.command, "error", "interrupted (Ctrl-C)", EXIT_INTERRUPTED)
    except OSError as err:
        return _fail(args.command, "error", _os_message(err), EXIT_USAGE)
    except MemoryError:
        return _fail(args.command, "error", "not enough memory", EXIT_USAGE)


def _fail(command: str, kind: str, message: Any, code: int) -> int:
    """Print ``fpsolver COMMAND: KIND: MESSAGE`` as one line on stderr; return `code`."""
    text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
    print(f"fpsolver {command}: {kind}: {text}", file=sys.stderr)
    return code


def _os_message(err: OSError) -> str:
    """An OSError as ``REASON: 'FILE'`` (or its own message when it names no file)."""
    if err.strerror and err.filename is not None:
        return f"{err.strerror}: {str(err.filename)!r}"
    return str(err) or type(err).__name__


def _agg() -> None:
    import matplotlib

    matplotlib.use("Agg")


# -- run -------------------------------------------------------------------
def _run(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_config
    from .sweep import is_sweep_config

    if is_sweep_config(args.config):  # a config with a [sweep] table
        return _sweep(args)
    try:
        cfg = load_config(args.config, allow_python=args.allow_python)
    except ConfigError as err:
        raise _UsageError(str(err)) from None
    out = _outdir(Path(args.outdir))
    name = cfg.output["name"]
    solve_kw = dict(cfg.solve)
    if "checkpoint" in solve_kw:  # a plain file name: it lives in the output folder
        solve_kw["checkpoint"] = out / solve_kw["checkpoint"]
    _check_targets(out, name, solve_kw.get("checkpoint"))
    keeper = _Keeper()
    start = time.perf_counter()
    try:
        extra = {} if getattr(cfg.model, "mean_field", False) else {"trackers": [keeper]}
        ds = _call("solve", lambda: cfg.model.solve(cfg.p0, progress=False, **extra, **solve_kw))
    except KeyboardInterrupt:
        raise _Interrupted(_save_interrupted(cfg, keeper, out, solve_kw)) from None
    wall = time.perf_counter() - start
    keeper.clear()  # its frames are in `ds` now
    paths: list[Path] = []
    try:
        table = _outputs(args, cfg, ds, out, paths)
    except KeyboardInterrupt:
        written = ", ".join(map(str, paths)) or "nothing"
        raise _Interrupted(f"interrupted (Ctrl-C) after the solve; written: {written}") from None
    _summary(cfg, ds, wall, paths, table)
    return EXIT_OK


def _outputs(args: argparse.Namespace, cfg: Any, ds: Any, out: Path, paths: list[Path]) -> Any:
    """Check and write the result, the particle check and the figures; return the table."""
    p_last = np.asarray(ds["p"].isel(time=-1).values)
    if not np.all(np.isfinite(p_last)):
        raise _NumericalError("the final density is not finite")
    model, name = cfg.model, cfg.output["name"]
    if getattr(model, "time_dependent", False):  # figures and E of the model at the last time
        model = model.at(float(ds["time"].values[-1]))
    ds["energy"] = model.grid.data_array(np.asarray(model.energy), "energy", long_name="energy E")
    from .. import io

    paths.append(io.save_result(ds, out / f"{name}.nc"))
    parts = table = None
    if cfg.particles is not None:
        parts, table = _particle_check(cfg, ds)
        paths.append(io.save_result(parts, out / f"{name}_particles.nc"))
        paths.append(_write_table(table, out / f"{name}_comparison.csv"))
    if cfg.output["figures"] and not args.no_figures:
        _agg()
        from ..plotting import standard_figures

        paths += standard_figures(
            ds,
            out,
            name=name,
            model=model,
            parts=parts,
            dpi=cfg.output["dpi"],
            animation=cfg.output["animation"],
        )
    return table


def _outdir(path: Path) -> Path:
    """Create the output folder `path` and check that a file can be written there."""
    try:
        if path.exists() and not path.is_dir():
            raise _UsageError(f"--outdir {str(path)!r} is a file, not a folder")
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".fpsolver-write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except (OSError, ValueError) as err:  # ValueError: a NUL in the path
        reason = getattr(err, "strerror", None) or str(err)
        raise _UsageError(f"--outdir {str(path)!r}: cannot write there: {reason}") from None
    return path


#: Files ``fpsolver run`` may write: ``<name>`` followed by each suffix.
_OUTPUT_SUFFIXES = (
    ".nc", "_particles.nc", "_comparison.csv", "_interrupted.nc", "_density.png",
    "_relaxation.png", "_comparison.png", "_current.png", ".gif", ".mp4",
)  # fmt: skip


def _check_targets(out: Path, name: str, checkpoint: Path | None) -> None:
    """Refuse up front an output file path that is taken by a folder."""
    targets = [out / f"{name}{suffix}" for suffix in _OUTPUT_SUFFIXES]
    for path in [*targets, *([checkpoint] if checkpoint is not None else [])]:
        if path.is_dir():
            raise _UsageError(
                f"cannot write {str(path)!r}: it is a folder; remove it or choose another "
                "output.name or --outdir"
            )


class _Keeper(Tracker):
    """Keeps a copy of every saved frame and its diagnostics, for a Ctrl-C."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.frames: list[np.ndarray] = []
        self.infos: list[dict[str, Any]] = []

    def on_frame(self, t: float, p: np.ndarray, info: dict[str, Any]) -> None:
        self.times.append(float(t))
        self.frames.append(np.array(p, dtype=float))
        self.infos.append(dict(info))

    def clear(self) -> None:
        self.times, self.frames, self.infos = [], [], []


def _save_interrupted(cfg: Any, keeper: _Keeper, out: Path, solve_kw: dict[str, Any]) -> str:
    """Write the frames `keeper` holds to ``<name>_interrupted.nc``; say what happened."""
    from .. import io
    from .._version import __version__
    from ..integrate.trackers import build_dataset

    if not keeper.times:
        return "interrupted (Ctrl-C) before the first frame; nothing was written"
    grid, t = cfg.model.grid, keeper.times[-1]
    attrs = dict(
        grid.to_attrs(),
        title="Fokker-Planck solution (fpsolver), interrupted",
        fpsolver_version=__version__,
        temperature=float(cfg.model.temperature),
        method=str(solve_kw.get("method", "bdf2")),
        interrupted=1,
        t_reached=t,
    )
    path = out / f"{cfg.output['name']}_interrupted.nc"
    try:
        ds = build_dataset(grid, keeper.times, keeper.frames, keeper.infos, attrs)
        ds["energy"] = grid.data_array(np.asarray(cfg.model.energy), "energy")
        io.save_result(ds, path)
    except (OSError, ValueError) as err:
        return f"interrupted (Ctrl-C) at t = {t:g}; the frames could not be saved: {err}"
    except KeyboardInterrupt:
        return f"interrupted (Ctrl-C) at t = {t:g}, and again while saving; nothing was written"
    note = ""
    if "checkpoint" in solve_kw:
        note = f"; continue it with resume = true (checkpoint {str(solve_kw['checkpoint'])!r})"
    return (
        f"interrupted (Ctrl-C) at t = {t:g}: the {len(keeper.times)} frames computed so far "
        f"are saved in {path}{note}"
    )


def _call(section: str, func: Any) -> Any:
    """Run a numerical step; sort its exceptions into usage (2) and numerical (1) failures.

    Reaching ``max_steps`` is a usage error: the config's step budget ran out.
    """
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            return func()
    except RuntimeError as err:
        if str(err).startswith("`max_steps`="):  # the step budget of the config, not numerics
            raise _UsageError(
                f"{section}: {err}; raise solve.max_steps or use a larger dt"
            ) from None
        raise _NumericalError(f"{section}: {type(err).__name__}: {err}") from None
    except (ArithmeticError, np.linalg.LinAlgError, MemoryError) as err:
        raise _NumericalError(f"{section}: {type(err).__name__}: {err}") from None
    except (ValueError, TypeError, FileExistsError, ImportError) as err:
        raise _UsageError(f"{section}: {err}") from None


def _particle_check(cfg: Any, ds: Any) -> tuple[Any, Any]:
    from ..sampling.particles import simulate_particles

    kw = dict(cfg.particles)
    parts = _call(
        "particles",
        lambda: simulate_particles(cfg.model, cfg.p0, t_end=cfg.solve["t_end"], **kw),
    )
    try:
        from ..sampling.compare import compare
    except ImportError:  # pragma: no cover - compare ships with the package
        raise _NumericalError("particles: fpsolver.sampling.compare is not available") from None
    table = _call("particles", lambda: compare(ds, parts))
    return parts, table


def _table_frame(table: Any):
    """A flat pandas DataFrame (one row per time) from compare()'s result.

    Variables with an extra dimension (e.g. ``mean_z`` per axis) become one
    column per label, ``mean_z_x``, ``mean_z_y``.
    """
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        return table
    if not hasattr(table, "data_vars"):
        return pd.DataFrame(table)
    columns: dict[str, Any] = {}
    for name, var in table.data_vars.items():
        extra = [d for d in var.dims if d != "time"]
        if not extra:
            columns[str(name)] = np.asarray(var.values)
            continue
        flat = var.stack(_col=extra).transpose("time", "_col")
        labels = [
            "_".join(map(str, v if isinstance(v, tuple) else (v,))) for v in flat["_col"].values
        ]
        for i, label in enumerate(labels):
            columns[f"{name}_{label}"] = np.asarray(flat.values[:, i])
    return pd.DataFrame(columns, index=pd.Index(table["time"].values, name="time"))


def _write_table(table: Any, path: Path) -> Path:
    _table_frame(table).to_csv(path)
    return path


def _final(ds: Any, name: str) -> float | None:
    return float(ds[name].values[-1]) if name in ds else None


_SUMMARY_COLUMNS = ("l1", "chi2", "p_value", "mean_z", "free_energy_diff", "free_energy_z")


def _summary(cfg: Any, ds: Any, wall: float, paths: list[Path], table: Any) -> None:
    t_last = float(ds["time"].values[-1])
    mass = _final(ds, "mass")
    absorbed = _final(ds, "absorbed") or 0.0
    mass_error = abs(mass + absorbed - 1.0) if mass is not None else float("nan")
    lines = [f"{cfg.title}: {ds.attrs.get('method', '?')} to t = {t_last:.6g}"]
    kl = _final(ds, "relative_entropy")
    kl_ss = _final(ds, "relative_entropy_ss")
    if "absorbed" in ds:  # a sub-probability: no relative entropy to speak of
        lines.append(f"  survival probability               {mass:.6g}")
        lines.append(f"  absorbed mass                      {absorbed:.6g}")
    elif kl_ss is not None:  # non-reversible: KL to p_ss is the Lyapunov function
        lines.append(f"  final relative entropy KL(p||p_ss) {kl_ss:.3e}")
    elif kl is not None:
        lines.append(f"  final relative entropy KL(p||q)    {kl:.3e}")
    lines.append(f"  mass error                         {mass_error:.3e}")
    if "work" in ds:  # a time-dependent model: its stochastic thermodynamics (dU = W - Q)
        lines.append(f"  work done on the system W          {_final(ds, 'work'):.6g}")
        lines.append(f"  heat released to the bath Q        {_final(ds, 'heat'):.6g}")
        produced = _final(ds, "total_entropy_production")
        lines.append(f"  entropy produced                   {produced:.6g}")
        lines.append(f"  entropy production rate (final)    {_final(ds, 'entropy_production'):.3e}")
    lines.append(f"  wall time                          {wall:.2f} s")
    if table is not None:
        frame = _table_frame(table)
        lines.append("  particle check (last saved time):")
        last = frame.iloc[-1]
        shown = [k for k in last.index if str(k).startswith(_SUMMARY_COLUMNS)] or list(last.index)
        for key, value in last[shown].items():
            try:
                lines.append(f"    {key:<32s} {float(value):.4g}")
            except (TypeError, ValueError):
                lines.append(f"    {key:<32s} {value}")
    lines.append("  outputs:")
    lines += [f"    {p}" for p in paths]
    print("\n".join(lines))


# -- sweep -------------------------------------------------------------------
def _sweep(args: argparse.Namespace) -> int:
    from .config import ConfigError
    from .sweep import SweepFailure, SweepInterrupted, run_sweep

    try:
        return run_sweep(args, _outdir(Path(args.outdir)))
    except ConfigError as err:
        raise _UsageError(str(err)) from None
    except SweepFailure as err:
        raise _NumericalError(str(err)) from None
    except SweepInterrupted as err:
        raise _Interrupted(str(err)) from None


# -- demo, validate, plot ----------------------------------------------------
def _demo(args: argparse.Namespace) -> int:
    out = _outdir(Path(args.outdir))
    _agg()
    from .demo import run_demo

    for path in _call("demo", lambda: run_demo(out)):
        print(path)
    return EXIT_OK


def validation_dir() -> Path:
    """The ``validation/`` folder of the source tree next to the package."""
    return Path(__file__).resolve().parents[2] / "validation"


def _validate(args: argparse.Namespace) -> int:
    folder = validation_dir()
    script = folder / "run_all.py"
    if not script.is_file():
        raise _UsageError(
            "the validation notebooks ship with the source tree, not with the installed "
            f"package; no {script.name} found next to the package (looked in {folder}). "
            "Clone the repository and run `fpsolver validate` from an editable install."
        )
    cmd = [sys.executable, str(script)]
    if args.quick:
        cmd.append("--quick")
    if args.outdir is not None:
        cmd += ["--out", str(Path(args.outdir).resolve())]
    proc = subprocess.run(cmd, check=False)
    if proc.returncode in (0, 1, 2):
        return proc.returncode
    return EXIT_NUMERICAL


def _plot(args: argparse.Namespace) -> int:
    from .config import MAX_DPI, ConfigError, check_memory, figure_memory

    if not 0 < args.dpi <= MAX_DPI:
        raise _UsageError(f"--dpi must be between 1 and {MAX_DPI}, got {args.dpi}")
    try:
        check_memory("--dpi", 0, figure=figure_memory(args.dpi))
    except ConfigError as err:
        raise _UsageError(str(err)) from None
    path = Path(args.result)
    ds = _read_result(path)
    out = _outdir(Path(args.outdir) if args.outdir is not None else path.parent)
    _agg()
    from ..plotting import standard_figures

    try:
        paths = standard_figures(
            ds, out, name=path.stem, dpi=args.dpi, animation=args.animation or False
        )
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
        raise _UsageError(
            f"cannot plot {str(path)!r}: it does not look like an fpsolver result "
            f"({type(err).__name__}: {err})"
        ) from None
    for p in paths:
        print(p)
    return EXIT_OK


def _read_result(path: Path) -> Any:
    """Open a result (or checkpoint) written by fpsolver; refuse anything else."""
    from ..io import open_result

    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except (OSError, ValueError) as err:  # too long a name, a NUL in it
        raise _UsageError(f"result {str(path)!r}: cannot read it: {err}") from None
    if is_dir:
        raise _UsageError(f"result {str(path)!r} is a folder, not a result file")
    if not is_file:
        raise _UsageError(f"result {str(path)!r} does not exist")
    try:
        ds = open_result(path)
    except Exception as err:  # any reader error means: not a (complete) result file
        raise _UsageError(
            f"cannot read {str(path)!r} as a netCDF result (truncated or not a result?): "
            f"{type(err).__name__}: {err}"
        ) from None
    var = "p" if "p" in ds.data_vars else "density" if "density" in ds.data_vars else None
    if var is None:
        raise _UsageError(
            f"{str(path)!r} is not an fpsolver result: it has no `p` or `density` variable "
            f"(variables: {', '.join(map(str, ds.data_vars)) or 'none'})"
        )
    dims = ds[var].dims
    if "time" not in dims or len(dims) < 2 or ds.sizes["time"] == 0:
        raise _UsageError(
            f"{str(path)!r} is not an fpsolver result: `{var}` has dims {dims}, not "
            "('time', axis, ...) with at least one saved time"
        )
    return ds


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
