"""Cost of writing a checkpoint frame, against the number of frames before it.

Usage::

    python benchmarks/checkpoint.py [--quick] [--repeat 3]

Solves P2 on a 64² grid (backward Euler, dt = 0.01) for 100, 200 and 400
saved frames (one per step), with and without ``checkpoint=``, side by side
in one run, and measures the time of each checkpoint write. A checkpoint
appends one record per frame, so the median cost of a frame must not grow
with the number of frames before it: the table reports the median write
time of the first and of the last tenth of the frames and their ratio
(≈ 1 when appending; it grew linearly when each frame rewrote the file).
Writes ``benchmarks/checkpoint.md``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import fpsolver as fp
from fpsolver.cli.demo import double_well_model
from fpsolver.io import checkpoint


def run(frames: int, with_checkpoint: bool, folder: Path) -> tuple[float, list[float]]:
    """Wall time of one solve and the time of every checkpoint write."""
    model = double_well_model(64)
    p0 = fp.gaussian(model.grid, (-1, 0), 0.04)
    writes: list[float] = []
    real = checkpoint.CheckpointTracker.on_frame

    def timed(self, t, p, info):
        t0 = time.perf_counter()
        real(self, t, p, info)
        writes.append(time.perf_counter() - t0)

    checkpoint.CheckpointTracker.on_frame = timed
    try:
        path = folder / f"run{frames}.nc" if with_checkpoint else None
        t0 = time.perf_counter()
        fp.solve(model, p0, 0.01 * frames, dt=0.01, method="backward_euler",
                 save_every=0.01, checkpoint=path)  # fmt: skip
        wall = time.perf_counter() - t0
    finally:
        checkpoint.CheckpointTracker.on_frame = real
    return wall, writes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20, 40, 80 frames")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).with_name("checkpoint.md")))
    args = parser.parse_args(argv)
    counts = [20, 40, 80] if args.quick else [100, 200, 400]
    rows = [
        "| frames | solve without [s] | solve with checkpoint [s] | first 10 % [ms/frame] "
        "| last 10 % [ms/frame] | last / first |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for frames in counts:
            plain, with_ck, first, last = [], [], [], []
            for r in range(args.repeat):  # interleaved, so load on the machine hits both
                plain.append(run(frames, False, Path(tmp))[0])
                folder = Path(tmp) / f"n{frames}r{r}"
                folder.mkdir()
                wall, writes = run(frames, True, folder)
                with_ck.append(wall)
                tenth = max(1, len(writes) // 10)
                first.append(np.median(writes[1 : 1 + tenth]))  # [0] creates the file
                last.append(np.median(writes[-tenth:]))
            ratio = float(np.median(last) / np.median(first))
            ratios.append(ratio)
            rows.append(
                f"| {frames} | {np.median(plain):.2f} | {np.median(with_ck):.2f} | "
                f"{1e3 * np.median(first):.2f} | {1e3 * np.median(last):.2f} | {ratio:.2f} |"
            )
            print(rows[-1], flush=True)
    lines = [
        f"# Checkpoint cost per frame (P2 64², backward Euler, median of {args.repeat})",
        "",
        *rows,
        "",
        f"Largest last/first ratio: {max(ratios):.2f} (appending: ≈ 1 whatever the number of "
        "frames; the previous whole-file rewrite grew linearly).",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
