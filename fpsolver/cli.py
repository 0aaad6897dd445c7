"""The ``fpsolver`` command line."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fpsolver`` and ``python -m fpsolver``."""
    parser = argparse.ArgumentParser(prog="fpsolver", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="solve the 2-D double well and write figures")
    demo.add_argument("-o", "--outdir", default="results")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        for path in run_demo(args.outdir):
            print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
