"""Where the models this project builds or trains are kept: no torch here, so that reading
the location (the root conftest, a pytest session ending in a usage error) stays instant."""

import os
import sys
from collections.abc import Callable
from pathlib import Path

# How long work tells the user where it is: a line to stderr, or what the pytest plugin sets
# (a line written past pytest's output capture, which would otherwise hold it until the end).
ANNOUNCE: list[Callable[[str], None]] = []


def announce(message: str) -> None:
    """One progress line of long work (training, building a model, a sweep over checkpoints)."""
    line = f"interp-claims: {message}"
    if ANNOUNCE:
        ANNOUNCE[-1](line)
    else:
        print(line, file=sys.stderr, flush=True)


def cache_root() -> Path:
    """``$INTERP_CLAIMS_CACHE``, else ``$XDG_CACHE_HOME/interp-claims`` (``~/.cache/interp-claims``)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "interp-claims"
    return Path(os.environ.get("INTERP_CLAIMS_CACHE", default))
