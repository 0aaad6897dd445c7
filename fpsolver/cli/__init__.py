"""Layer 7: the command line (``fpsolver run|demo|validate|plot``), TOML configs and
their safe expression language. May import every layer below."""

from .app import main

__all__ = ["main"]
