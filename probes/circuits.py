"""What a head writes, not only where it looks: evidence that a claimed head does its job.

* ``ov_copying_score``: the OV circuit's copying score (Elhage et al. 2021, "A Mathematical
  Framework for Transformer Circuits"): for the full OV circuit W_E W_V W_O W_U of a head,
  ``sum(eigenvalues) / sum(|eigenvalues|)`` (real parts): +1 for a head whose output raises
  the logit of the token it attends to, 0 for a head that writes nothing. Computed on the
  d_head x d_head matrix (W_O W_U)(W_E W_V), which has the same non-zero eigenvalues, from
  TransformerLens's processed weights (LayerNorm folded), as the paper and ARENA do.
* ``head_logit_attribution``: the head's direct logit attribution to the correct next token on
  the repeated half of ``[BOS, R, R]``: its output through the final LayerNorm's scale and the
  unembedding, minus its mean over the vocabulary (processed weights). A head that attends
  like an induction head but writes nothing scores 0.
* ``head_ablation_loss_increase``: the rise of the loss on the repeated half when the head is
  zero-ablated (its ``hook_z``). For a previous-token head this is its causal role: induction
  heads read its output (K-composition); a head that only looks like one scores 0.

On mixed-length inputs (``seq_len = { low, high }``) each row's own copies are read; multi-lag
inputs (``seq_len = [50, 37]``) give the lowest value over the lags.
"""

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp_claims.context import ProbeContext
from interp_claims.measurement import Measurement, ProbeInputError
from interp_claims.registry import probe
from interp_claims.probes.ablation import ablation_hooks
from interp_claims.probes.heads import parse_head

DLA_HOOKS = ("attn.hook_z", "ln_final.hook_scale")


def require_repeated_random(ctx: ProbeContext) -> int:
    """The claim's seq_len (the longest row's, for mixed lengths); ProbeInputError for any input
    other than ``repeated_random``."""
    if ctx.input is None or ctx.input.repeated_random is None:
        raise ProbeInputError("this probe is defined on `repeated_random` inputs ([BOS, R, R])")
    return ctx.input.repeated_random[0]


def lag(ctx: ProbeContext) -> str:
    require_repeated_random(ctx)
    return ctx.input.label


def copy_positions(ctx: ProbeContext) -> tuple[Bool[Tensor, "batch pos"], Bool[Tensor, "batch pos"]]:
    """Where each row predicts a token of its first copy of R, and where one of its second copy
    (the positions whose *next* token is in that copy, the second copy's first token excluded: it
    cannot be predicted from the first). Row i's copies are its own length."""
    require_repeated_random(ctx)
    tokens = ctx.tokens()
    start = 1 if ctx.input.prepend_bos else 0  # where R begins
    lengths = torch.tensor(ctx.input.row_lengths(), device=tokens.device)[:, None]
    position = torch.arange(tokens.shape[1], device=tokens.device)[None, :]
    first = position < start + lengths - 1
    second = (position >= start + lengths) & (position < start + 2 * lengths - 1)
    return first, second


def mean_loss_at(logits: Float[Tensor, "batch pos vocab"], tokens: Int[Tensor, "batch pos"],
                 where: Bool[Tensor, "batch pos"]) -> float:
    """Mean cross-entropy of the next token at the positions ``where`` (float32): logsumexp minus
    the true token's logit, on those positions only."""
    rows, positions = where.nonzero(as_tuple=True)
    chosen = logits[rows, positions].float()
    targets = tokens[rows, positions + 1]
    return float((chosen.logsumexp(dim=-1) - chosen.gather(-1, targets[:, None])[:, 0]).mean())


@probe("ov_copying_score", hooks=None)
def ov_copying_score(ctx: ProbeContext, *, head: str) -> Measurement:
    """The copying score of the head's full OV circuit (see the module's definition)."""
    processed = ctx.with_weights("processed")
    bridge = processed.bridge
    layer, index = parse_head(head, bridge.cfg.n_layers, bridge.cfg.n_heads)
    with torch.no_grad():  # the float32 product over the vocabulary once per model, float64 for the eigenproblem
        w_v, w_o = bridge.W_V[layer, index].double(), bridge.W_O[layer, index].double()
        reduced = w_o @ unembed_embed(processed) @ w_v  # [d_head, d_head]: the non-zero spectrum of W_E W_V W_O W_U
        eigenvalues = torch.linalg.eigvals(reduced)
    magnitude = float(eigenvalues.abs().sum())
    score = float(eigenvalues.real.sum()) / magnitude if magnitude > 0 else 0.0
    return Measurement(
        value=score,
        details={"definition": "sum(eigenvalues)/sum(|eigenvalues|) of W_E W_V W_O W_U (Elhage et al. 2021), processed weights",
                 "eigenvalue_magnitude_sum": round(magnitude, 4)},
    )


def unembed_embed(ctx: ProbeContext) -> Float[Tensor, "d_model d_model"]:
    """W_U W_E, the sum over the vocabulary inside every head's full OV circuit (float32
    accumulation, kept in float64), computed once per model and shared by every head's claim."""
    bridge = ctx.bridge
    return ctx.from_weights("W_U @ W_E", lambda: (bridge.W_U.float() @ bridge.W_E.float()).double())


def mean_unembedding(ctx: ProbeContext) -> Float[Tensor, " d_model"]:
    """The unembedding's mean over the vocabulary (float64), once per model: a head's logit
    attribution is measured against its mean logit."""
    return ctx.from_weights("mean W_U", lambda: ctx.bridge.W_U.mean(dim=1, dtype=torch.float64))


def logit_attribution_on(ctx: ProbeContext, layer: int, index: int) -> float:
    tokens = ctx.tokens()
    _, second = copy_positions(ctx)  # the second copy, each with a next token
    rows, positions = second.nonzero(as_tuple=True)
    _, cache = ctx.forward()
    z: Float[Tensor, "n d_head"] = cache[f"blocks.{layer}.attn.hook_z"][rows, positions, index].double()
    scale: Float[Tensor, "n 1"] = cache["ln_final.hook_scale"][rows, positions].double()
    out = (z @ ctx.bridge.W_O[layer, index].double()) / scale  # the head's share of the normalised residual
    w_u = ctx.bridge.W_U  # [d_model, vocab]: only the columns read are taken to float64
    correct = (out * w_u.T[tokens[rows, positions + 1]].double()).sum(dim=-1)  # logit of the true next token
    mean = out @ mean_unembedding(ctx)  # mean logit over the vocabulary
    return float((correct - mean).mean().detach())


@probe("head_logit_attribution", hooks=DLA_HOOKS)
def head_logit_attribution(ctx: ProbeContext, *, head: str) -> Measurement:
    """Direct logit attribution of the head to the correct next token on the repeated half (lowest over lags)."""
    require_repeated_random(ctx)
    processed = ctx.with_weights("processed")
    layer, index = parse_head(head, processed.model.cfg.n_layers, processed.model.cfg.n_heads)
    with torch.no_grad():
        per_lag = {lag(v): logit_attribution_on(v, layer, index) for v in processed.each_input()}
    return Measurement(value=min(per_lag.values()), details={"per_lag": {k: round(v, 4) for k, v in per_lag.items()},
                                                            "weights": "processed"})


def repeated_half_loss(ctx: ProbeContext, logits: Float[Tensor, "batch pos vocab"]) -> float:
    """Mean cross-entropy of the second copies' next tokens (see ``copy_positions``)."""
    return mean_loss_at(logits, ctx.tokens(), copy_positions(ctx)[1])


def ablation_increase_on(ctx: ProbeContext, layer: int, index: int) -> dict[str, float]:
    tokens = ctx.tokens()
    clean_logits, _ = ctx.forward()
    clean = ctx.runner.derived(ctx.input, "repeated_half_loss", lambda: repeated_half_loss(ctx, clean_logits))
    ablated_logits = ctx.runner.timed(lambda: ctx.bridge.run_with_hooks(tokens, fwd_hooks=ablation_hooks([(layer, index)], "zero")))
    ablated = repeated_half_loss(ctx, ablated_logits)
    return {"clean": clean, "ablated": ablated, "increase": ablated - clean}


@probe("head_ablation_loss_increase", hooks=())
def head_ablation_loss_increase(ctx: ProbeContext, *, head: str) -> Measurement:
    """Repeated-half loss with the head zero-ablated minus without (lowest over lags), in nats."""
    require_repeated_random(ctx)
    layer, index = parse_head(head, ctx.model.cfg.n_layers, ctx.model.cfg.n_heads)
    per_lag = {lag(v): ablation_increase_on(v, layer, index) for v in ctx.each_input()}
    return Measurement(
        value=min(lag["increase"] for lag in per_lag.values()),
        details={"per_lag": {k: {name: round(x, 4) for name, x in lag.items()} for k, lag in per_lag.items()}},
    )
