"""Where the models this project builds or trains are kept: no torch here, so that reading
the location (the root conftest, a pytest session ending in a usage error) stays instant."""

import os
from pathlib import Path


def cache_root() -> Path:
    """``$INTERP_CLAIMS_CACHE``, else ``$XDG_CACHE_HOME/interp-claims`` (``~/.cache/interp-claims``)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "interp-claims"
    return Path(os.environ.get("INTERP_CLAIMS_CACHE", default))
