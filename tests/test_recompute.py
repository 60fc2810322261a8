"""The hand recompute of the MLP can fail: each way of getting GPT-2's MLP wrong is caught.

The embedded model has non-zero MLP and LayerNorm biases and LayerNorm gains that vary by
dimension, so a recompute that drops one of them disagrees with the activation cache by more
than the float32 tolerance, in both weight conventions; the right one agrees."""

from dataclasses import replace

import pytest
import torch

from interp_claims.tolerances import tolerance
from interp_claims.probes.recompute import mlp_parameters, reference_mlp, relative_error

NOTEBOOK = "This is a story about Quomatarus. When one day Quomatarus decided to do something different"
MUTATIONS = {
    "as GPT-2 computes it": lambda params: (params, None),
    "without b_out": lambda params: (replace(params, b_out=torch.zeros_like(params.b_out)), None),
    "without b_in": lambda params: (replace(params, b_in=torch.zeros_like(params.b_in)), None),
    "without the LayerNorm gain": lambda params: (replace(params, ln_weight=torch.ones_like(params.ln_weight)), None),
    "without the LayerNorm bias": lambda params: (replace(params, ln_bias=torch.zeros_like(params.ln_bias)), None),
    "with the exact GELU": lambda params: (params, torch.nn.functional.gelu),
}


@pytest.fixture(scope="module")
def cached(claims_run):
    """(model, cache) of the embedded model (raw weights, float32: the precision in which the
    check must tell a wrong GELU from the right one) on a prompt: the session's model when it is
    that, else the embedded model loaded here."""
    from interp_claims.models import load_model, resolve_model

    if (claims_run.family, claims_run.convention, claims_run.dtype) == ("embedded", "raw", torch.float32):
        model = claims_run.model()
    else:
        model = load_model(resolve_model("embedded"), claims_run.device, torch.float32)
    with torch.no_grad():
        _, cache = model.bridge.run_with_cache(model.bridge.to_tokens(NOTEBOOK))
    return model, cache


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_only_the_right_recompute_matches_the_cache(cached, mutation):
    model, cache = cached
    params, gelu = MUTATIONS[mutation](mlp_parameters(model.bridge, 3))
    with torch.no_grad():
        pre, out = reference_mlp(cache["blocks.3.hook_resid_mid"], params, *([gelu] if gelu else []))
    errors = (relative_error(pre, cache["blocks.3.mlp.hook_pre"]), relative_error(out, cache["blocks.3.hook_mlp_out"]))
    bound = tolerance("activation", model.dtype)
    if mutation == "as GPT-2 computes it":
        assert max(errors) <= bound, errors
    else:
        assert max(errors) > 5 * bound, (mutation, errors)


def test_embedded_model_biases_are_not_zero(cached):
    model, _ = cached
    params = mlp_parameters(model.bridge, 3)
    assert params.b_out.abs().max() > 0.05 and params.ln_bias.abs().max() > 0.05
    assert params.ln_weight.std() > 0.05 * params.ln_weight.mean()
