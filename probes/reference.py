"""Compare the model with numbers recorded elsewhere (the researcher's notebook, part A).

Printed values carry their own rounding, so the claims that use these probes add the
printing's half-unit to the dtype's noise in their tolerance; in a reduced-precision dtype
they add rounding steps at the magnitude each probe reports (``rounding_steps``).
"""

import torch

from interp_claims.context import ProbeContext
from interp_claims.probes.distribution import next_token_log_probs
from interp_claims.measurement import Measurement, ProbeInputError
from interp_claims.registry import probe

CORNER_HOOKS = ("hook_embed", "mlp.hook_pre", "hook_mlp_out")


def max_difference(measured: torch.Tensor, expected: list, what: str) -> float:
    reference = torch.tensor(expected, dtype=torch.float32)
    if reference.numel() == 0 or tuple(reference.shape) != tuple(measured.shape):
        raise ProbeInputError(f"expected values of shape {tuple(measured.shape)} for {what}, got {tuple(reference.shape)}")
    return float((measured.float().cpu() - reference).abs().max())


@probe("activation_corner_error", hooks=CORNER_HOOKS)
def activation_corner_error(
    ctx: ProbeContext, *, hook: str, expected: list[list[float]], weights: str | None = None
) -> Measurement:
    """Max |cache[hook][0, :n, :m] - expected| for an n x m ``expected`` corner."""
    if weights is not None:
        ctx = ctx.with_weights(weights)
    if not hook.endswith(CORNER_HOOKS):
        raise ProbeInputError(f"hook {hook!r} is not one this probe keeps. Valid: names ending in {', '.join(CORNER_HOOKS)}")
    _, cache = ctx.forward()
    if hook not in cache:
        raise ProbeInputError(f"hook {hook!r} is not in the cache; e.g. 'blocks.0.mlp.hook_pre', 'hook_embed'")
    rows, cols = len(expected), len(expected[0]) if expected else 0
    corner = cache[hook][0, :rows, :cols]
    return Measurement(
        value=max_difference(corner, expected, hook),
        details={"weights": ctx.model.convention, "measured": [[round(v, 4) for v in r] for r in corner.float().tolist()],
                 "magnitude": max(abs(v) for row in expected for v in row)},
    )


@probe("next_token_logprob_error", hooks=())
def next_token_logprob_error(ctx: ProbeContext, *, expected: list[float]) -> Measurement:
    """Max |log p(actual next token) - expected| over the first len(expected) positions."""
    logits, _ = ctx.forward()
    log_probs = next_token_log_probs(logits[:1], ctx.tokens()[:1])[0, : len(expected)]
    return Measurement(
        value=max_difference(log_probs, expected, "next-token log-probs"),
        details={"measured": [round(v, 5) for v in log_probs.tolist()],
                 "magnitude": float(logits[0, : len(expected)].abs().max())},  # the logits' grid sets the rounding
    )
