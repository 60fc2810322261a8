"""Circuits scored for faithfulness: how much of a behaviour a set of heads keeps on its own.

Every head outside the circuit has its output (``attn.hook_z``) replaced by its mean over a
reference distribution (per position: the same shape of input with other tokens), and the
circuit's share of the behaviour is

    faithfulness = (m(circuit) - m(none)) / (m(model) - m(none))

where m(none) mean-ablates every head: 1 keeps all of it, 0 keeps nothing (MIB, Mueller et al.
2025, normalise the same way). A circuit is worth naming only if a random set of heads of the same
size keeps far less (``aggregate = "random_mean"`` / ``"random_max"``, sets drawn with ``seed``).

The faithfulness curve (``aggregate = "size_to_reach"``) ranks heads by knockout (how much the
behaviour falls when the head alone is mean-ablated) on a *discovery* split, then scores the top
1, 2, ... heads on the claim's own input, a held-out split of other tokens: the value is the
smallest number of heads that keeps ``fraction`` of the behaviour; the curve is kept in the details
and drawn in the report. (A ranking by single-head patching would miss the heads upstream of the
ones that act: on the embedded twin its nine copying heads keep only 0.11 without the two
previous-token heads that feed them.)

On ``[BOS, R, R]`` inputs the behaviour is induction (metric ``repeat_loss``, lower is better: the
normalisation above is sign-free) and the reference distribution is the same shape with fresh ids
(``reference_seed``). On prompts (``texts``, metric ``logit_diff`` or ``token_prob`` with ``answers``)
the claim gives ``reference_texts``: for each prompt, the prompts whose mean (per position) replaces
an ablated head's output on it, each of the prompt's own length. Wang et al. 2022's ABC prompts are
the template with three other names; one list per template gives per-template means. Every set is
scored in batched forward passes.
"""

import random
from dataclasses import replace

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp_claims.context import ProbeContext
from interp_claims.inputs import InputSpec, repeated_random_tokens
from interp_claims.measurement import Measurement, ProbeInputError, require_in_range
from interp_claims.probes.heads import head_name, parse_head
from interp_claims.probes.patching import metric_function, require_effect
from interp_claims.registry import probe

AGGREGATES = ("circuit", "random_mean", "random_max", "size_to_reach")
Z_HOOK = "attn.hook_z"


def head_outputs(ctx: ProbeContext, tokens: Int[Tensor, "batch pos"]) -> dict[int, Float[Tensor, "batch pos head d_head"]]:
    names = {f"blocks.{layer}.{Z_HOOK}" for layer in range(ctx.model.cfg.n_layers)}
    with torch.no_grad():
        _, cache = ctx.runner.timed(lambda: ctx.bridge.run_with_cache(tokens, names_filter=lambda name: name in names))
    return {layer: cache[f"blocks.{layer}.{Z_HOOK}"] for layer in range(ctx.model.cfg.n_layers)}


def reference_means(ctx: ProbeContext, seed: int) -> dict[int, Float[Tensor, "1 pos head d_head"]]:
    """Each layer's head outputs, averaged over a reference batch of the claim's shape (fresh ids)."""
    spec = ctx.input
    seq_len, batch, _ = spec.repeated_random
    tokens = repeated_random_tokens(ctx.model.cfg.d_vocab, ctx.bridge.tokenizer.bos_token_id, seq_len, batch, seed,
                                    token_range=spec.token_range).to(ctx.model.device)
    return {layer: z.mean(0, keepdim=True) for layer, z in head_outputs(ctx, tokens).items()}


def text_reference_means(ctx: ProbeContext, reference_texts) -> dict[int, Float[Tensor, "prompt pos head d_head"]]:
    """Each layer's head outputs on each prompt's own reference prompts, averaged per position."""
    prompts = ctx.input.texts
    if not (isinstance(reference_texts, list) and len(reference_texts) == len(prompts)
            and all(isinstance(group, list) and group and all(isinstance(t, str) and t for t in group) for group in reference_texts)):
        raise ProbeInputError(f"reference_texts needs one non-empty list of prompts per prompt ({len(prompts)}): the prompts "
                              f"whose mean replaces an ablated head's output on it, got {reference_texts!r}")
    width = ctx.tokens().shape[1]
    lengths = {stop - start for start, stop in ctx.spans()}
    if lengths != {width}:
        raise ProbeInputError(f"circuit_faithfulness on prompts needs every prompt of one length (means are per position), "
                              f"got lengths {sorted(lengths)}")
    flat = [text for group in reference_texts for text in group]
    for text in flat:
        length = len(ctx.bridge.to_tokens(text, prepend_bos=ctx.input.prepend_bos)[0])
        if length != width:
            raise ProbeInputError(f"reference prompt {text!r} is {length} tokens, its prompt {width}: a mean per position "
                                  f"needs the same template")
    tokens = ctx.runner.tokens(InputSpec(texts=tuple(flat), prepend_bos=ctx.input.prepend_bos))
    outputs = head_outputs(ctx, tokens)
    bounds = [0]
    for group in reference_texts:
        bounds.append(bounds[-1] + len(group))
    return {layer: torch.stack([z[start:stop].mean(0) for start, stop in zip(bounds, bounds[1:])])
            for layer, z in outputs.items()}


def kept_scores(ctx: ProbeContext, tokens: Int[Tensor, "batch pos"], kept: list[set[tuple[int, int]]],
                means: dict[int, Tensor], metric, per_pass: int = 32) -> list[float]:
    """The metric (mean over rows) with only ``kept[k]`` left running in copy k: every other head's
    output is its reference mean. ``per_pass`` copies per forward pass."""
    cfg, rows = ctx.model.cfg, tokens.shape[0]
    values = []
    for start in range(0, len(kept), per_pass):
        chunk = kept[start:start + per_pass]

        def make_hook(layer: int):
            ablated = torch.ones(len(chunk), cfg.n_heads, dtype=torch.bool, device=tokens.device)
            for copy, heads in enumerate(chunk):
                for kept_layer, head in heads:
                    if kept_layer == layer:
                        ablated[copy, head] = False
            mask = ablated.repeat_interleave(rows, dim=0)[:, None, :, None]  # [copies * rows, 1, head, 1]

            mean = means[layer] if means[layer].shape[0] == 1 else means[layer].repeat(len(chunk), 1, 1, 1)

            def hook(z: Tensor, hook=None) -> Tensor:
                return torch.where(mask, mean.to(z.dtype), z)

            return hook

        hooks = [(f"blocks.{layer}.{Z_HOOK}", make_hook(layer)) for layer in range(cfg.n_layers)]
        batch = tokens.repeat(len(chunk), 1)
        with torch.no_grad():
            logits = ctx.runner.timed(lambda: ctx.bridge.run_with_hooks(batch, fwd_hooks=hooks))
        values += metric(logits).view(len(chunk), rows).mean(-1).tolist()
    return values


@probe("circuit_faithfulness", hooks=())
def circuit_faithfulness(
    ctx: ProbeContext, *, heads: list[str], aggregate: str, metric: str = "repeat_loss", reference_seed: int = 1,
    random_sets: int = 10, seed: int = 0, fraction: float = 0.8, discovery_seed: int = 2,
    reference_texts: list | None = None, answers: list | None = None,
) -> Measurement:
    """The share of the behaviour the circuit ``heads`` keeps with every other head mean-ablated
    (``circuit``); the same for random sets of its size (``random_mean``, ``random_max``); or the
    fewest top-ranked heads that keep ``fraction`` of it (``size_to_reach``)."""
    if aggregate not in AGGREGATES:
        raise ProbeInputError(f"aggregate {aggregate!r} is not known. Valid: {', '.join(AGGREGATES)}.")
    if not isinstance(heads, list) or not heads or not all(isinstance(h, str) for h in heads):
        raise ProbeInputError(f"heads must be a non-empty list of 'LAYER.HEAD', got {heads!r}")
    for name, value in (("reference_seed", reference_seed), ("seed", seed), ("discovery_seed", discovery_seed)):
        require_in_range(name, value, 0)
    require_in_range("random_sets", random_sets, 1)
    if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ProbeInputError(f"fraction must be in (0, 1], got {fraction!r}")
    spec = ctx.input
    cfg = ctx.model.cfg
    circuit = {parse_head(head, cfg.n_layers, cfg.n_heads) for head in heads}
    every = [(layer, head) for layer in range(cfg.n_layers) for head in range(cfg.n_heads)]
    if spec is not None and spec.texts and spec.repeated_random is None:
        if aggregate == "size_to_reach":
            raise ProbeInputError("aggregate 'size_to_reach' ranks heads on a discovery split of fresh random tokens: "
                                  "it needs a repeated_random input")
        means = text_reference_means(ctx, reference_texts)
    elif spec is None or spec.repeated_random is None or spec.length_range is not None or spec.alternatives or not spec.prepend_bos:
        raise ProbeInputError("circuit_faithfulness needs prompts (texts, with reference_texts) or a repeated_random "
                              "input of one seq_len, with BOS")
    elif reference_texts is not None:
        raise ProbeInputError("reference_texts are for prompts; a repeated_random input draws its reference with reference_seed")
    else:
        means = reference_means(ctx, reference_seed)
    tokens = ctx.tokens()
    measure = metric_function(ctx, tokens, metric, answers)
    kept: list[set[tuple[int, int]]] = [set(every), set(), circuit]
    draws = random.Random(seed)
    random_draws = [set(draws.sample(every, len(circuit))) for _ in range(random_sets)]
    details: dict = {"heads": heads, "aggregate": aggregate, "metric": metric,
                     **({"reference_seed": reference_seed} if reference_texts is None else {"reference_prompts": sum(map(len, reference_texts))})}
    ranking: list[tuple[int, int]] = []
    if aggregate in ("random_mean", "random_max"):
        kept += random_draws
    if aggregate == "size_to_reach":
        ranking = discovery_ranking(ctx, discovery_seed, means, metric)
        sizes = curve_sizes(len(ranking), len(circuit))
        kept += [set(ranking[:k]) for k in sizes]
    full, none, *scored = kept_scores(ctx, tokens, kept, means, measure)
    require_effect("mean-ablating every head", metric, full, none)
    share = [(value - none) / (full - none) for value in scored]
    details.update(model=round(full, 4), none=round(none, 4), circuit=round(share[0], 4))
    if aggregate == "circuit":
        value = share[0]
    elif aggregate in ("random_mean", "random_max"):
        randoms = share[1:]
        value = sum(randoms) / len(randoms) if aggregate == "random_mean" else max(randoms)
        details.update(random_sets=random_sets, seed=seed, random=[round(v, 4) for v in randoms])
    else:
        curve = list(zip(sizes, share[1:], strict=True))
        reached = [k for k, v in curve if v >= fraction]
        value = float(reached[0]) if reached else float("inf")
        details.update(fraction=fraction, discovery_seed=discovery_seed,
                       ranking=[head_name(*h) for h in ranking[:3 * len(circuit)]],
                       curve=[[k, round(v, 4)] for k, v in curve])
    return Measurement(value=float(value), details=details)


def curve_sizes(heads: int, circuit: int) -> list[int]:
    """Circuit sizes the curve is scored at: every size up to three times the named circuit's, then
    every head."""
    return sorted({*range(1, min(heads, 3 * circuit) + 1), heads})


def discovery_ranking(ctx: ProbeContext, seed: int, means: dict[int, Tensor], metric: str) -> list[tuple[int, int]]:
    """Heads ranked by knockout on the discovery split (the claim's shape, other tokens): how much the
    behaviour falls when the head alone is mean-ablated, strongest first (those that matter at all).
    Knockout credits the heads upstream of the ones that act (a previous-token head feeding an
    induction head); a patching sweep of single heads would not (see the README)."""
    seq_len, batch, _ = ctx.input.repeated_random
    discovery = replace(ctx.input, repeated_random=(seq_len, batch, seed), alternatives=())
    cfg = ctx.model.cfg
    tokens = repeated_random_tokens(cfg.d_vocab, ctx.bridge.tokenizer.bos_token_id, seq_len, batch, seed,
                                    token_range=discovery.token_range).to(ctx.model.device)
    measure = metric_function(ProbeContext(ctx.model, ctx.runner, discovery), tokens, metric, None)
    every = [(layer, head) for layer in range(cfg.n_layers) for head in range(cfg.n_heads)]
    full, *knocked = kept_scores(ctx, tokens, [set(every)] + [set(every) - {h} for h in every], means, measure)
    return [h for _, h in sorted(((abs(value - full), h) for h, value in zip(every, knocked, strict=True)), reverse=True)]
