"""Where the package's data lives: the built-in claim files, named prompts, the IOI dataset and
GPT-2 small's published tables. A leaf: no torch, nothing else of this package."""

from importlib import resources
from pathlib import Path


def fixtures_dir() -> Path:
    """The built-in claims, prompts and data: package data of an installed wheel
    (``interp_claims/fixtures``), or the repository's top-level ``fixtures/`` in a source checkout."""
    packaged = Path(str(resources.files("interp_claims") / "fixtures"))
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "fixtures"


FIXTURES_DIR = fixtures_dir()
BUILTIN_CLAIMS_DIR = FIXTURES_DIR / "claims"
PROMPTS_FILE = FIXTURES_DIR / "prompts.toml"
PUBLISHED_FILE = Path(__file__).resolve().parent / "builtin" / "gpt2-published-heads.json"
