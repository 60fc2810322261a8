"""Resolve a model name to weights on disk, and load it through TransformerLens 4.

Three kinds of model, all loaded by ``TransformerBridge.boot_transformers(folder)``:

* ``embedded`` (the default): the planted GPT-2-shaped model of ``probes.embedded``,
  built into a cache folder on first use;
* a Hugging Face id (``gpt2`` is an alias of ``openai-community/gpt2``): looked up in
  the local Hugging Face cache only, so it never waits on a network retry;
* a folder path holding ``config.json``, weights and tokenizer files.

Errors name the bad value and what would be valid.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

EMBEDDED = "embedded"
GPT2_ID = "openai-community/gpt2"
ALIASES = {"gpt2": GPT2_ID, "gpt2-small": GPT2_ID}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
WEIGHT_CONVENTIONS = ("raw", "processed")

# Families name which claims apply: a claim lists the families it was written for.
FAMILY_EMBEDDED = "embedded"
FAMILY_GPT2 = "gpt2"
FAMILY_OTHER = "other"
GPT2_SMALL_SHAPE = {"model_type": "gpt2", "n_layer": 12, "n_head": 12, "n_embd": 768, "vocab_size": 50257}


class ModelConfigError(ValueError):
    """The model, device or dtype asked for cannot be used (a usage error)."""


class WeightsUnavailable(RuntimeError):
    """The model is valid, but its weights are not on this machine."""


@dataclass(frozen=True)
class ModelSpec:
    """Where a model's weights are, and which family of claims applies to it."""

    name: str  # as the user wrote it
    kind: str  # "embedded" | "hub" | "folder"
    hub_id: str | None = None
    folder: Path | None = None
    family: str = FAMILY_OTHER


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or name in (".", "..") or Path(name).exists()


def resolve_model(name: str, family: str | None = None) -> ModelSpec:
    """Turn ``--model`` into a spec. Raises ModelConfigError for a name that cannot be valid."""
    if name == EMBEDDED:
        return ModelSpec(name=name, kind="embedded", family=family or FAMILY_EMBEDDED)
    if _looks_like_path(name):
        folder = Path(name).expanduser().resolve()
        if not folder.is_dir():
            raise ModelConfigError(
                f"--model {name!r}: no such folder ({folder}). Give a folder holding a Hugging "
                "Face GPT-2-architecture model (config.json, model.safetensors or "
                "pytorch_model.bin, tokenizer files), 'embedded', or a Hugging Face id such as 'gpt2'."
            )
        _check_folder(folder, name)
        return ModelSpec(name=name, kind="folder", folder=folder, family=family or _infer_family(folder))
    hub_id = ALIASES.get(name, name)
    if "/" not in hub_id:
        raise ModelConfigError(
            f"--model {name!r} is not a known model. Valid: 'embedded' (the default), "
            f"{', '.join(repr(a) for a in ALIASES)} (= {GPT2_ID!r}), a Hugging Face id "
            "'org/name' present in the local cache, or a path to a model folder."
        )
    inferred = FAMILY_GPT2 if hub_id == GPT2_ID else FAMILY_OTHER
    return ModelSpec(name=name, kind="hub", hub_id=hub_id, family=family or inferred)


def _check_folder(folder: Path, name: str) -> None:
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any((folder / w).is_file() for w in ("model.safetensors", "pytorch_model.bin")) and not any(
        folder.glob("model-*.safetensors")
    ):
        missing.append("model.safetensors (or pytorch_model.bin)")
    if not any((folder / t).is_file() for t in ("tokenizer.json", "vocab.json")):
        missing.append("tokenizer.json (or vocab.json + merges.txt)")
    if missing:
        raise ModelConfigError(
            f"--model {name!r}: the folder {folder} lacks {', '.join(missing)}. A model folder is "
            "what `save_pretrained` writes (e.g. `python -m probes.export DIR` for the embedded model)."
        )


def _infer_family(folder: Path) -> str:
    if (folder / "planted.json").is_file():
        return FAMILY_EMBEDDED
    config = json.loads((folder / "config.json").read_text())
    if all(config.get(key) == value for key, value in GPT2_SMALL_SHAPE.items()):
        return FAMILY_GPT2
    return FAMILY_OTHER


def hub_cache_folder(hub_id: str) -> Path:
    """The local snapshot folder of a Hugging Face id, without touching the network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(hub_id, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError) as error:
        from huggingface_hub.constants import HF_HUB_CACHE

        raise WeightsUnavailable(
            f"weights for {hub_id!r} are not in the local Hugging Face cache ({HF_HUB_CACHE}). "
            f"Provide them: run `huggingface-cli download {hub_id}` on a machine with internet and "
            "copy the cache (set HF_HOME or HF_HUB_CACHE to it), or save the model to a folder "
            "and pass --model /path/to/folder."
        ) from error


def weights_folder(spec: ModelSpec) -> Path:
    """The folder to boot from; builds the embedded model on first use."""
    if spec.kind == "embedded":
        from probes.embedded import planted_model_folder

        return planted_model_folder()
    if spec.kind == "hub":
        return hub_cache_folder(spec.hub_id)
    return spec.folder


def resolve_device(requested: str | None) -> torch.device:
    """``None`` means the best device present: CUDA if available, else CPU."""
    if requested is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as error:
        raise ModelConfigError(f"--device {requested!r} is not a device. Valid: 'cpu', 'cuda', 'cuda:N'.") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelConfigError(
                f"--device {requested!r}: CUDA is not available on this machine "
                f"(torch {torch.__version__}, built with CUDA: {torch.version.cuda or 'no'}). Use --device cpu."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ModelConfigError(
                f"--device {requested!r}: this machine has {torch.cuda.device_count()} CUDA device(s)."
            )
    elif device.type != "cpu":
        raise ModelConfigError(f"--device {requested!r} is not supported. Valid: 'cpu', 'cuda', 'cuda:N'.")
    return device


def resolve_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ModelConfigError(f"--dtype {name!r} is not supported. Valid: {', '.join(DTYPES)}.")
    return DTYPES[name]


@dataclass
class LoadedModel:
    """A model ready for probes. Session-scoped and read-only: probes must not mutate it."""

    spec: ModelSpec
    bridge: object  # transformer_lens.model_bridge.TransformerBridge
    device: torch.device
    dtype: torch.dtype
    weights: str  # "raw" (Hugging Face weights) or "processed" (compatibility mode)
    folder: Path
    info: dict = field(default_factory=dict)

    @property
    def cfg(self):
        return self.bridge.cfg

    @property
    def family(self) -> str:
        return self.spec.family

    @property
    def dtype_name(self) -> str:
        return next(name for name, dtype in DTYPES.items() if dtype == self.dtype)


def load_model(spec: ModelSpec, device: torch.device, dtype: torch.dtype, weights: str = "raw") -> LoadedModel:
    """Boot the model through ``TransformerBridge.boot_transformers``; offline, eval mode."""
    if weights not in WEIGHT_CONVENTIONS:
        raise ModelConfigError(f"weights {weights!r} is not a convention. Valid: {', '.join(WEIGHT_CONVENTIONS)}.")
    folder = weights_folder(spec)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder needs no network, ever
    from transformer_lens.model_bridge import TransformerBridge

    bridge = TransformerBridge.boot_transformers(str(folder), device=device, dtype=dtype)
    if weights == "processed":
        bridge.enable_compatibility_mode()
    bridge.eval()
    planted = folder / "planted.json"
    info = json.loads(planted.read_text()) if planted.is_file() else {}
    return LoadedModel(spec=spec, bridge=bridge, device=device, dtype=dtype, weights=weights, folder=folder, info=info)
