"""``python -m fpsolver``: the command line."""

from .cli import main

raise SystemExit(main())
