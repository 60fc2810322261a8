"""Causal claims: ablate heads and measure what the model loses.

A head is ablated at ``blocks.L.attn.hook_z`` (its output before W_O): ``zero`` sets it
to 0, ``mean`` to its mean over batch and positions on the same input.
"""

import math
from collections import defaultdict

from jaxtyping import Float
from torch import Tensor

from interp_claims.context import ProbeContext
from interp_claims.probes.heads import parse_head
from interp_claims.measurement import Measurement, ProbeInputError
from interp_claims.registry import probe
from interp_claims.probes.repetition import continuation_centred_logits, continuation_probabilities, name_token_ids

ABLATIONS = ("zero", "mean")


def ablation_hooks(heads: list[tuple[int, int]], how: str) -> list:
    if how not in ABLATIONS:
        raise ProbeInputError(f"ablation {how!r} is not known. Valid: {', '.join(ABLATIONS)}.")
    by_layer: dict[int, list[int]] = defaultdict(list)
    for layer, index in heads:
        by_layer[layer].append(index)

    def make_hook(indices: list[int]):
        def hook(z: Float[Tensor, "batch pos head d_head"], hook=None) -> Float[Tensor, "batch pos head d_head"]:
            z = z.clone()
            if how == "zero":
                z[:, :, indices] = 0.0
            else:
                z[:, :, indices] = z[:, :, indices].mean(dim=(0, 1), keepdim=True)
            return z

        return hook

    return [(f"blocks.{layer}.attn.hook_z", make_hook(indices)) for layer, indices in by_layer.items()]


METRICS = ("probability", "logprob", "logit")


@probe("ablation_drop_in_name_probability", hooks=())
def ablation_drop_in_name_probability(
    ctx: ProbeContext, *, heads: list[str], name: str, occurrence: int, how: str = "zero", metric: str = "probability"
) -> Measurement:
    """Mean continuation probability of ``name`` at ``occurrence``, clean minus with ``heads`` ablated;
    with ``metric = "logprob"`` the mean log-probability instead (nats): it does not saturate near
    p = 1, so it shows a loss that backup heads keep the probability from showing; with
    ``metric = "logit"`` the mean centred logit (the piece's logit minus the mean logit there),
    which does not flatten near p = 1 either: one copying head of ten removed moves it by a logit
    where the log-probability moves by 0.007."""
    if metric not in METRICS:
        raise ProbeInputError(f"metric {metric!r} is not known. Valid: {', '.join(METRICS)}.")
    cfg = ctx.model.cfg
    parsed = [parse_head(h, cfg.n_layers, cfg.n_heads) for h in heads]
    if not parsed:
        raise ProbeInputError("ablation needs at least one head")
    ids = name_token_ids(ctx, name)
    tokens = ctx.tokens()
    clean_logits, _ = ctx.forward()
    ablated_logits = ctx.runner.timed(
        lambda: ctx.bridge.run_with_hooks(tokens, fwd_hooks=ablation_hooks(parsed, how))
    )
    read = continuation_centred_logits if metric == "logit" else continuation_probabilities
    clean = read(clean_logits[0], tokens[0], ids, occurrence)
    ablated = read(ablated_logits[0], tokens[0], ids, occurrence)
    # what the ablation did at all: a control whose heads change nothing would be vacuous
    logit_change = float((ablated_logits.float() - clean_logits.float()).abs().max())
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    log_mean = lambda values: sum(math.log(max(p, 1e-45)) for p in values) / len(values)  # noqa: E731
    value = log_mean(clean) - log_mean(ablated) if metric == "logprob" else mean(clean) - mean(ablated)
    return Measurement(
        value=value,
        details={
            "metric": metric,
            "ablation": how,
            "heads": heads,
            "clean": [round(p, 4) for p in clean],
            "ablated": [round(p, 4) for p in ablated],
            "max_logit_change": round(logit_change, 4),
        },
    )
