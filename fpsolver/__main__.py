"""``python -m fpsolver``: the command line."""

from .cli.app import main

raise SystemExit(main())
