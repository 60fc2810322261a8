"""Path patching: restore one edge of a circuit, from sender heads into receiver heads' inputs.

Activation patching restores a head's output for every later reader at once; an edge says how one
head acts *through* another (a previous-token head through an induction head's keys: K-composition,
Elhage et al. 2021). Direct path patching (Wang et al. 2022, as TransformerLens's
``patching.get_act_patch_direct_path`` does it) adds the senders' clean-minus-corrupted write
(``z @ W_O``) to each receiver's own pre-LayerNorm copy of the residual stream, at every position,
for the ``component`` it reads it through (``q``, ``k`` or ``v``), while every other reader still
sees the corrupted output:

    recovery = (metric(path patched) - metric(corrupted)) / (metric(clean) - metric(corrupted))

Corruptions, metrics and the guard that there is a behaviour to restore are those of
``probes/patching.py``. The receivers are patched together in one forward pass. TransformerLens runs
one pass per receiver; ``tests/test_patching.py`` checks one receiver against it.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from jaxtyping import Float
from torch import Tensor

from interp_claims.context import ProbeContext
from interp_claims.measurement import Measurement, ProbeInputError
from interp_claims.probes.heads import parse_head
from interp_claims.probes.patching import prepare, recovery
from interp_claims.registry import probe

COMPONENTS = ("q", "k", "v")
Z_HOOK = "attn.hook_z"


@contextmanager
def split_qkv_input(bridge) -> Iterator[None]:
    """The bridge with a per-head copy of each attention's input for Q, K and V (the
    ``hook_{q,k,v}_input`` hooks), its own flags restored on exit: the model is shared."""
    saved_split = bool(getattr(bridge.cfg, "use_split_qkv_input", False))
    saved_attn_in = bool(getattr(bridge.cfg, "use_attn_in", False))
    try:
        if saved_attn_in:  # the two forks exclude each other
            bridge.set_use_attn_in(False)
        if not saved_split:
            bridge.set_use_split_qkv_input(True)
        yield
    finally:
        bridge.set_use_split_qkv_input(saved_split)
        if saved_attn_in:
            bridge.set_use_attn_in(True)


def sender_write(ctx: ProbeContext, clean_z: dict[int, Tensor], corrupted_z: dict[int, Tensor],
                 senders: list[tuple[int, int]]) -> Float[Tensor, "batch pos d_model"]:
    """The senders' clean-minus-corrupted write into the residual stream, summed (``z @ W_O``; the
    bias cancels)."""
    total = None
    for layer, head in senders:
        w_o = ctx.bridge.W_O[layer][head]
        write = (clean_z[layer][:, :, head] - corrupted_z[layer][:, :, head]) @ w_o.to(clean_z[layer].dtype)
        total = write if total is None else total + write
    return total


def parse_heads(name: str, heads, cfg) -> list[tuple[int, int]]:
    if not isinstance(heads, list) or not heads or not all(isinstance(h, str) for h in heads):
        raise ProbeInputError(f"{name} must be a non-empty list of 'LAYER.HEAD', got {heads!r}")
    return [parse_head(h, cfg.n_layers, cfg.n_heads) for h in heads]


@probe("path_patching_recovery", hooks=(Z_HOOK,))
def path_patching_recovery(
    ctx: ProbeContext, *, senders: list[str], receivers: list[str], component: str, corruption: str,
    corruption_seed: int = 1, corrupt_position: int | None = None, corrupt_token: str | None = None, metric: str,
    answers: list | None = None,
) -> Measurement:
    """The share of the metric restored when only the path from ``senders`` into ``receivers``'
    ``component`` input (``q``, ``k`` or ``v``) carries the clean senders' output."""
    if component not in COMPONENTS:
        raise ProbeInputError(f"component {component!r} is not known. Valid: {', '.join(COMPONENTS)}.")
    cfg = ctx.model.cfg
    sent, received = parse_heads("senders", senders, cfg), parse_heads("receivers", receivers, cfg)
    last_sender = max(layer for layer, _ in sent)
    early = [f"{layer}.{head}" for layer, head in received if layer <= last_sender]
    if early:
        raise ProbeInputError(f"receivers {early} are not after every sender (the last in layer {last_sender}): "
                              f"a path runs from a head into a later one")
    corrupted, clean_z, measure, clean, corrupted_value = prepare(
        ctx, "z", corruption, corruption_seed, metric, answers, corrupt_position, corrupt_token)
    names = {f"blocks.{layer}.{Z_HOOK}" for layer, _ in sent}
    with torch.no_grad():
        _, cache = ctx.runner.timed(lambda: ctx.bridge.run_with_cache(corrupted, names_filter=lambda n: n in names))
        delta = sender_write(ctx, clean_z, {layer: cache[f"blocks.{layer}.{Z_HOOK}"] for layer, _ in sent}, sent)
    fired: set[int] = set()

    def make_hook(layer: int, heads: list[int]):
        def hook(fork: Tensor, hook=None) -> Tensor:  # [batch, pos, head, d_model]
            fired.add(layer)
            fork = fork.clone()
            fork[:, :, heads] += delta[:, :, None].to(fork.dtype)
            return fork

        return hook

    by_layer: dict[int, list[int]] = {}
    for layer, head in received:
        by_layer.setdefault(layer, []).append(head)
    hooks = [(f"blocks.{layer}.attn.hook_{component}_input", make_hook(layer, heads)) for layer, heads in sorted(by_layer.items())]
    with split_qkv_input(ctx.bridge), torch.no_grad():
        logits = ctx.runner.timed(lambda: ctx.bridge.run_with_hooks(corrupted, fwd_hooks=hooks))
    if fired != set(by_layer):  # a hook that never fired would leave the run unpatched, silently
        raise ProbeInputError(f"this model's attention in layers {sorted(set(by_layer) - fired)} has no per-head "
                              f"{component} input to patch (TransformerBridge's split Q/K/V fork)")
    patched = float(measure(logits).mean())
    return Measurement(
        value=recovery(patched, clean, corrupted_value),
        details={"senders": senders, "receivers": receivers, "component": component, "corruption": corruption,
                 "corruption_seed": corruption_seed, "metric": metric, "clean": round(clean, 4),
                 "corrupted": round(corrupted_value, 4), "patched": round(patched, 4),
                 **({"corrupt_position": corrupt_position, "corrupt_token": corrupt_token} if corruption == "replace_token" else {})},
    )
