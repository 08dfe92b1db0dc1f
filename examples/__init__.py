"""The reference's example commands (`python -m examples.<name>`), as thin shims over cosmos_core.cli."""

import importlib
import sys


def run_command(module: str, function: str) -> None:
    """Import the command and run it; Ctrl-C at any point (torch's import takes seconds) ends it with one
    line and exit status 130, never a traceback (the command itself says what it had written)."""
    try:
        main = getattr(importlib.import_module(module), function)
        status = main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status = 130
    raise SystemExit(status)
