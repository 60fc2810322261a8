"""Attention-head scores on ``[BOS, R, R]`` (R = seq_len uniform random tokens), as in ARENA 1.2.

Definitions (mean over batch and the positions of one diagonal of the pattern):

* induction: ``pattern.diagonal(offset=1 - seq_len)``: from a token in the second copy
  to the token after its first occurrence;
* previous_token: ``pattern.diagonal(offset=-1)``: to the position just before;
* duplicate_token: ``pattern.diagonal(offset=-seq_len)``: to the earlier occurrence of
  the same token.

Uniform causal attention scores about 1/position (~0.01 for seq_len 50): the chance level.
"""

import torch
from einops import reduce
from jaxtyping import Float
from torch import Tensor

from interp_claims.context import ProbeContext
from interp_claims.measurement import AttentionPicture, Measurement, ProbeInputError, require_in_range
from interp_claims.registry import probe

PATTERN_HOOK = ("attn.hook_pattern",)
SCORE_KINDS = ("induction", "previous_token", "duplicate_token")


def parse_head(head: str, n_layers: int, n_heads: int) -> tuple[int, int]:
    """"5.1" -> (5, 1), checked against the model's shape."""
    try:
        layer, index = (int(part) for part in str(head).split("."))
    except ValueError:
        raise ProbeInputError(f"head {head!r} is not of the form 'LAYER.HEAD', e.g. '5.1'") from None
    if not (0 <= layer < n_layers and 0 <= index < n_heads):
        raise ProbeInputError(f"head {head!r} is outside the model (layers 0..{n_layers - 1}, heads 0..{n_heads - 1})")
    return layer, index


def diagonal_offset(kind: str, seq_len: int) -> int:
    offsets = {"induction": 1 - seq_len, "previous_token": -1, "duplicate_token": -seq_len}
    if kind not in offsets:
        raise ProbeInputError(f"score kind {kind!r} is not known. Valid: {', '.join(SCORE_KINDS)}.")
    return offsets[kind]


def head_scores(ctx: ProbeContext, kind: str) -> Float[Tensor, "layer head"]:
    """The score of every head, from one forward pass."""
    if ctx.input is None or ctx.input.repeated_random is None:
        raise ProbeInputError("head scores are defined on `repeated_random` inputs ([BOS, R, R])")
    seq_len = ctx.input.repeated_random[0]
    offset = diagonal_offset(kind, seq_len)
    _, cache = ctx.forward()
    rows = []
    for layer in range(ctx.model.cfg.n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"].float()
        stripe = pattern.diagonal(offset=offset, dim1=-2, dim2=-1)
        rows.append(reduce(stripe, "batch head position -> head", "mean"))
    return torch.stack(rows).cpu()


def head_name(layer: int, index: int) -> str:
    return f"{layer}.{index}"


def pattern_picture(ctx: ProbeContext, layer: int, index: int, max_positions: int = 128) -> AttentionPicture:
    _, cache = ctx.forward()
    pattern = cache[f"blocks.{layer}.attn.hook_pattern"][0, index, :max_positions, :max_positions].float()
    tokens = ctx.tokens()[0, :max_positions].tolist()
    labels = [ctx.bridge.tokenizer.decode([t]) for t in tokens]
    return AttentionPicture(
        title=f"head {layer}.{index} on {ctx.input.key[:80]}", labels=labels, pattern=pattern.cpu().tolist()
    )


@probe("head_score", hooks=PATTERN_HOOK)
def head_score(ctx: ProbeContext, *, head: str, kind: str) -> Measurement:
    """One head's ``kind`` score (see the module's definitions)."""
    layer, index = parse_head(head, ctx.model.cfg.n_layers, ctx.model.cfg.n_heads)
    scores = head_scores(ctx, kind)
    rank = int((scores.flatten() > scores[layer, index]).sum()) + 1
    return Measurement(
        value=float(scores[layer, index]),
        details={"definition": f"ARENA 1.2 {kind} score, pattern.diagonal({diagonal_offset(kind, ctx.input.repeated_random[0])})", "rank_among_heads": rank},
        pictures=[pattern_picture(ctx, layer, index)],
    )


@probe("best_unclaimed_head_score", hooks=PATTERN_HOOK)
def best_unclaimed_head_score(ctx: ProbeContext, *, kind: str, claimed: list[str]) -> Measurement:
    """The highest ``kind`` score among heads not in ``claimed``: a negative control."""
    cfg = ctx.model.cfg
    if not claimed:
        raise ProbeInputError("claimed is empty: list the heads the control excludes, e.g. ['5.1', '5.5']")
    excluded = {parse_head(h, cfg.n_layers, cfg.n_heads) for h in claimed}
    scores = head_scores(ctx, kind)
    for layer, index in excluded:
        scores[layer, index] = float("-inf")
    best = int(scores.flatten().argmax())
    layer, index = divmod(best, cfg.n_heads)
    return Measurement(
        value=float(scores[layer, index]),
        details={"best_unclaimed_head": head_name(layer, index), "excluded": sorted(claimed)},
        pictures=[pattern_picture(ctx, layer, index)],
    )


@probe("top_heads", hooks=PATTERN_HOOK)
def top_heads(ctx: ProbeContext, *, kind: str, k: int = 5) -> Measurement:
    """The set of the ``k`` highest-scoring heads, in layer order (a discrete fact, for snapshots:
    ranks among near-equal scores would flip between devices, membership does not)."""
    require_in_range("k", k, 1, ctx.model.cfg.n_layers * ctx.model.cfg.n_heads)
    scores = head_scores(ctx, kind)
    top = scores.flatten().topk(k)
    heads = sorted(divmod(int(i), ctx.model.cfg.n_heads) for i in top.indices)
    return Measurement(
        value=[head_name(*h) for h in heads],
        details={"scores": {head_name(*h): round(float(scores[h]), 3) for h in heads}},
    )
