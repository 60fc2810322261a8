"""Resolving --model, --device and --dtype: bad values are clear errors."""

import json

import pytest
import torch

from interp_claims.errors import ModelConfigError, ModelLoadError, ModelUnavailable
from interp_claims.hub import fetch
from interp_claims.models import (
    FAMILY_EMBEDDED,
    FAMILY_GPT2,
    GPT2_ID,
    check_folder,
    infer_family,
    resolve_device,
    resolve_dtype,
    resolve_model,
)


def test_aliases_and_families():
    assert resolve_model("embedded").family == FAMILY_EMBEDDED
    spec = resolve_model("gpt2")
    assert (spec.kind, spec.hub_id, spec.family) == ("hub", GPT2_ID, FAMILY_GPT2)
    assert resolve_model("someone/other-model").family is None  # inferred from its files once fetched
    assert resolve_model("gpt2", family="embedded").family == "embedded"


def test_unknown_model_names_valid_choices():
    with pytest.raises(ModelConfigError, match=r"'gpt3' is not a known model. Valid: 'embedded'"):
        resolve_model("gpt3")


def test_missing_folder(tmp_path):
    with pytest.raises(ModelConfigError, match="no such folder"):
        resolve_model(str(tmp_path / "absent"))


def test_a_file_is_not_a_model_folder(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ModelConfigError, match=r"is a file, not a folder. Give the folder that holds the model"):
        resolve_model(str(tmp_path / "model.safetensors"))


def test_revision_applies_to_hub_ids_only(tmp_path):
    with pytest.raises(ModelConfigError, match=r"--revision 'v1' applies to Hugging Face ids only"):
        resolve_model("embedded", revision="v1")
    assert resolve_model("gpt2", revision="v1").revision == "v1"


def test_folder_without_weights_names_missing_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match=r"lacks model.safetensors .*a tokenizer"):
        check_folder(tmp_path, "x")


def test_folder_family_inferred_from_shape(tmp_path):
    config = {"model_type": "gpt2", "n_layer": 12, "n_head": 12, "n_embd": 768, "vocab_size": 50257}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert infer_family(tmp_path) == FAMILY_GPT2
    (tmp_path / "planted.json").write_text("{}")
    assert infer_family(tmp_path) == FAMILY_EMBEDDED


def test_uncached_hub_model_offline_is_unavailable_with_the_remedy(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelUnavailable, match=r"not in the local Hugging Face cache .* HF_HUB_OFFLINE is set. Remedy: .*python -m interp_claims.hub openai-community/gpt2 --revision main"):
        fetch(GPT2_ID)


def test_cuda_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelConfigError, match="CUDA is not available"):
        resolve_device("cuda")


def test_device_default_and_bad_values():
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ModelConfigError, match="'tpu' is not a device"):
        resolve_device("tpu")


def test_dtype_names():
    assert resolve_dtype("bfloat16") is torch.bfloat16
    with pytest.raises(ModelConfigError, match="Valid: float32, bfloat16, float16"):
        resolve_dtype("float64")


def test_hub_id_loads_from_a_local_hugging_face_cache(tmp_path, monkeypatch):
    """`--model gpt2` resolves through the Hugging Face cache layout (refs/main -> snapshots/HASH):
    here a real cache holding the embedded model's files under GPT-2's id."""
    import huggingface_hub.constants as constants

    from interp_claims.builtin.embedded import planted_model_folder
    from interp_claims.models import load_model, locate

    commit = "0" * 40
    repo = tmp_path / "models--openai-community--gpt2"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for file in planted_model_folder().iterdir():
        (snapshot / file.name).symlink_to(file)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    spec = resolve_model("gpt2")
    source = locate(spec)
    assert (source.folder, source.commit, source.origin) == (snapshot, commit, "cache")
    loaded = load_model(spec, torch.device("cpu"), torch.float32, source=source)
    assert loaded.bridge.to_str_tokens(" Quomatarus") == ["<|endoftext|>", " Qu", "om", "atar", "us"]
