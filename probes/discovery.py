"""Discovery: the suite finds the heads, and the claims say what must be true of them.

For a model whose heads nobody placed (the ``trained`` family), claims name no head position.
A probe here finds the heads from their scores (``probes/heads.py``'s content-based
definitions, each head's lowest score over the claim's lags) and measures a property of what
it found:

* ``discovered_head_score``: the best ``kind`` score among heads of layers ``>= min_layer``;
* ``discovered_heads``: the heads scoring above a threshold (a discrete fact, for snapshots);
* ``previous_token_head_before_induction``: the best previous-token score among heads of the
  layers before the best induction (or ``kind``) head's layer (the circuit's first half must
  come first);
* ``k_composition_z``: the strongest K-composition into that head from a head of an earlier
  layer (Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits":
  ``|W_OV^1 W_QK^2T|_F / (|W_OV^1|_F |W_QK^2|_F)``, processed weights, as ARENA 1.2 computes
  it), in standard deviations above the same head's W_OV turned by random rotations (same
  spectrum, no alignment);
* ``discovered_ablation_copying``: the share of in-context copying destroyed by zero-ablating
  the discovered heads, or, as the control, as many heads outside the circuit (every choice
  of them; the worst is reported).

``kind`` is a score kind of ``probes/heads.py``: ``induction`` by default, or
``shifted_induction`` for heads that copy from two after the earlier occurrence.

In-context copying on ``[BOS, R, R]`` is the loss benefit of the repeat: the loss on the first,
unpredictable copy minus the loss on the second. A share of 1 means ablation made the second
copy as unpredictable as the first.
"""

import functools
import itertools

import torch
from jaxtyping import Float
from torch import Tensor

from interp_claims.context import ProbeContext
from interp_claims.measurement import Measurement, ProbeInputError, require_in_range, worst_of
from interp_claims.registry import probe
from interp_claims.probes.ablation import ablation_hooks
from interp_claims.probes.circuits import copy_positions, mean_loss_at
from interp_claims.probes.heads import PATTERN_HOOK, head_name, head_scores, head_scores_on, pattern_picture, target_mask

RANDOM_BASELINE_SAMPLES = 200
MAX_CONTROL_SETS = 20


def best_head(scores: Float[Tensor, "layer head"], min_layer: int = 0, max_layer: int | None = None) -> tuple[int, int]:
    """(layer, head) of the highest score within layers min_layer .. max_layer - 1."""
    masked = torch.full_like(scores, float("-inf"))
    masked[min_layer:max_layer] = scores[min_layer:max_layer]
    layer, index = divmod(int(masked.flatten().argmax()), scores.shape[1])
    return layer, index


def heatmap(scores: Float[Tensor, "layer head"]) -> list[list[float]]:
    return [[round(float(v), 3) for v in row] for row in scores]


@probe("discovered_head_score", hooks=PATTERN_HOOK)
def discovered_head_score(ctx: ProbeContext, *, kind: str, min_layer: int = 0) -> Measurement:
    """The highest ``kind`` score (lowest over the lags) among heads of layers >= ``min_layer``."""
    require_in_range("min_layer", min_layer, 0, ctx.model.cfg.n_layers - 1)
    scores = head_scores(ctx, kind)
    layer, index = best_head(scores, min_layer)
    return Measurement(
        value=float(scores[layer, index]),
        details={"head": head_name(layer, index), "kind": kind, "min_layer": min_layer, "all_heads": heatmap(scores)},
        pictures=[pattern_picture(ctx.each_input()[0], layer, index)],
    )


@probe("discovered_heads", hooks=PATTERN_HOOK)
def discovered_heads(ctx: ProbeContext, *, kinds: list[str], threshold: float) -> Measurement:
    """Per score kind, the heads whose score (lowest over the lags) exceeds ``threshold``, in layer order."""
    if not kinds:
        raise ProbeInputError("kinds is empty: name score kinds, e.g. ['induction', 'previous_token']")
    found, scores_found = {}, {}
    for kind in kinds:
        scores = head_scores(ctx, kind)
        heads = (scores > threshold).nonzero().tolist()
        found[kind] = [head_name(layer, index) for layer, index in heads]
        scores_found.update({f"{kind} {head_name(l, i)}": round(float(scores[l, i]), 3) for l, i in heads})
    return Measurement(value=found, details={"threshold": threshold, "scores": scores_found})


def circuit_heads(ctx: ProbeContext, kind: str) -> tuple[tuple[int, int], tuple[int, int], Tensor, Tensor]:
    """The best ``kind`` head after the first layer, the best previous-token head before its
    layer, and every head's two scores."""
    if ctx.model.cfg.n_layers < 2:
        raise ProbeInputError("a two-layer circuit needs at least two layers")
    copying, previous = head_scores(ctx, kind), head_scores(ctx, "previous_token")
    second = best_head(copying, min_layer=1)
    first = best_head(previous, 0, second[0])
    return first, second, previous, copying


@probe("previous_token_head_before_induction", hooks=PATTERN_HOOK)
def previous_token_head_before_induction(ctx: ProbeContext, *, kind: str = "induction") -> Measurement:
    """The best previous-token score among heads of the layers before the best ``kind`` head's."""
    first, second, previous, copying = circuit_heads(ctx, kind)
    return Measurement(
        value=float(previous[first]),
        details={"previous_token_head": head_name(*first), f"{kind}_head": head_name(*second),
                 f"{kind}_score": round(float(copying[second]), 4), "all_heads": heatmap(previous), "kind": "previous_token"},
        pictures=[pattern_picture(ctx.each_input()[0], *first)],
    )


def composition_score(a_left: Tensor, a_right: Tensor, b_left: Tensor, b_right: Tensor) -> float:
    """|W_A W_B|_F / (|W_A|_F |W_B|_F) (Elhage et al. 2021; ARENA 1.2's get_comp_score) for
    W_A = a_left a_right^T and W_B = b_left b_right^T (each factor d_model x d_head), computed
    through d_head x d_head Gram matrices: |L C R^T|_F^2 = tr(L^T L C R^T R C^T)."""
    def gram(x: Tensor) -> Tensor:
        return x.T @ x

    middle = a_right.T @ b_left
    product = torch.trace(gram(a_left) @ middle @ gram(b_right) @ middle.T)
    norm_a = torch.trace(gram(a_left) @ gram(a_right))
    norm_b = torch.trace(gram(b_left) @ gram(b_right))
    return float((product / (norm_a * norm_b)).sqrt())


@functools.lru_cache(maxsize=4)
def random_rotations(d_model: int, samples: int, seed: int = 0) -> Float[Tensor, "sample d_model d_model"]:
    """Haar-random orthogonal matrices (QR of Gaussian matrices, signs fixed), float64."""
    generator = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(samples, d_model, d_model, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]


def rotation_null(w_v: Tensor, w_o: Tensor, w_k: Tensor, w_q: Tensor, samples: int) -> Tensor:
    """Composition scores of the earlier head's W_OV with its output space turned by random
    rotations: the same singular values, no alignment with the later head's W_QK. The null that
    matches the question "does this head write where that one reads?" (i.i.d. Gaussian factors
    have other spectra: a rotated real head reached z = 3.3-4.4 against them)."""
    rotations = random_rotations(w_o.shape[1], samples)
    return torch.tensor([composition_score(w_v, rotation @ w_o.T, w_k, w_q) for rotation in rotations])


def k_composition_z_scores(ctx: ProbeContext, head: tuple[int, int]) -> dict[tuple[int, int], float]:
    """K-composition of every head of the earlier layers into ``head``, in standard deviations
    above that pair's rotation null (``rotation_null``)."""
    bridge = ctx.with_weights("processed").bridge
    with torch.no_grad():  # W_OV = W_V W_O, and the keys' side W_QK^T = W_K W_Q^T
        w_q, w_k = bridge.W_Q[head].double(), bridge.W_K[head].double()
        scores = {}
        for layer in range(head[0]):
            for index in range(bridge.cfg.n_heads):
                w_v, w_o = bridge.W_V[layer, index].double(), bridge.W_O[layer, index].double()
                null = rotation_null(w_v, w_o, w_k, w_q, RANDOM_BASELINE_SAMPLES)
                scores[(layer, index)] = (composition_score(w_v, w_o.T, w_k, w_q) - float(null.mean())) / float(null.std())
    return scores


@probe("k_composition_z", hooks=PATTERN_HOOK)
def k_composition_z(ctx: ProbeContext, *, kind: str = "induction") -> Measurement:
    """The strongest K-composition into the discovered ``kind`` head from a head of an earlier
    layer, in standard deviations above its rotation null (the heads it reads
    its keys from are found, not assumed: an induction head reads a previous-token head)."""
    _, second, previous, _ = circuit_heads(ctx, kind)
    scores = k_composition_z_scores(ctx, second)
    first = max(scores, key=scores.get)
    return Measurement(
        value=scores[first],
        details={"composing_head": head_name(*first), f"{kind}_head": head_name(*second),
                 "previous_token_score_of_composing_head": round(float(previous[first]), 4),
                 "z_per_head": {head_name(*h): round(z, 2) for h, z in scores.items()},
                 "null": f"the composing head's W_OV under {RANDOM_BASELINE_SAMPLES} random rotations of its output space"},
    )


def copying_losses(ctx: ProbeContext, heads: list[tuple[int, int]]) -> tuple[float, float, float]:
    """(first-copy loss, second-copy loss, second-copy loss with ``heads`` zero-ablated) on the context's input."""
    first_copy, second_copy = copy_positions(ctx)
    tokens = ctx.tokens()
    logits, _ = ctx.forward()
    first, clean = mean_loss_at(logits, tokens, first_copy), mean_loss_at(logits, tokens, second_copy)
    if not heads:
        return first, clean, clean
    ablated_logits = ctx.runner.timed(lambda: ctx.bridge.run_with_hooks(tokens, fwd_hooks=ablation_hooks(heads, "zero")))
    return first, clean, mean_loss_at(ablated_logits, tokens, second_copy)


def share_destroyed(first: float, clean: float, ablated: float) -> float:
    """(ablated - clean) / (first - clean): 1 when the second copy is as unpredictable as the first;
    NaN (never passes) when the model does not copy at all."""
    benefit = first - clean
    return (ablated - clean) / benefit if benefit > 0.1 else float("nan")


@probe("discovered_ablation_copying", hooks=PATTERN_HOOK)
def discovered_ablation_copying(ctx: ProbeContext, *, heads: str, threshold: float, kind: str = "induction") -> Measurement:
    """Share of in-context copying destroyed by zero-ablating the discovered ``kind`` heads after
    the first layer (score > ``threshold``; lowest share over the lags), or, with ``heads =
    "others"``, as many heads outside the circuit (highest share over the lags and over every
    choice of them). The circuit: the ``kind`` heads, the previous-token heads (score >
    ``threshold``) and the heads they K-compose with (z > 3)."""
    if heads not in ("induction", "others"):
        raise ProbeInputError(f"heads {heads!r} is not known. Valid: 'induction' (the discovered ones), 'others' (as many others)")
    copying, previous = head_scores(ctx, kind), head_scores(ctx, "previous_token")
    n_heads = ctx.model.cfg.n_heads
    found = [tuple(h) for h in (copying > threshold).nonzero().tolist() if h[0] >= 1]
    circuit = set(found) | {tuple(h) for h in (previous > threshold).nonzero().tolist()}
    for head in found:
        circuit |= {h for h, z in k_composition_z_scores(ctx, head).items() if z > 3}
    others = [divmod(i, n_heads) for i in range(copying.numel()) if divmod(i, n_heads) not in circuit]
    if heads == "induction":
        choices = [found]
    else:
        if not found or not others:
            return Measurement(value=float("nan"), details={"discovered": [head_name(*h) for h in found],
                                                            "reason": "no discovered head, or no head outside the circuit"})
        choices = list(itertools.islice(itertools.combinations(others, min(len(found), len(others))), MAX_CONTROL_SETS))
    per_choice = {}
    for choice in choices:
        shares = [share_destroyed(*copying_losses(variant, list(choice))) for variant in ctx.each_input()]
        per_choice[",".join(head_name(*h) for h in choice) or "none"] = worst_of(shares, lowest=heads == "induction")
    values = list(per_choice.values())
    return Measurement(
        value=values[0] if heads == "induction" else worst_of(values, lowest=False),
        details={"kind": kind, "discovered": [head_name(*h) for h in found], "circuit": sorted(head_name(*h) for h in circuit),
                 "ablated": {k: round(v, 4) for k, v in per_choice.items()}, "threshold": threshold},
    )


@probe("in_context_learning_score", hooks=())
def in_context_learning_score(ctx: ProbeContext) -> Measurement:
    """Mean loss on the second copy of R minus on the first (Olsson et al. 2022's in-context
    learning score: loss late in the context minus loss early); about 0 without copying."""
    per_lag = {}
    for variant in ctx.each_input():
        first, clean, _ = copying_losses(variant, [])
        per_lag[variant.input.label] = {"early": round(first, 4), "late": round(clean, 4)}
    scores = [lag["late"] - lag["early"] for lag in per_lag.values()]
    return Measurement(value=worst_of(scores, lowest=False), details={"per_lag": per_lag})


@probe("previous_token_heads_feed_copying", hooks=PATTERN_HOOK)
def previous_token_heads_feed_copying(ctx: ProbeContext, *, kind: str = "induction", threshold: float = 0.4) -> Measurement:
    """The share of the discovered ``kind`` head's score lost when the previous-token heads of the
    layers before it (score > ``threshold``) are zero-ablated: a previous-token head that feeds the
    copying head, not merely one that exists. 0 when no ``kind`` head after the first layer scores
    above ``threshold`` (nothing to feed) or no previous-token head comes before it."""
    _, second, previous, copying = circuit_heads(ctx, kind)
    clean = float(copying[second])
    feeders = [tuple(h) for h in (previous[: second[0]] > threshold).nonzero().tolist()]
    details = {f"{kind}_head": head_name(*second), f"{kind}_score": round(clean, 4),
               "previous_token_heads": [head_name(*h) for h in feeders], "threshold": threshold}
    if clean <= threshold or not feeders:
        return Measurement(value=0.0, details=details | {"reason": f"no {kind} head above {threshold}" if clean <= threshold
                                                         else "no previous-token head before it"})
    shares = []
    for variant in ctx.each_input():
        tokens = variant.tokens()
        captured = {}

        def keep(pattern, hook=None):
            captured["pattern"] = pattern.detach()
            return pattern

        hooks = [*ablation_hooks(feeders, "zero"), (f"blocks.{second[0]}.attn.hook_pattern", keep)]
        variant.runner.timed(lambda: variant.bridge.run_with_hooks(tokens, fwd_hooks=hooks))  # noqa: B023
        mask = target_mask(tokens, kind, variant.bridge.tokenizer.bos_token_id)
        queries = mask.any(dim=-1)
        on_target = (captured["pattern"][:, second[1]].float() * mask).sum(dim=-1)
        ablated = float((on_target * queries).sum() / queries.sum())
        clean_here = float(head_scores_on(variant, kind)[second])
        shares.append((clean_here - ablated) / clean_here)
        details[f"{variant.input.label}"] = {"clean": round(clean_here, 4), "ablated": round(ablated, 4)}
    return Measurement(value=worst_of(shares, lowest=True), details=details)


@probe("discovered_patching_recovery", hooks=(*PATTERN_HOOK, "attn.hook_z"))
def discovered_patching_recovery(
    ctx: ProbeContext, *, kind: str, threshold: float, min_layer: int = 1, corruption: str = "fresh_repeat",
    corruption_seed: int = 1, metric: str = "repeat_loss",
) -> Measurement:
    """The share of the metric restored when the discovered ``kind`` heads (score > ``threshold``,
    layers >= ``min_layer``) get their clean outputs back together (``probes/patching.py``); 0 when
    none is found (a claim that they restore then fails)."""
    from interp_claims.probes.patching import CORRUPTIONS, METRICS, patching_recovery

    require_in_range("min_layer", min_layer, 0, ctx.model.cfg.n_layers - 1)
    require_in_range("corruption_seed", corruption_seed, 0)
    for name, value, valid in (("corruption", corruption, CORRUPTIONS), ("metric", metric, METRICS)):
        if value not in valid:  # refused before discovery, which may find nothing and stop there
            raise ProbeInputError(f"{name} {value!r} is not known. Valid: {', '.join(valid)}.")
    found = [head_name(*h) for h in (head_scores(ctx, kind) > threshold).nonzero().tolist() if h[0] >= min_layer]
    if not found:
        return Measurement(value=0.0, details={"discovered": [], "kind": kind, "threshold": threshold})
    patched = patching_recovery(ctx, heads=found, restore="z", corruption=corruption, corruption_seed=corruption_seed,
                                metric=metric)
    return Measurement(value=patched.value, details={"discovered": found, "kind": kind, "threshold": threshold, **patched.details})
