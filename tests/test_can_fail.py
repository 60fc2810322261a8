"""Claims that once could not fail, each shown failing on a real model or input built for it.

* ``normalisation.*`` (probabilities sum to one): a softmax sums to one whatever the logits are,
  so these fail only on non-finite logits: a model with a NaN in its final LayerNorm gain.
  ``normalisation.final-layernorm`` reads the model's own path: a final LayerNorm that no
  longer normalises (epsilon 1.0 in the model's config) fails it, and the softmax claims pass.
* ``invariance.batch-shape``: right padding cannot reach a real position through causal
  attention; the claim pads on the left and runs with the mask. The same batch run without the
  mask (padding that leaks into every prompt's attention and shifts its positions) fails it.

Each model here is a real folder loaded through TransformerBridge, as the suite loads any model.
"""

import json
import shutil

import pytest
import torch

from interp_claims.context import ForwardRunner, ProbeContext
from interp_claims.inputs import InputSpec
from interp_claims.models import load_model, resolve_model
from interp_claims.tolerances import tolerance
from interp_claims.probes.distribution import (
    FINAL_NORMALIZED,
    batch_deviation,
    batch_consistency,
    final_norm_deviation,
    probability_sum_deviation,
)

NOTEBOOK = "This is a story about Quomatarus. When one day Quomatarus decided to do something different"
BATCH = ("Hello world!", "The cat sat on the mat because it was tired.",
         "When Mary and John went to the store, John gave a drink to")
CPU = torch.device("cpu")


def probe_context(model, spec: InputSpec, hooks: tuple[str, ...] = ()) -> ProbeContext:
    return ProbeContext(model, ForwardRunner(model), spec, hooks)


def load(folder):
    return load_model(resolve_model(str(folder)), CPU, torch.float32)


@pytest.fixture(scope="module")
def random_model(random_gpt2_folder):
    return load(random_gpt2_folder)


@pytest.fixture(scope="module")
def loose_layernorm_model(random_gpt2_folder, tmp_path_factory):
    """The random GPT-2 with LayerNorm's epsilon at 1.0 in its config: every LayerNorm divides by
    sqrt(variance + 1) instead of sqrt(variance), so nothing it outputs has unit RMS."""
    folder = tmp_path_factory.mktemp("models") / "loose-layernorm"
    shutil.copytree(random_gpt2_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "layer_norm_epsilon": 1.0}))
    return load(folder)


@pytest.fixture(scope="module")
def nan_model(random_gpt2_folder, tmp_path_factory):
    """The random GPT-2 with one NaN in its final LayerNorm's gain: every logit is NaN."""
    from transformers import GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("models") / "nan-final-gain"
    shutil.copytree(random_gpt2_folder, folder)
    model = GPT2LMHeadModel.from_pretrained(folder)
    with torch.no_grad():
        model.transformer.ln_f.weight[0] = float("nan")
    model.save_pretrained(folder)
    return load(folder)


def test_a_final_layernorm_that_does_not_normalise_fails_only_the_layernorm_claim(random_model, loose_layernorm_model):
    spec = InputSpec(texts=(NOTEBOOK,))
    bound = 1e-2  # normalisation.final-layernorm
    healthy = final_norm_deviation(probe_context(random_model, spec, (FINAL_NORMALIZED,))).value
    broken = final_norm_deviation(probe_context(loose_layernorm_model, spec, (FINAL_NORMALIZED,))).value
    assert healthy <= bound < 0.5 < broken
    # the softmax still sums to one on the broken model: why the sum claims cannot see this
    assert probability_sum_deviation(probe_context(loose_layernorm_model, spec)).value <= tolerance("probability", torch.float32)


def test_non_finite_logits_fail_the_probability_sum(nan_model):
    measurement = probability_sum_deviation(probe_context(nan_model, InputSpec(texts=(NOTEBOOK,))))
    assert measurement.value == float("inf") and measurement.details["nonfinite_logits"] > 0


def test_left_padding_leaks_without_its_mask(random_model):
    """The claim's batch with its mask is exact to float32 noise; the same batch without the mask
    (padding attended to, positions counted from the row's start) moves log-probabilities."""
    spec = InputSpec(texts=BATCH, padding="left")
    ctx = probe_context(random_model, spec)
    masked = batch_consistency(ctx)
    bound = tolerance("logprob", torch.float32, masked.details["magnitude"])
    assert masked.value <= bound
    with torch.no_grad():
        alone = [random_model.bridge(ctx.runner.tokens(InputSpec(texts=(text,))))[0] for text in BATCH]
        leaking = random_model.bridge(ctx.tokens())  # the padded batch, no attention mask
    leak, _ = batch_deviation(leaking, ctx.tokens(), ctx.spans(), alone)
    assert leak > 100 * bound, leak


def test_left_padding_puts_each_prompt_at_the_end_of_its_row(random_model):
    runner = ForwardRunner(random_model)
    spec = InputSpec(texts=BATCH, padding="left")
    tokens, spans, mask = runner.tokens(spec), runner.spans(spec), runner.attention_mask(spec)
    width = tokens.shape[1]
    for row, text in enumerate(BATCH):
        alone = random_model.bridge.to_tokens(text)[0]
        assert spans[row] == (width - len(alone), width)
        assert torch.equal(tokens[row, width - len(alone):], alone)
        assert mask[row].tolist() == [0] * (width - len(alone)) + [1] * len(alone)
    assert runner.attention_mask(InputSpec(texts=BATCH)) is None


def test_padding_names_its_choices():
    with pytest.raises(ValueError, match="padding must be one of 'right', 'left', got 'middle'"):
        InputSpec.from_table({"texts": list(BATCH), "padding": "middle"})
