"""Attention-head scores that mean what they say at any lag.

Content-based definitions, computed from the tokens (as TransformerLens's head detector builds
its detection patterns, ``transformer_lens/head_detector.py``): for a query position q, the
*targets* are

* induction: key positions k with ``token[k-1] == token[q]`` and ``k - 1 < q``: the token
  after an earlier occurrence of the current token (Olsson et al. 2022, "In-context Learning
  and Induction Heads": "attend to the token that followed the previous occurrence");
* duplicate_token: key positions k < q with ``token[k] == token[q]``: the earlier occurrences
  themselves (Wang et al. 2022, arXiv 2211.00593, duplicate-token heads);
* previous_token: k = q - 1 (a positional behaviour by definition);
* shifted_induction: key positions k with ``token[k-2] == token[q]`` and ``k - 2 < q``: the token
  *two* after an earlier occurrence of the current token. A head that attends there and reads
  the answer through a previous-token head at k also copies in context, one position later
  than an induction head does; the model trained here learned exactly that
  (``fixtures/claims/trained.toml``). Kept apart from ``induction`` so that neither passes for
  the other.

A head's score is the attention it puts on the targets, summed over targets and averaged
over the query positions that have any (BOS queries excluded). On ``[BOS, R, R]`` with R of
distinct random tokens, the induction score equals ARENA 1.2's stripe
``pattern.diagonal(offset=1 - seq_len)``, which is kept in the details for comparison; but on
one repeat length a head that attends a fixed 49 positions back scores 1.0 on that stripe at
seq_len 50, and a head attending 49 and 36 back scores 0.5 at both of the lags 50 and 37.
Claims therefore use mixed lengths (``seq_len = { low = 16, high = 63 }``, every row its own
repeat length): any attention that depends on positions alone reaches at most the
*positional ceiling* reported in the details (~0.12 on 24 rows; a fixed offset ~0.07), far
below the bars. A list of lengths (``seq_len = [50, 37]``) is measured on each, the head's
score being its lowest and a control's its highest.

Uniform causal attention scores about 1/position (~0.01-0.05 here): the chance level.
"""

import torch
from einops import einsum, reduce
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp_claims.context import ProbeContext
from interp_claims.measurement import AttentionPicture, Measurement, ProbeInputError, require_in_range
from interp_claims.registry import probe

PATTERN_HOOK = ("attn.hook_pattern",)
SCORE_KINDS = ("induction", "previous_token", "duplicate_token", "shifted_induction")


def parse_head(head: str, n_layers: int, n_heads: int) -> tuple[int, int]:
    """"5.1" -> (5, 1), checked against the model's shape."""
    try:
        layer, index = (int(part) for part in str(head).split("."))
    except ValueError:
        raise ProbeInputError(f"head {head!r} is not of the form 'LAYER.HEAD', e.g. '5.1'") from None
    if not (0 <= layer < n_layers and 0 <= index < n_heads):
        raise ProbeInputError(f"head {head!r} is outside the model (layers 0..{n_layers - 1}, heads 0..{n_heads - 1})")
    return layer, index


def arena_offset(kind: str, seq_len: int) -> int:
    """The diagonal of ARENA 1.2's stripe score for ``kind`` on ``[BOS, R, R]``."""
    offsets = {"induction": 1 - seq_len, "previous_token": -1, "duplicate_token": -seq_len, "shifted_induction": 2 - seq_len}
    if kind not in offsets:
        raise ProbeInputError(f"score kind {kind!r} is not known. Valid: {', '.join(SCORE_KINDS)}.")
    return offsets[kind]


def target_mask(tokens: Int[Tensor, "batch pos"], kind: str, bos_id: int) -> Bool[Tensor, "batch query key"]:
    """Where a ``kind`` head should attend, from the tokens alone (see the module's definitions)."""
    positions = torch.arange(tokens.shape[-1], device=tokens.device)
    query, key = positions[:, None], positions[None, :]
    same = tokens[:, :, None] == tokens[:, None, :]  # token[q] == token[k]
    if kind == "duplicate_token":
        mask = same & (key < query)
    elif kind == "induction":
        after_same = torch.zeros_like(same)
        after_same[:, :, 1:] = same[:, :, :-1]  # token[q] == token[k - 1]
        mask = after_same & (key <= query)
    elif kind == "shifted_induction":
        two_after_same = torch.zeros_like(same)
        two_after_same[:, :, 2:] = same[:, :, :-2]  # token[q] == token[k - 2]
        mask = two_after_same & (key <= query)
    elif kind == "previous_token":
        mask = (key == query - 1).expand_as(same).clone()
    else:
        raise ProbeInputError(f"score kind {kind!r} is not known. Valid: {', '.join(SCORE_KINDS)}.")
    return mask & (tokens != bos_id)[:, :, None]


def head_scores_on(ctx: ProbeContext, kind: str) -> Float[Tensor, "layer head"]:
    """Every head's content-based ``kind`` score on the context's input, from one forward pass
    (computed once per input and kind, shared by every head claim)."""
    return ctx.runner.derived(ctx.input, f"head_scores:{kind}", lambda: _head_scores_on(ctx, kind)).clone()


def _head_scores_on(ctx: ProbeContext, kind: str) -> Float[Tensor, "layer head"]:
    _, cache = ctx.forward()
    tokens = ctx.tokens()
    mask = target_mask(tokens, kind, ctx.bridge.tokenizer.bos_token_id)
    queries = mask.any(dim=-1)  # query positions that have a target
    if not queries.any():
        raise ProbeInputError(f"the input has no position with a {kind} target (no repeated token)")
    rows = []
    for layer in range(ctx.model.cfg.n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"].float()
        on_target = einsum(pattern, mask.float(), "batch head query key, batch query key -> batch head query")
        rows.append((on_target * queries[:, None, :]).sum(dim=(0, 2)) / queries.sum())
    return torch.stack(rows).cpu()


def arena_scores_on(ctx: ProbeContext, kind: str) -> Float[Tensor, "layer head"]:
    """ARENA 1.2's stripe score of every head (``[BOS, R, R]`` inputs only), for comparison."""
    return ctx.runner.derived(ctx.input, f"arena_scores:{kind}", lambda: _arena_scores_on(ctx, kind)).clone()


def _arena_scores_on(ctx: ProbeContext, kind: str) -> Float[Tensor, "layer head"]:
    if ctx.input.length_range is not None:
        raise ProbeInputError("the stripe score needs one repeat length for every row, not mixed lengths")
    seq_len = ctx.input.repeated_random[0]
    _, cache = ctx.forward()
    rows = []
    for layer in range(ctx.model.cfg.n_layers):
        stripe = cache[f"blocks.{layer}.attn.hook_pattern"].float().diagonal(offset=arena_offset(kind, seq_len), dim1=-2, dim2=-1)
        rows.append(reduce(stripe, "batch head position -> head", "mean"))
    return torch.stack(rows).cpu()


def published_stripe_scores(ctx: ProbeContext, kind: str) -> Float[Tensor, "layer head"]:
    """Every head's stripe score exactly as TransformerLens's Exploratory demo computes it: the
    mean of ``hook_pattern.diagonal(offset)`` over batch and positions, offset 1 (previous token),
    seq_len (duplicate token), seq_len - 1 (induction), on the claim's [R, R] (no BOS)."""
    if ctx.input is None or ctx.input.repeated_random is None or ctx.input.prepend_bos:
        raise ProbeInputError("the demo's scores are defined on `repeated_random` inputs without BOS (bos = false): [R, R]")
    return arena_scores_on(ctx, kind)


def scores_per_input(ctx: ProbeContext, kind: str) -> list[tuple[ProbeContext, Tensor]]:
    """(context, content scores) for the claim's input and each of its other lags."""
    if ctx.input is None or ctx.input.repeated_random is None:
        raise ProbeInputError("head scores are defined on `repeated_random` inputs ([BOS, R, R])")
    return [(variant, head_scores_on(variant, kind)) for variant in ctx.each_input()]


def head_scores(ctx: ProbeContext, kind: str) -> Float[Tensor, "layer head"]:
    """Every head's score at its worst lag: a head is a ``kind`` head only if it is one on each input."""
    return torch.stack([scores for _, scores in scores_per_input(ctx, kind)]).amin(dim=0)


def per_lag_details(per_input: list[tuple[ProbeContext, Tensor]], kind: str, layer: int, index: int) -> dict:
    details = {}
    for variant, scores in per_input:
        entry = {"score": round(float(scores[layer, index]), 4)}
        if variant.input.length_range is None:
            entry["arena_stripe"] = round(float(arena_scores_on(variant, kind)[layer, index]), 4)
        else:
            entry["row_lengths"] = variant.input.row_lengths()
            entry["positional_ceiling"] = round(positional_ceiling(variant, kind)["any"], 4)
        details[variant.input.label] = entry
    return details


def positional_ceiling(ctx: ProbeContext, kind: str) -> dict[str, float]:
    """The highest ``kind`` score that a head whose attention depends on positions alone can reach
    on the context's input: ``any`` for any pattern a(query, key) (at each query it puts all its
    attention on the key that is a target in the most rows), ``offset`` for a head attending a
    fixed distance back (the best distance), with that distance. A head passing a bar above
    ``any`` must be reading the tokens."""
    return ctx.runner.derived(ctx.input, f"positional_ceiling:{kind}", lambda: _positional_ceiling(ctx, kind))


def _positional_ceiling(ctx: ProbeContext, kind: str) -> dict[str, float]:
    return ceiling_of(target_mask(ctx.tokens(), kind, ctx.bridge.tokenizer.bos_token_id), kind)


def ceiling_of(mask: Bool[Tensor, "batch query key"], kind: str = "the") -> dict[str, float]:
    """``positional_ceiling`` from the targets: the best any position-only pattern, and the best
    fixed distance back, can put on them, averaged over the queries that have targets."""
    queries = int(mask.any(dim=-1).sum())
    if queries == 0:
        raise ProbeInputError(f"the input has no position with a {kind} target (no repeated token)")
    rows_per_pair = mask.sum(dim=0).float()  # [query, key]: rows in which key is a target of query
    n = mask.shape[1]
    per_offset = torch.stack([rows_per_pair.diagonal(offset=-d).sum() for d in range(n)])
    best = int(per_offset.argmax())
    return {"any": float(rows_per_pair.amax(dim=-1).sum()) / queries, "offset": float(per_offset[best]) / queries,
            "best_offset": best}


def head_name(layer: int, index: int) -> str:
    return f"{layer}.{index}"


def pattern_picture(ctx: ProbeContext, layer: int, index: int, max_positions: int = 128) -> AttentionPicture:
    _, cache = ctx.forward()
    pattern = cache[f"blocks.{layer}.attn.hook_pattern"][0, index, :max_positions, :max_positions].float()
    tokens = ctx.tokens()[0, :max_positions].tolist()
    labels = [ctx.bridge.tokenizer.decode([t]) for t in tokens]
    return AttentionPicture(
        title=f"head {layer}.{index} on {input_in_words(ctx.input, len(tokens))}", labels=labels, pattern=pattern.cpu().tolist()
    )


def input_in_words(spec, shown: int) -> str:
    """What a picture's first row was, for a caption: 'the prompt "This is a story..." (46 tokens)' or
    'row 1 of 24 of repeated random tokens, BOS then each row's R twice (lengths 16-63)'."""
    if spec.repeated_random is None:
        text = spec.texts[0]
        return f"the prompt \"{text[:60]}{'...' if len(text) > 60 else ''}\" (first {shown} tokens)"
    seq_len, batch, seed = spec.repeated_random
    lengths = spec.row_lengths()
    shape = "BOS, then R twice" if spec.prepend_bos else "R twice, no BOS"
    return (f"row 1 of {batch} of repeated random tokens (seed {seed}): {shape}, R of {lengths[0]} tokens"
            f"{f' (each row its own length, {spec.label})' if spec.length_range else ''}; first {shown} positions")


@probe("head_score", hooks=PATTERN_HOOK)
def head_score(ctx: ProbeContext, *, head: str, kind: str) -> Measurement:
    """One head's content-based ``kind`` score: its lowest over the claim's lags."""
    layer, index = parse_head(head, ctx.model.cfg.n_layers, ctx.model.cfg.n_heads)
    per_input = scores_per_input(ctx, kind)
    worst = torch.stack([scores for _, scores in per_input]).amin(dim=0)
    rank = int((worst.flatten() > worst[layer, index]).sum()) + 1
    return Measurement(
        value=float(worst[layer, index]),
        details={
            "definition": f"content-based {kind} score (probes/heads.py), lowest over "
            + ", ".join(v.input.label for v, _ in per_input),
            "per_lag": per_lag_details(per_input, kind, layer, index),
            "rank_among_heads": rank,
            "kind": kind,
            "all_heads": [[round(float(v), 3) for v in row] for row in worst],  # layer x head, for the report's heatmap
        },
        pictures=[pattern_picture(ctx, layer, index)],
    )


@probe("head_table_deviation", hooks=PATTERN_HOOK)
def head_table_deviation(ctx: ProbeContext, *, kind: str, run: str = "A") -> Measurement:
    """The largest |measured - published| ``kind`` score over every head, against the Exploratory
    demo's published layer x head table of ``run`` (``interp_claims/builtin/gpt2-published-heads.json``),
    measured the demo's way."""
    from interp_claims.published import DEMO_RUNS, demo_table

    if run not in DEMO_RUNS:
        raise ProbeInputError(f"run {run!r} is not one of the demo's stored runs. Valid: {', '.join(DEMO_RUNS)}.")
    try:
        published = torch.tensor(demo_table(kind, run), dtype=torch.float32)
    except KeyError as unknown:
        raise ProbeInputError(str(unknown.args[0])) from None
    table = f"Exploratory demo run {run}"
    measured = published_stripe_scores(ctx, kind)
    if measured.shape != published.shape:
        raise ProbeInputError(f"table {table!r} is {list(published.shape)} (layers x heads); the model has {list(measured.shape)}")
    deviation = (measured - published).abs()
    order = deviation.flatten().argsort(descending=True)[:5].tolist()
    worst = [divmod(i, measured.shape[1]) for i in order]
    return Measurement(
        value=float(deviation.max()),
        details={
            "definition": f"the Exploratory demo's {kind} stripe score (probes/heads.py published_stripe_scores)",
            "table": table,
            "magnitude": 1.0,  # attention probabilities: the scale of a dtype's rounding steps here
            "mean_abs_deviation": round(float(deviation.mean()), 4),
            "worst_heads": {head_name(*h): {"measured": round(float(measured[h]), 4), "published": round(float(published[h]), 4)}
                            for h in worst},
            "kind": f"{kind} (the demo's stripe, [R, R] no BOS)",
            "all_heads": [[round(float(v), 3) for v in row] for row in measured],  # for the report's heatmap
        },
    )


@probe("best_unclaimed_head_score", hooks=PATTERN_HOOK)
def best_unclaimed_head_score(
    ctx: ProbeContext, *, kind: str, claimed: list[str] | None = None, table: str | None = None, at_least: float | None = None
) -> Measurement:
    """The highest ``kind`` score, at any of the claim's lags, among heads not in ``claimed`` nor,
    with ``table`` and ``at_least``, scoring ``at_least`` or more in that published table: a negative control."""
    cfg = ctx.model.cfg
    excluded = {parse_head(h, cfg.n_layers, cfg.n_heads) for h in claimed or ()}
    if (table is None) != (at_least is None):
        raise ProbeInputError("table and at_least go together: the published table and the score that makes a head claimed")
    if table is not None:
        from interp_claims.published import table as published_table

        try:
            scores = published_table(table)
        except KeyError as unknown:
            raise ProbeInputError(str(unknown.args[0])) from None
        excluded |= {(layer, index) for layer, row in enumerate(scores) for index, v in enumerate(row) if v >= at_least}
    if not excluded:
        raise ProbeInputError("no head is excluded: list `claimed` heads (e.g. ['5.1', '5.5']) or give `table` and `at_least`")
    per_input = scores_per_input(ctx, kind)
    scores = torch.stack([s for _, s in per_input]).amax(dim=0)
    for layer, index in excluded:
        scores[layer, index] = float("-inf")
    best = int(scores.flatten().argmax())
    layer, index = divmod(best, cfg.n_heads)
    return Measurement(
        value=float(scores[layer, index]),
        details={"best_unclaimed_head": head_name(layer, index), "excluded": sorted(head_name(*h) for h in excluded),
                 "per_lag": per_lag_details(per_input, kind, layer, index)},
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
