"""Activation patching (probes/patching.py) against TransformerLens's own patching functions, and
the batched sweep's cost in forward-pass equivalents."""

import pandas as pd
import pytest
import torch
from transformer_lens import patching

from interp_claims.context import ForwardRunner, ProbeContext
from interp_claims.inputs import InputSpec
from interp_claims.measurement import ProbeInputError
from interp_claims.registry import PROBES

SPEC = InputSpec(repeated_random=(10, 2, 0))
PARAMS = {"corruption": "fresh_repeat", "corruption_seed": 1, "metric": "repeat_loss"}
HEADS = [(5, 1), (7, 10), (9, 9), (3, 4)]  # copying heads of the twin, and one outside its circuit


def context(model, name: str) -> ProbeContext:
    runner = ForwardRunner(model)
    runner.plan(SPEC, PROBES[name].hooks)
    return ProbeContext(model, runner, SPEC, PROBES[name].hooks)


def transformer_lens_recoveries(model, restore: str) -> list[float]:
    """TransformerLens's generic_activation_patch (one forward pass per head) at HEADS, normalised by hand."""
    ctx = context(model, "patching_recovery")
    from interp_claims.probes.patching import corrupt, metric_function

    clean = ctx.tokens()
    corrupted = corrupt(ctx, clean, "fresh_repeat", 1)
    metric = metric_function(ctx, clean, "repeat_loss", None)
    with torch.no_grad():
        clean_logits, cache = model.bridge.run_with_cache(clean)
        corrupted_value = float(metric(model.bridge(corrupted)).mean())
        setter = patching.layer_head_vector_patch_setter if restore != "pattern" else patching.layer_head_pattern_patch_setter
        values = patching.generic_activation_patch(
            model.bridge, corrupted, cache, lambda logits: metric(logits).mean(), setter, restore,
            index_df=pd.DataFrame(HEADS, columns=["layer", "head"]))
    clean_value = float(metric(clean_logits).mean())
    return [(float(v) - corrupted_value) / (clean_value - corrupted_value) for v in values]


@pytest.mark.parametrize("restore", ["z", "v", "pattern"])
def test_a_patch_matches_transformer_lens_patching(claims_model, restore):
    """One head restored by our probe equals TransformerLens's patch of it, to float32's 1e-4 (recoveries
    are ratios of losses of about 10: 1e-4 is some 1e-5 relative): the same hook, the same normalisation."""
    reference = transformer_lens_recoveries(claims_model, restore)
    ours = [PROBES["patching_recovery"].function(context(claims_model, "patching_recovery"), head=f"{layer}.{head}",
                                                 restore=restore, **PARAMS).value for layer, head in HEADS]
    assert ours == pytest.approx(reference, abs=1e-4)
    if restore == "z":
        assert ours[0] > 0.1 and abs(ours[3]) < 0.01  # a copying head restores, a head outside the circuit does not


@pytest.mark.slow
def test_a_batched_sweep_matches_transformer_lens_patching(claims_model):
    """The sweep's 48 patched copies per forward pass give each head what its own pass gives: no copy
    leaks into another."""
    reference = transformer_lens_recoveries(claims_model, "z")
    sweep = PROBES["patching_sweep"].function(context(claims_model, "patching_sweep"), heads=["5.1"], aggregate="claimed_min",
                                              patches_per_pass=48, **PARAMS).details["all_heads"]
    assert [sweep[layer][head] for layer, head in HEADS] == pytest.approx(reference, abs=1e-4)


def test_bad_patching_input_is_named(claims_model):
    probe = PROBES["patching_recovery"].function
    with pytest.raises(ProbeInputError, match="corruption 'swap' is not known. Valid: fresh_repeat, swap_pairs"):
        probe(context(claims_model, "patching_recovery"), head="5.1", corruption="swap", metric="repeat_loss")
    with pytest.raises(ProbeInputError, match="not both or neither"):
        probe(context(claims_model, "patching_recovery"), head="5.1", heads=["5.5"], **PARAMS)
    with pytest.raises(ProbeInputError, match="restore 'q' is not known"):
        probe(context(claims_model, "patching_recovery"), head="5.1", restore="q", **PARAMS)


@pytest.mark.slow
@pytest.mark.parametrize("per_pass", [1, 48])
def test_sweep_cost(benchmark, claims_model, per_pass):
    """A 144-head sweep: 146 forward-pass equivalents of compute (clean, corrupted, one copy per head)
    in 2 + ceil(144 / per_pass) forward calls; per_pass = 1 is TransformerLens's one pass per head."""
    def sweep():
        ctx = context(claims_model, "patching_sweep")
        measurement = PROBES["patching_sweep"].function(ctx, heads=["5.1"], aggregate="claimed_min", patches_per_pass=per_pass, **PARAMS)
        return measurement, ctx.runner.stats.passes

    measurement, calls = benchmark.pedantic(sweep, rounds=1, warmup_rounds=0)
    assert calls == measurement.details["forward_calls"] == 2 + -(-144 // per_pass)
    benchmark.extra_info.update(forward_calls=calls, forward_pass_equivalents=measurement.details["forward_pass_equivalents"],
                                patches_per_pass=per_pass)
