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


@pytest.mark.parametrize("weights", ["raw", pytest.param("processed", marks=pytest.mark.slow)])
def test_reduced_precision_on_the_cpu_stores_weights_matmul_friendly_with_the_same_values(weights, monkeypatch):
    """On the CPU, a bfloat16 model's matmul weights are laid out for the fast addmm path
    (``store_matmul_friendly``): the same values as the model loaded without it, and the same
    logits within one bfloat16 rounding step at their magnitude (another kernel, another order)."""
    import interp_claims.models as models
    from interp_claims.builtin.embedded import planted_model_folder
    from interp_claims.tolerances import rounding_step

    spec, cpu = resolve_model(str(planted_model_folder())), torch.device("cpu")
    friendly = models.load_model(spec, cpu, torch.bfloat16, weights).bridge
    monkeypatch.setattr(models, "uses_matmul_friendly_weights", lambda device, dtype: False)
    as_loaded = models.load_model(spec, cpu, torch.bfloat16, weights).bridge
    loaded_parameters = dict(as_loaded.named_parameters())
    for name, parameter in friendly.named_parameters():
        assert torch.equal(parameter, loaded_parameters[name]), name
    layouts = [(type(m).__name__, m.weight) for m in friendly.modules() if type(m).__name__ in ("Linear", "Conv1D")]
    assert any(kind == "Conv1D" for kind, _ in layouts)
    for kind, weight in layouts:  # the product reads W^T (Linear) or W (Conv1D): its transpose contiguous
        assert (weight if kind == "Linear" else weight.T).is_contiguous(), kind
    assert models.store_matmul_friendly(friendly) == 0  # nothing left to change

    tokens = friendly.to_tokens("The cat sat")
    with torch.no_grad():
        fast, slow = friendly(tokens).float(), as_loaded(tokens).float()
    assert (fast - slow).abs().max() <= rounding_step(torch.bfloat16, float(slow.abs().max()))
