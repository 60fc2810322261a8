"""Resolve a model name to weights on disk, check them, and load them through TransformerLens 4.

Three kinds of model, all loaded by ``TransformerBridge.boot_transformers(folder)``:

* ``embedded`` (the default): the planted GPT-2-shaped model of ``interp_claims.builtin.embedded``,
  built into a cache folder on first use;
* ``trained``: a small GPT-2 trained here (``interp_claims.builtin.trained``), trained into a
  cache folder on first use, with its training checkpoints;
* a Hugging Face id (``gpt2`` is an alias of ``openai-community/gpt2``): the local cache
  first, a download when the network allows it, at ``--revision`` (``interp_claims.hub``);
* a folder path holding ``config.json``, weights and tokenizer files.

Every failure is a ``ModelError`` whose message names the model, the cause and the remedy.
"""

import json
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from interp_claims.errors import ModelConfigError, ModelLoadError, ModelUnavailable, did_you_mean  # noqa: F401 (re-exported)
from interp_claims.hub import ALIASES, GPT2_ID, fetch

EMBEDDED = "embedded"
TRAINED = "trained"
BUILT = {EMBEDDED: "embedded", TRAINED: "trained"}  # --model names of the models this project makes
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
WEIGHT_CONVENTIONS = ("raw", "processed")
SUPPORTED_MODEL_TYPES = ("gpt2",)  # the probes read GPT-2's hook names and MLP/LayerNorm layout

# Families name which claims apply: a claim lists the families it was written for.
FAMILY_EMBEDDED = "embedded"
FAMILY_TRAINED = "trained"
FAMILY_GPT2 = "gpt2"
FAMILY_OTHER = "other"
FAMILIES = (FAMILY_EMBEDDED, FAMILY_TRAINED, FAMILY_GPT2, FAMILY_OTHER)
GPT2_SMALL_SHAPE = {"model_type": "gpt2", "n_layer": 12, "n_head": 12, "n_embd": 768, "vocab_size": 50257}
FOLDER_HELP = (
    "A model folder is what `save_pretrained` writes: config.json, model.safetensors (or "
    "pytorch_model.bin) and tokenizer files (`python -m interp_claims.export DIR` writes the embedded one)."
)


@dataclass(frozen=True)
class ModelSpec:
    """Where a model's weights are, and which family of claims applies to it."""

    name: str  # as the user wrote it
    kind: str  # "embedded" | "hub" | "folder"
    hub_id: str | None = None
    revision: str | None = None  # hub models only
    folder: Path | None = None
    family: str | None = None  # None: inferred once the files are on disk


@dataclass(frozen=True)
class ModelSource:
    """Where the weights were found: the folder to boot, and for hub models the resolved commit."""

    folder: Path
    commit: str | None = None
    origin: str = "local"  # "local", "built", "hub" or "cache"


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or name in (".", "..") or Path(name).exists()


def resolve_model(name: str, family: str | None = None, revision: str | None = None) -> ModelSpec:
    """Turn ``--model`` into a spec, without touching the network. Raises ModelConfigError."""
    if family is not None and family not in FAMILIES:
        raise ModelConfigError(f"--model-family {family!r} is not a model family{did_you_mean(family, FAMILIES)}. "
                               f"Valid: {', '.join(FAMILIES)}.")
    if revision is not None and (name in BUILT or _looks_like_path(name)):
        raise ModelConfigError(
            f"--revision {revision!r} applies to Hugging Face ids only, not to --model {name!r}: "
            "a folder or a model built here has one version (the trained model's checkpoints are claims' `checkpoints`)."
        )
    if name in BUILT:
        return ModelSpec(name=name, kind=BUILT[name], family=family or name)
    if _looks_like_path(name):
        folder = Path(name).expanduser().resolve()
        if folder.is_file():
            raise ModelConfigError(
                f"--model {name!r} is a file, not a folder. Give the folder that holds the model "
                f"(here perhaps {folder.parent}). {FOLDER_HELP}"
            )
        if not folder.is_dir():
            raise ModelConfigError(
                f"--model {name!r}: no such folder ({folder}). Give a folder holding a Hugging "
                "Face GPT-2-architecture model, 'embedded', or a Hugging Face id such as 'gpt2'."
            )
        return ModelSpec(name=name, kind="folder", folder=folder, family=family)
    hub_id = ALIASES.get(name, name)
    if "/" not in hub_id:
        raise ModelConfigError(
            f"--model {name!r} is not a known model. Valid: 'embedded' (the default), 'trained', "
            f"{', '.join(repr(a) for a in ALIASES)} (= {GPT2_ID!r}), a Hugging Face id "
            "'org/name', or a path to a model folder."
        )
    inferred = FAMILY_GPT2 if hub_id == GPT2_ID else None
    return ModelSpec(name=name, kind="hub", hub_id=hub_id, revision=revision, family=family or inferred)


def locate(spec: ModelSpec) -> ModelSource:
    """The folder to boot from: builds the embedded model or fetches a hub model on first use,
    then checks the files. Raises ModelUnavailable or ModelLoadError."""
    if spec.kind == "embedded":
        from interp_claims.builtin.embedded import planted_model_folder

        source = ModelSource(planted_model_folder(), origin="built")
    elif spec.kind == "trained":
        from interp_claims.builtin.trained import trained_model_folder

        source = ModelSource(trained_model_folder(), origin="built")
    elif spec.kind == "hub":
        snapshot = fetch(spec.hub_id, spec.revision)
        source = ModelSource(snapshot.folder, commit=snapshot.commit, origin=snapshot.origin)
    else:
        source = ModelSource(spec.folder)
    check_folder(source.folder, spec.name)
    return source


def check_folder(folder: Path, name: str) -> dict:
    """Check a model folder's files before booting it; returns its parsed config.json."""
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    weights = weight_files(folder)
    if not weights:
        missing.append("model.safetensors (or pytorch_model.bin)")
    if not (folder / "tokenizer.json").is_file() and not (
        (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    ):
        missing.append("a tokenizer (tokenizer.json, or vocab.json + merges.txt)")
    if missing:
        raise ModelLoadError(f"model {name!r}: the folder {folder} lacks {', '.join(missing)}. {FOLDER_HELP}")
    try:
        config = json.loads((folder / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelLoadError(
            f"model {name!r}: {folder / 'config.json'} is not valid JSON ({error}). Re-download or re-save the model."
        ) from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"model {name!r}: {folder / 'config.json'} holds {type(config).__name__}, not a JSON object.")
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelLoadError(
            f"model {name!r} has architecture {model_type!r} (config.json model_type); the claims and probes of "
            f"this suite read GPT-2's layout: valid architectures are {', '.join(map(repr, SUPPORTED_MODEL_TYPES))}."
        )
    for path in weights:
        check_weights_file(path, name)
    return config


def weight_files(folder: Path) -> list[Path]:
    for pattern in ("model.safetensors", "model-*-of-*.safetensors", "pytorch_model.bin", "pytorch_model-*-of-*.bin"):
        found = sorted(folder.glob(pattern))
        if found:
            return found
    return []


def check_weights_file(path: Path, name: str) -> None:
    """A truncated or corrupt weights file is named here, not 300 lines deep in a loader."""
    size = path.stat().st_size
    problem = None
    if path.suffix == ".safetensors":
        with path.open("rb") as handle:
            head = handle.read(8)
            header_size = struct.unpack("<Q", head)[0] if len(head) == 8 else None
            if header_size is None or header_size > size - 8:
                problem = f"its header is cut short ({size} bytes)"
            else:
                try:
                    header = json.loads(handle.read(header_size))
                    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
                except (ValueError, KeyError, TypeError, IndexError):
                    problem = "its header is not valid safetensors JSON"
                else:
                    if 8 + header_size + end > size:
                        problem = f"it is {size} bytes but its header describes {8 + header_size + end} (truncated)"
    elif not zipfile.is_zipfile(path):
        problem = f"it is not a complete PyTorch archive ({size} bytes; truncated or corrupt)"
    if problem:
        raise ModelLoadError(f"model {name!r}: the weights file {path} is unusable: {problem}. Re-download or re-save the model.")


def built_model_info(folder: Path) -> dict:
    """What a model built here says about itself (planted.json, or trained.json without its loss curve)."""
    for name in ("planted.json", "trained.json"):
        if (folder / name).is_file():
            info = json.loads((folder / name).read_text())
            info.pop("loss_curve", None)
            return info
    return {}


def infer_family(folder: Path) -> str:
    if (folder / "planted.json").is_file():
        return FAMILY_EMBEDDED
    if (folder / "trained.json").is_file():
        return FAMILY_TRAINED
    config = json.loads((folder / "config.json").read_text())
    if all(config.get(key) == value for key, value in GPT2_SMALL_SHAPE.items()):
        return FAMILY_GPT2
    return FAMILY_OTHER


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


def pin_precision(dtype: torch.dtype, device: torch.device | None = None) -> dict[str, bool | str]:
    """Make a dtype mean what it says on CUDA, and say what was set (for the report).

    float32 means float32: no TF32 matmuls or convolutions (TF32 keeps 10 mantissa bits, a ~1e-3
    relative error that float32 tolerances of 1e-4 and 1e-5 do not allow), for float32 models and
    for the float32 arithmetic of probes on reduced-precision models (products over the vocabulary,
    references). Reductions in bfloat16/float16 matmuls accumulate in float32."""
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
    return {
        "cuda_matmul_fp32_precision": torch.backends.cuda.matmul.fp32_precision,
        "cudnn_conv_fp32_precision": torch.backends.cudnn.conv.fp32_precision,
        "bf16_reduced_precision_reduction": torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction,
        "fp16_reduced_precision_reduction": torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction,
        "cpu_matmul_weight_layout": "transposed-contiguous (store_matmul_friendly)"
        if device is not None and uses_matmul_friendly_weights(device, dtype) else "as stored",
    }


REDUCED_PRECISION = (torch.bfloat16, torch.float16)


def uses_matmul_friendly_weights(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``load_model`` re-lays out the model's matmul weights (see ``store_matmul_friendly``)."""
    return device.type == "cpu" and dtype in REDUCED_PRECISION


def store_matmul_friendly(bridge) -> int:
    """Store each matmul weight so that the product reads it transposed-contiguous: ``Linear``
    weights ``[out, in]`` row-major (the bridge's split q/k/v weights are strided views of GPT-2's
    fused ``c_attn``), Hugging Face ``Conv1D`` weights ``[in, out]`` column-major. The same values
    and shapes, other strides. PyTorch's CPU bfloat16/float16 ``addmm`` without AVX-512 takes a slow
    generic path for any other layout (measured here: 4.9 s against 0.46 s for a 1010 x 768 by
    768 x 3072 product); float32, and CUDA kernels, do not care. Returns how many were changed."""
    changed = 0
    for module in bridge.modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.nn.Parameter) or weight.dim() != 2:
            continue
        kind = type(module).__name__
        if kind == "Linear" and not weight.is_contiguous():
            weight.data = weight.data.contiguous()
        elif kind == "Conv1D" and not weight.T.is_contiguous():
            weight.data = weight.data.T.contiguous().T
        else:
            continue
        changed += 1
    return changed


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``: how test ids, markers and reports name a dtype."""
    return str(dtype).removeprefix("torch.")


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
    convention: str  # weight convention: "raw" (Hugging Face weights) or "processed" (compatibility mode)
    folder: Path
    info: dict = field(default_factory=dict)

    @property
    def cfg(self):
        return self.bridge.cfg

    @property
    def family(self) -> str:
        return self.spec.family


def load_model(
    spec: ModelSpec, device: torch.device, dtype: torch.dtype, convention: str = "raw", source: ModelSource | None = None
) -> LoadedModel:
    """Boot the model through ``TransformerBridge.boot_transformers``; eval mode. Raises ModelError."""
    if convention not in WEIGHT_CONVENTIONS:
        raise ModelConfigError(f"weights {convention!r} is not a convention. Valid: {', '.join(WEIGHT_CONVENTIONS)}.")
    source = source or locate(spec)
    from transformer_lens.model_bridge import TransformerBridge

    try:
        bridge = TransformerBridge.boot_transformers(str(source.folder), device=device, dtype=dtype)
        if convention == "processed":
            bridge.enable_compatibility_mode()
    except Exception as error:  # a library's failure deep inside, reported as one line
        first_line = (str(error).strip().splitlines() or [""])[0][:300]
        raise ModelLoadError(
            f"model {spec.name!r}: TransformerLens could not load {source.folder} ({convention} weights): "
            f"{type(error).__name__}: {first_line}"
        ) from error
    bridge.eval()
    if uses_matmul_friendly_weights(device, dtype):
        store_matmul_friendly(bridge)
    info = built_model_info(source.folder)
    return LoadedModel(spec=spec, bridge=bridge, device=device, dtype=dtype, convention=convention, folder=source.folder, info=info)
