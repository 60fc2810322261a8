"""Timings with pytest-benchmark (CUDA synchronised inside the timed function).

Nothing here asserts a wall-clock limit: machines are noisy. Skip with --benchmark-skip;
compare runs with --benchmark-autosave and --benchmark-compare-fail=mean:10%.
"""

import pytest
import torch

from interp_claims.context import InputSpec, ProbeContext, synchronize
from probes.heads import PATTERN_HOOK, head_scores

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


