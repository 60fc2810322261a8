"""Where the models this project builds or trains are kept: no torch here, so that reading
the location (the root conftest, a pytest session ending in a usage error) stays instant."""

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

CHECKPOINTS_DIR = "checkpoints"  # a model folder keeps its training checkpoints in checkpoints/<name>/

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


def source_digest(description: str, builder_file: str) -> str:
    """12 hex digits of a build's description and its builder's source: a changed builder never
    reuses a stale folder."""
    return hashlib.sha256(description.encode() + Path(builder_file).read_bytes()).hexdigest()[:12]


def build_once(folder: Path, marker: str, build: Callable[[Path], None]) -> Path:
    """``folder``, built on first use: ``build`` writes into a staging folder beside it, renamed into
    place when complete (``marker`` is the file that says so), so that concurrent builders (pytest-xdist
    workers) never see half a model and the loser of a race keeps the winner's."""
    if (folder / marker).exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        build(staging)
        staging.rename(folder)
    except OSError:
        if not (folder / marker).exists():  # not a lost race with another process
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
