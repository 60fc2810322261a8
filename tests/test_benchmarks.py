"""Timings with pytest-benchmark (CUDA synchronised inside the timed function).

Nothing here asserts a wall-clock limit: machines are noisy. Skip with --benchmark-skip;
compare runs with --benchmark-autosave and --benchmark-compare-fail=mean:10%.
"""

import pytest
import torch

from interp_claims.context import ProbeContext, synchronize
from interp_claims.inputs import InputSpec
from interp_claims.probes.heads import PATTERN_HOOK, head_scores

NOTEBOOK_TEXT = (
    "This is a story about Quomatarus. When one day Quomatarus decided to do something different "
    "and bought a plane ticket to Lamanandu. When he arrived to the airport Quomatarus noticed"
)
pytestmark = pytest.mark.benchmark(group="model")


def timed(claims_model, function):
    def run():
        with torch.no_grad():
            result = function()
        synchronize(claims_model.device)
        return result

    return run


def test_forward_pass(benchmark, claims_model):
    tokens = claims_model.bridge.to_tokens(NOTEBOOK_TEXT).to(claims_model.device)
    logits = benchmark.pedantic(timed(claims_model, lambda: claims_model.bridge(tokens)), rounds=5, warmup_rounds=1)
    assert logits.shape == (1, 45, 50257)


def test_run_with_cache_mlp_hooks(benchmark, claims_model):
    tokens = claims_model.bridge.to_tokens(NOTEBOOK_TEXT).to(claims_model.device)
    keep = ("ln2.hook_normalized", "mlp.hook_pre", "hook_mlp_out")
    _, cache = benchmark.pedantic(
        timed(claims_model, lambda: claims_model.bridge.run_with_cache(tokens, names_filter=lambda n: n.endswith(keep))),
        rounds=5,
        warmup_rounds=1,
    )
    assert len(cache) == 3 * claims_model.cfg.n_layers


def test_induction_sweep(benchmark, claims_model):
    """Every head's induction score on [BOS, R, R] (R = 50 tokens, batch 10), from a fresh pass."""
    from interp_claims.context import ForwardRunner

    spec = InputSpec(repeated_random=(50, 10, 0))

    def sweep():
        runner = ForwardRunner(claims_model)  # fresh: no shared pass to reuse
        return head_scores(ProbeContext(claims_model, runner, spec, PATTERN_HOOK), "induction")

    scores = benchmark.pedantic(timed(claims_model, sweep), rounds=3, warmup_rounds=1)
    assert scores.shape == (claims_model.cfg.n_layers, claims_model.cfg.n_heads)




@pytest.mark.slow
def test_claims_phase(benchmark, claims_run, claims_model):
    """Every claim that applies to the session's model, measured by a fresh measurer (every
    pass run again, the loaded models reused): the whole claims phase, with its forward-pass
    share in extra_info (the suite's own overhead is the rest)."""
    from interp_claims.measurement import ResourceUnavailable

    primary = claims_run.primary
    claims = [c for c in claims_run.claims if c.applies_to(primary.family) and c.expect["op"] != "snapshot"]

    def phase():
        measurer = primary.measurer.sharing_models()  # the booted models, not their passes
        measurer.plan(claims)
        for claim in claims:
            try:
                measurer.measure(claim)
            except ResourceUnavailable:
                pass
        synchronize(primary.run_device)
        return measurer

    measurer = benchmark.pedantic(phase, rounds=1, warmup_rounds=0)
    passes, seconds = measurer.forward_stats
    benchmark.extra_info.update(claims=len(claims), forward_passes=passes, forward_seconds=round(seconds, 3),
                                overhead_ratio=round(measurer.claim_seconds / seconds, 3))
    assert passes > 0
