"""Timings with pytest-benchmark (CUDA synchronised inside the timed function).

Nothing here asserts a wall-clock limit: machines are noisy. Skip with --benchmark-skip;
compare runs with --benchmark-autosave and --benchmark-compare-fail=mean:10%.
"""

import pytest
import torch

from probes.context import InputSpec, ProbeContext, synchronize
from probes.heads import PATTERN_HOOK, head_scores

NOTEBOOK_TEXT = (
    "This is a story about Quomatarus. When one day Quomatarus decided to do something different "
    "and bought a plane ticket to Lamanandu. When he arrived to the airport Quomatarus noticed"
)
pytestmark = pytest.mark.benchmark(group="model")


def timed(model, function):
    def run():
        with torch.no_grad():
            result = function()
        synchronize(model.device)
        return result

    return run


def test_forward_pass(benchmark, model):
    tokens = model.bridge.to_tokens(NOTEBOOK_TEXT).to(model.device)
    logits = benchmark.pedantic(timed(model, lambda: model.bridge(tokens)), rounds=5, warmup_rounds=1)
    assert logits.shape == (1, 45, 50257)


def test_run_with_cache_mlp_hooks(benchmark, model):
    tokens = model.bridge.to_tokens(NOTEBOOK_TEXT).to(model.device)
    keep = ("ln2.hook_normalized", "mlp.hook_pre", "hook_mlp_out")
    _, cache = benchmark.pedantic(
        timed(model, lambda: model.bridge.run_with_cache(tokens, names_filter=lambda n: n.endswith(keep))),
        rounds=5,
        warmup_rounds=1,
    )
    assert len(cache) == 3 * model.cfg.n_layers


def test_induction_sweep(benchmark, model):
    """Every head's induction score on [BOS, R, R] (R = 50 tokens, batch 10), from a fresh pass."""
    from probes.context import ForwardRunner

    spec = InputSpec(repeated_random=(50, 10, 0))

    def sweep():
        runner = ForwardRunner(model)  # fresh: no shared pass to reuse
        return head_scores(ProbeContext(model, runner, spec, PATTERN_HOOK), "induction")

    scores = benchmark.pedantic(timed(model, sweep), rounds=3, warmup_rounds=1)
    assert scores.shape == (model.cfg.n_layers, model.cfg.n_heads)


