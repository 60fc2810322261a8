"""Hugging Face Hub models the ordinary way: the local cache first, a download when the
network allows it, a pinned revision, and an answer within seconds when it does not.

``huggingface_hub`` does the work (its cache layout, its progress bar, ``HF_ENDPOINT``,
``HF_HOME``/``HF_HUB_CACHE``, ``HF_TOKEN``, ``HF_HUB_OFFLINE``). This module only adds:

* one metadata call with a timeout (the library's default client waits forever on a
  silent server), which also lists the repository's files, so that only one weights format
  is downloaded (GPT-2's repository holds seven);
* errors that name the model, the cause and the remedy.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from interp_claims.errors import ModelLoadError, ModelUnavailable

GPT2_ID = "openai-community/gpt2"
ALIASES = {"gpt2": GPT2_ID, "gpt2-small": GPT2_ID}  # --model names of hub ids
HUB_TIMEOUT_SECONDS = float(os.environ.get("INTERP_CLAIMS_HUB_TIMEOUT", "10"))
# Top-level files a GPT-2-architecture model needs, besides its weights.
MODEL_FILES = (
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json",
    "merges.txt", "special_tokens_map.json", "planted.json", "trained.json",
)
WEIGHT_FORMATS = (  # in order of preference: (file present in the repo, patterns to download)
    ("model.safetensors", ("model.safetensors",)),
    ("model.safetensors.index.json", ("model.safetensors.index.json", "model-*-of-*.safetensors")),
    ("pytorch_model.bin", ("pytorch_model.bin",)),
    ("pytorch_model.bin.index.json", ("pytorch_model.bin.index.json", "pytorch_model-*-of-*.bin")),
)


@dataclass(frozen=True)
class HubSnapshot:
    """A model repository at one commit, on disk."""

    repo_id: str
    revision: str  # as asked: a branch, tag or commit
    commit: str  # the commit hash it resolved to
    folder: Path  # the snapshot folder in the Hugging Face cache
    origin: str  # "hub" (checked against the Hub, downloaded if needed) or "cache" (offline)


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def download_patterns(repo_id: str, revision: str, files: list[str]) -> list[str]:
    """The files to fetch: the model's own files plus one weights format."""
    for marker, patterns in WEIGHT_FORMATS:
        if marker in files:
            return [name for name in MODEL_FILES if name in files] + list(patterns)
    raise ModelLoadError(
        f"model {repo_id!r} at revision {revision!r} holds no weights in a format this suite loads "
        f"(model.safetensors or pytorch_model.bin, possibly sharded); its files: {', '.join(sorted(files)[:20])}"
    )


def fetch(repo_id: str, revision: str | None = None) -> HubSnapshot:
    """The snapshot of ``repo_id`` at ``revision`` (default branch if None), downloading what is missing."""
    revision = revision or "main"
    if offline():
        return from_cache(repo_id, revision, because="HF_HUB_OFFLINE is set")
    if is_commit(revision) and (cached := complete_in_cache(repo_id, revision)) is not None:
        return cached  # a commit's files never change: a complete cached snapshot needs no request
    import httpx2
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = HfApi().model_info(repo_id, revision=revision, timeout=HUB_TIMEOUT_SECONDS)
    except GatedRepoError:
        raise ModelLoadError(
            f"model {repo_id!r} is gated on {endpoint()}: accept its terms on the Hub and give a token "
            "(`hf auth login`, or set HF_TOKEN)"
        ) from None
    except RepositoryNotFoundError:
        raise ModelLoadError(
            f"model {repo_id!r}: no such repository on {endpoint()} (or it is private: log in with "
            "`hf auth login` or set HF_TOKEN). Check the id, e.g. 'openai-community/gpt2'."
        ) from None
    except RevisionNotFoundError:
        raise ModelLoadError(
            f"model {repo_id!r}: revision {revision!r} does not exist on {endpoint()}. Give a branch, "
            "a tag or a full commit hash of the repository (e.g. --revision main)."
        ) from None
    except (httpx2.HTTPError, HfHubHTTPError, OSError) as error:
        reason = f"the Hub at {endpoint()} could not be reached ({type(error).__name__}: {str(error)[:200]})"
        return from_cache(repo_id, revision, because=reason)
    patterns = download_patterns(repo_id, revision, [sibling.rfilename for sibling in info.siblings or []])
    folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    return HubSnapshot(repo_id, revision, commit=info.sha or folder.name, folder=folder, origin="hub")


def is_commit(revision: str) -> bool:
    """A full commit hash (40 hex digits), as opposed to a branch or tag that can move."""
    return len(revision) == 40 and all(c in "0123456789abcdef" for c in revision.lower())


def complete_in_cache(repo_id: str, revision: str) -> HubSnapshot | None:
    """The cached snapshot of a commit when it holds a config, a tokenizer and weights; else None."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if not isinstance(config, str):
        return None
    folder = Path(config).parent
    weights = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
    has_weights = any((folder / name).exists() for name in weights)
    has_tokenizer = (folder / "tokenizer.json").exists() or (folder / "vocab.json").exists()
    return HubSnapshot(repo_id, revision, commit=folder.name, folder=folder, origin="cache") if has_weights and has_tokenizer else None


def from_cache(repo_id: str, revision: str, because: str) -> HubSnapshot:
    """The cached snapshot, or ModelUnavailable saying why the Hub was not used and what to do."""
    from huggingface_hub import constants, try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if isinstance(cached, str):
        folder = Path(cached).parent
        return HubSnapshot(repo_id, revision, commit=folder.name, folder=folder, origin="cache")
    raise ModelUnavailable(
        f"model {repo_id!r} (revision {revision!r}) is not in the local Hugging Face cache "
        f"({constants.HF_HUB_CACHE}) and {because}. Remedy: fetch it once with network access "
        f"(`python -m interp_claims.hub {repo_id} --revision {revision}`, or `hf download`), point HF_HOME "
        "or HF_HUB_CACHE at a cache that holds it, or pass --model /path/to/folder."
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m interp_claims.hub MODEL [--revision REV]``: fetch what the suite needs, print where."""
    import argparse
    import sys

    from interp_claims.errors import ModelError

    parser = argparse.ArgumentParser(
        prog="python -m interp_claims.hub",
        description="Download a Hugging Face model into the local cache the way the suite loads it "
        "(config, tokenizer and one weights format), e.g. in a CI step that has network access.",
    )
    parser.add_argument("model", help="a Hugging Face id, or an alias: " + ", ".join(ALIASES))
    parser.add_argument("--revision", default=None, help="branch, tag or commit (default: main)")
    args = parser.parse_args(argv)
    try:
        snapshot = fetch(ALIASES.get(args.model, args.model), args.revision)
    except ModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{snapshot.repo_id} at {snapshot.commit} (revision {snapshot.revision}, {snapshot.origin}): {snapshot.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
