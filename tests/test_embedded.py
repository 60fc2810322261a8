"""The embedded planted model: deterministic, a standard Hugging Face folder, circuits where planted."""

import sys

import pytest
import torch

from interp_claims.builtin.embedded import (
    DEFAULT_LAYOUT,
    PlantedLayout,
    build_planted_gpt2,
    planted_model_folder,
    position_codes,
    position_frequencies,
    rotate_back_one,
    token_codes,
)
from tests.helpers import run


def test_build_is_deterministic_and_seed_dependent():
    a, b = build_planted_gpt2(seed=0).state_dict(), build_planted_gpt2(seed=0).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = build_planted_gpt2(seed=1).state_dict()
    assert not torch.equal(a["transformer.wte.weight"], c["transformer.wte.weight"])


def test_token_codes_are_unit_zero_mean_and_nearly_orthogonal():
    codes = token_codes(0)
    norms = codes.norm(dim=-1)
    assert torch.allclose(norms[:-1], torch.ones_like(norms[:-1]), atol=1e-5) and norms[-1] == 0
    block_a = codes[:-1, :31].norm(dim=-1) ** 2  # duplicate-token heads match on block A alone
    assert torch.allclose(block_a, torch.full_like(block_a, 0.5), atol=1e-5)
    assert codes.mean(dim=-1).abs().max() < 1e-6
    sample = codes[:2000] @ codes[:2000].T
    off_diagonal = sample - torch.diag(torch.diag(sample))
    assert off_diagonal.abs().max() < 0.7  # random codes in 62 dims: std ~0.13


def test_position_rotation_maps_each_position_to_the_previous():
    freqs = position_frequencies(0)
    codes = position_codes(freqs)
    # float32 angles reach 1024 * pi ~ 3.2e3 rad, whose ulp is 2.4e-4: cos/sin carry that much
    # error, divided by sqrt(32) in the code (~4e-5); hence 1e-4.
    torch.testing.assert_close(codes[1:] @ rotate_back_one(freqs), codes[:-1], atol=1e-4, rtol=0)
    similarity = codes[1:200] @ rotate_back_one(freqs) @ codes[:200].T  # query i+1 against keys j
    assert torch.equal(similarity.argmax(dim=-1), torch.arange(199))


def demo_scores_of(folder) -> dict[str, torch.Tensor]:
    """Every head's three scores exactly as TransformerLens's Exploratory demo measures them
    (cells 98-100: torch.manual_seed(0), [R, R] of randint(100, 20000), batch 2, diagonal means)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    torch.manual_seed(0)
    random_tokens = torch.randint(100, 20000, (2, 100))
    with torch.no_grad():
        patterns = model(torch.cat([random_tokens, random_tokens], dim=1), output_attentions=True).attentions
    offsets = {"previous_token": 1, "duplicate_token": 100, "induction": 99}
    return {kind: torch.stack([p.diagonal(offset=-k, dim1=-2, dim2=-1).mean(dim=(0, -1)) for p in patterns])
            for kind, k in offsets.items()}


def test_the_twin_reproduces_all_432_published_head_scores_under_the_demos_setup():
    """The issue's bar: every one of GPT-2 small's published previous-token, duplicate-token and
    induction scores (run A) within 0.05, weak and backup heads included, measured the demo's way
    (independently of the suite's probes: transformers' attentions and the demo's own code)."""
    from interp_claims.published import demo_table

    measured = demo_scores_of(planted_model_folder())
    for kind, scores in measured.items():
        published = torch.tensor(demo_table(kind))
        deviation = (scores - published).abs()
        assert deviation.max() < 0.05, (kind, divmod(int(deviation.argmax()), 12), float(deviation.max()))
        assert deviation.mean() < 0.01, (kind, float(deviation.mean()))
    induction = measured["induction"]
    backups = [induction[layer, head] for layer, head in ((10, 1), (9, 9), (9, 6), (5, 0))]
    assert all(0.35 < float(score) < 0.6 for score in backups)  # the backups are there, at half strength


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (dict(induction=((12, 0),)), "outside the model"),
        (dict(silent=((5, 1),), bos_sink=((5, 1),)), "planted twice"),
        (dict(previous_token=((6, 0),), induction=((5, 1),)), "before the first induction head"),
        (dict(swaps=(((2, 2), (7, 0)),)), "before the first induction head"),
    ],
)
def test_bad_layouts_are_refused(layout, message):
    with pytest.raises(ValueError, match=message):
        PlantedLayout(**layout)


def test_cached_folder_loads_unchanged_with_transformers():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = planted_model_folder()
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer(" Quomatarus", return_tensors="pt").input_ids
    assert ids.tolist() == [[2264, 296, 9459, 385]]
    with torch.no_grad():
        reference = build_planted_gpt2(DEFAULT_LAYOUT)(ids).logits
        loaded = model(ids).logits
    torch.testing.assert_close(loaded, reference, rtol=0, atol=0)


def test_bridge_logits_equal_hugging_face_logits(claims_model):
    """TransformerBridge (raw weights) runs the same network as transformers, in the session's
    dtype: equal within the ``logprob`` tolerance at the logits' magnitude (1e-4 in float32; in
    bfloat16 and float16 the two run other kernels, so up to 4 rounding steps of the largest logit)."""
    from transformers import AutoModelForCausalLM

    from interp_claims.tolerances import tolerance

    hf = AutoModelForCausalLM.from_pretrained(claims_model.folder, attn_implementation="eager").eval().to(claims_model.device, claims_model.dtype)
    tokens = claims_model.bridge.to_tokens("When Mary and John went to the store, John gave a drink to")
    with torch.no_grad():
        bridge_logits, hf_logits = claims_model.bridge(tokens).float(), hf(tokens).logits.float()
    atol = tolerance("logprob", claims_model.dtype, magnitude=float(hf_logits.abs().max()))
    torch.testing.assert_close(bridge_logits, hf_logits, atol=atol, rtol=0)


@pytest.mark.slow  # a subprocess that builds and reloads the model (~13 s)
def test_export_cli_writes_a_loadable_folder(tmp_path):
    result = run(sys.executable, "-m", "interp_claims.export", str(tmp_path / "exported"))
    assert result.returncode == 0, result.stderr
    files = {p.name for p in (tmp_path / "exported").iterdir()}
    assert {"config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer_config.json", "planted.json"} <= files
    from transformer_lens.model_bridge import TransformerBridge

    bridge = TransformerBridge.boot_transformers(str(tmp_path / "exported"), device="cpu")
    assert bridge.to_str_tokens(" Quomatarus") == ["<|endoftext|>", " Qu", "om", "atar", "us"]


def test_export_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    result = run(sys.executable, "-m", "interp_claims.export", str(tmp_path))
    assert result.returncode == 2 and "exists and is not empty" in result.stderr
