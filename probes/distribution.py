"""The output distribution: normalisation, top-k, loss, agreement across batch shapes."""

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from interp_claims.context import InputSpec, ProbeContext, all_finite
from interp_claims.measurement import Measurement, ProbeInputError, require_in_range
from interp_claims.registry import probe


def real_positions(ctx: ProbeContext, tokens: Int[Tensor, "batch pos"]) -> list[int]:
    """Length of each prompt before right padding (BOS included where the input prepends one)."""
    if ctx.input.repeated_random is not None:
        return [tokens.shape[1]] * tokens.shape[0]
    return [len(ctx.bridge.to_tokens(text, prepend_bos=ctx.input.prepend_bos)[0]) for text in ctx.input.texts]


@probe("probability_sum_deviation", hooks=())
def probability_sum_deviation(ctx: ProbeContext) -> Measurement:
    """max |sum softmax(logits) - 1| over every position of every prompt; inf if any logit is not finite.

    The sum accumulates in float32 (torch's cascade summation: at most ~log2(50257) x 2^-24 = 1e-6
    off for probabilities summing to 1, measured 2.9e-7 against float64; 1% of the float32
    tolerance, and 20x faster than a float64 sum on the CPU)."""
    logits, _ = ctx.forward(check_finite=False)
    n_nonfinite = 0 if all_finite(logits) else int((~torch.isfinite(logits)).sum())
    sums = logits.softmax(dim=-1).sum(dim=-1, dtype=torch.float32)
    deviation = float((sums - 1).abs().max()) if n_nonfinite == 0 else float("inf")
    return Measurement(
        value=deviation,
        details={"shape": list(logits.shape), "nonfinite_logits": n_nonfinite, "dtype": str(logits.dtype)},
    )


@probe("top_next_tokens", hooks=())
def top_next_tokens(ctx: ProbeContext, *, k: int = 5) -> Measurement:
    """The ``k`` most likely next tokens after the last token of the (first) prompt."""
    require_in_range("k", k, 1, ctx.model.cfg.d_vocab)
    logits, _ = ctx.forward()
    last = real_positions(ctx, ctx.tokens())[0] - 1
    top = logits[0, last].float().topk(k)
    ids = top.indices.tolist()
    pieces = [ctx.bridge.tokenizer.decode([i]) for i in ids]
    return Measurement(
        value=[[i, p] for i, p in zip(ids, pieces, strict=True)],
        details={"logits": [round(v, 4) for v in top.values.tolist()]},
    )


def next_token_log_probs(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos-1"]:
    """log p(token[t+1] | tokens[:t+1]) in float32."""
    log_probs = logits[:, :-1].float().log_softmax(dim=-1)
    return log_probs.gather(-1, tokens[:, 1:, None])[..., 0]


@probe("mean_loss", hooks=())
def mean_loss(ctx: ProbeContext) -> Measurement:
    """Mean next-token cross-entropy over the (first) prompt, BOS prepended."""
    logits, _ = ctx.forward()
    n = real_positions(ctx, ctx.tokens())[0]
    tokens = ctx.tokens()[:1, :n]
    loss = F.cross_entropy(logits[0, : n - 1].float(), tokens[0, 1:])
    return Measurement(value=float(loss), details={"tokens": n})


@probe("batch_consistency", hooks=())
def batch_consistency(ctx: ProbeContext) -> Measurement:
    """Max |log p batched - log p alone| over every real position: padding and batching must not matter."""
    if len(ctx.input.texts) < 2:
        raise ProbeInputError("batch_consistency needs `texts` with at least two prompts")
    logits, _ = ctx.forward()
    tokens = ctx.tokens()
    batched = next_token_log_probs(logits, tokens)
    worst, magnitude = 0.0, 0.0
    for row, (text, n) in enumerate(zip(ctx.input.texts, real_positions(ctx, tokens), strict=True)):
        magnitude = max(magnitude, float(logits[row, :n].abs().max()))
        alone_tokens = ctx.runner.tokens(InputSpec(texts=(text,)))
        alone_logits = ctx.runner.timed(lambda tokens=alone_tokens: ctx.bridge(tokens))
        alone = next_token_log_probs(alone_logits, alone_tokens)[0]
        worst = max(worst, float((batched[row, : n - 1] - alone).abs().max()))
    return Measurement(value=worst, details={"prompts": len(ctx.input.texts), "padded_length": tokens.shape[1],
                                             "magnitude": magnitude})


@probe("next_token_logprobs", hooks=())
def next_token_logprobs(ctx: ProbeContext) -> Measurement:
    """log p(actual next token) at every real position of each prompt, in order (float32), for
    claims that compare combinations (``across``); the magnitude is the largest |logit|, where
    the dtype's rounding step is taken."""
    logits, _ = ctx.forward()
    tokens = ctx.tokens()
    log_probs = next_token_log_probs(logits, tokens)
    values, magnitude = [], 0.0
    for row, n in enumerate(real_positions(ctx, tokens)):
        values += log_probs[row, : n - 1].tolist()
        magnitude = max(magnitude, float(logits[row, :n].abs().max()))
    return Measurement(value=values, details={"positions": len(values), "magnitude": magnitude})
