"""The output distribution: normalisation, top-k, loss, agreement across batch shapes."""

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from interp_claims.context import ProbeContext, all_finite
from interp_claims.inputs import InputSpec
from interp_claims.measurement import Measurement, ProbeInputError, require_in_range
from interp_claims.registry import probe


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
    last = ctx.spans()[0][1] - 1
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
    start, stop = ctx.spans()[0]
    tokens = ctx.tokens()[0, start:stop]
    loss = F.cross_entropy(logits[0, start : stop - 1].float(), tokens[1:])
    magnitude = float(logits[0, start:stop].abs().max())
    return Measurement(value=float(loss), details={"tokens": stop - start, "magnitude": magnitude})


@probe("batch_consistency", hooks=())
def batch_consistency(ctx: ProbeContext) -> Measurement:
    """Max |log p batched - log p alone| over every real position: padding and batching must not matter.

    With ``padding = "left"`` the batch runs with an attention mask and positions counted from each
    prompt's first real token: what a leaking mask or shifted positions would change. (Right
    padding cannot reach a real position through causal attention: measured exactly 0 in every
    dtype, so a claim on it could not fail.)"""
    if len(ctx.input.texts) < 2:
        raise ProbeInputError("batch_consistency needs `texts` with at least two prompts")
    logits, _ = ctx.forward()
    alone = []
    for text in ctx.input.texts:
        spec = InputSpec(texts=(text,), prepend_bos=ctx.input.prepend_bos)
        alone.append(ctx.runner.timed(lambda tokens=ctx.runner.tokens(spec): ctx.bridge(tokens))[0])
    worst, magnitude = batch_deviation(logits, ctx.tokens(), ctx.spans(), alone)
    return Measurement(value=worst, details={"prompts": len(ctx.input.texts), "padded_length": ctx.tokens().shape[1],
                                             "padding": ctx.input.padding, "magnitude": magnitude})


def batch_deviation(
    batched: Float[Tensor, "batch pos d_vocab"],
    tokens: Int[Tensor, "batch pos"],
    spans: list[tuple[int, int]],
    alone: list[Tensor],  # each prompt's logits run alone: its own length
) -> tuple[float, float]:
    """(max |log p batched - log p alone| over the real positions, largest |logit| there)."""
    log_probs = next_token_log_probs(batched, tokens)
    worst, magnitude = 0.0, 0.0
    for row, ((start, stop), single) in enumerate(zip(spans, alone, strict=True)):
        magnitude = max(magnitude, float(batched[row, start:stop].abs().max()))
        single_log_probs = next_token_log_probs(single[None], tokens[row : row + 1, start:stop])[0]
        worst = max(worst, float((log_probs[row, start : stop - 1] - single_log_probs).abs().max()))
    return worst, magnitude


@probe("next_token_logprobs", hooks=())
def next_token_logprobs(ctx: ProbeContext) -> Measurement:
    """log p(actual next token) at every real position of each prompt, in order (float32), for
    claims that compare combinations (``across``); the magnitude is the largest |logit|, where
    the dtype's rounding step is taken."""
    logits, _ = ctx.forward()
    tokens = ctx.tokens()
    log_probs = next_token_log_probs(logits, tokens)
    values, magnitude = [], 0.0
    for row, (start, stop) in enumerate(ctx.spans()):
        values += log_probs[row, start : stop - 1].tolist()
        magnitude = max(magnitude, float(logits[row, start:stop].abs().max()))
    return Measurement(value=values, details={"positions": len(values), "magnitude": magnitude})


FINAL_NORMALIZED = "ln_final.hook_normalized"


@probe("final_norm_deviation", hooks=(FINAL_NORMALIZED,))
def final_norm_deviation(ctx: ProbeContext) -> Measurement:
    """max |RMS - 1| of the final LayerNorm's normalised residual (before its gain and bias) over
    every real position: the model's own path into the unembedding normalises what it reads.
    A softmax sums to one whatever the logits are; this is what a broken final LayerNorm changes.
    With LayerNorm's epsilon the RMS is (1 + eps / variance)^-1/2, so the value is about
    eps / (2 variance) on a healthy model (GPT-2's eps 1e-5)."""
    _, cache = ctx.forward()
    normalized = cache[FINAL_NORMALIZED].float()
    worst = 0.0
    for row, (start, stop) in enumerate(ctx.spans()):
        rms = normalized[row, start:stop].pow(2).mean(dim=-1).sqrt()
        worst = max(worst, float((rms - 1).abs().max()))
    if not all_finite(normalized):
        worst = float("inf")
    return Measurement(value=worst, details={"positions": sum(stop - start for start, stop in ctx.spans())})
