"""Activation patching: run a corrupted input, restore one activation from the clean run, and
measure how much of the behaviour comes back.

    recovery = (metric(patched) - metric(corrupted)) / (metric(clean) - metric(corrupted))

0: restoring it changes nothing; 1: it restores the clean behaviour. A claim names the clean input
(its ``input``), the corruption, what is restored, the metric, and (for a sweep) the heads it claims:

* corruptions (named, seeded, recorded in the details): ``fresh_repeat`` (repeated random tokens:
  the second copy replaced by fresh random ids drawn with ``corruption_seed``); ``swap_pairs``
  (prompts swapped within consecutive pairs: TransformerLens's Exploratory demo's IOI corruption,
  the subject's second mention becomes the other name, the answers stay); ``replace_token`` (the
  token at ``corrupt_position`` of every prompt replaced by ``corrupt_token``, one token);
* restored: ``z`` (a head's output, ``attn.hook_z``, every position), ``v`` (its values,
  ``attn.hook_v``), ``pattern`` (its attention pattern, ``attn.hook_pattern``), one head or several
  at once; or ``resid_pre`` (the residual stream entering a ``layer``) and ``mlp_out`` (a layer's
  MLP output), at one ``position`` or every position;
* metrics: ``repeat_loss`` (mean loss of the clean input's next tokens over the repeated half),
  ``logit_diff`` (logit(correct) - logit(incorrect) at the last position, mean over prompts;
  ``answers`` = one [correct, incorrect] pair per prompt) and ``token_prob`` (the probability of
  the correct answer of each pair at the last position).

A sweep (``patching_sweep``) restores every head of every layer, one at a time, and runs
``patches_per_pass`` patched copies of the corrupted batch in each forward pass instead of one pass
per head: 144 heads cost 144 forward-pass equivalents of compute in 144 / patches_per_pass calls.
It is checked against TransformerLens's own ``transformer_lens.patching`` (one pass per head) in
``tests/test_patching.py``.
"""

import math
from collections import defaultdict
from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp_claims.context import ProbeContext
from interp_claims.inputs import draw_ids
from interp_claims.measurement import Measurement, ProbeInputError, require_in_range, worst_of
from interp_claims.probes.heads import head_name, parse_head
from interp_claims.registry import probe

CORRUPTIONS = ("fresh_repeat", "swap_pairs", "replace_token")
RESTORED = {"z": "attn.hook_z", "v": "attn.hook_v", "pattern": "attn.hook_pattern"}  # per head
RESTORED_STREAMS = {"resid_pre": "hook_resid_pre", "mlp_out": "hook_mlp_out"}  # per layer and position
METRICS = ("repeat_loss", "logit_diff", "token_prob")
# The smallest change of the metric a corruption must make for a recovery to mean anything: below it
# the ratio divides noise by noise (a random GPT-2's repeat loss moves by ~0.05 nat, and its single-head
# "recoveries" range over +-0.07). One nat of loss, one logit of difference, a tenth of probability.
MIN_EFFECT = {"repeat_loss": 1.0, "logit_diff": 1.0, "token_prob": 0.1}
HOOKS = (*RESTORED.values(), *RESTORED_STREAMS.values())


def corrupt(ctx: ProbeContext, clean: Int[Tensor, "batch pos"], corruption: str, seed: int,
            position: int | None = None, token: str | None = None) -> Int[Tensor, "batch pos"]:
    """The corrupted input of the same shape as the clean one."""
    if corruption not in CORRUPTIONS:
        raise ProbeInputError(f"corruption {corruption!r} is not known. Valid: {', '.join(CORRUPTIONS)}.")
    if corruption == "replace_token":
        if not isinstance(position, int) or isinstance(position, bool) or not -clean.shape[1] <= position < clean.shape[1]:
            raise ProbeInputError(f"corruption 'replace_token' needs corrupt_position within the input's "
                                  f"{clean.shape[1]} tokens (negative counts from the end), got {position!r}")
        encoded = ctx.bridge.tokenizer.encode(token, add_special_tokens=False) if isinstance(token, str) and token else []
        if len(encoded) != 1:
            raise ProbeInputError(f"corruption 'replace_token' needs corrupt_token of one token, got {token!r} ({encoded})")
        corrupted = clean.clone()
        corrupted[:, position] = encoded[0]
        return corrupted
    if corruption == "fresh_repeat":
        spec = ctx.input
        if spec is None or spec.repeated_random is None or spec.length_range is not None or not spec.prepend_bos:
            raise ProbeInputError("corruption 'fresh_repeat' needs a repeated_random input of one seq_len, with BOS")
        seq_len = spec.repeated_random[0]
        generator = torch.Generator().manual_seed(seed)
        fresh = draw_ids(ctx.model.cfg.d_vocab, ctx.bridge.tokenizer.bos_token_id, (clean.shape[0], seq_len), generator,
                         spec.token_range).to(clean.device)
        corrupted = clean.clone()
        corrupted[:, 1 + seq_len:] = fresh
        return corrupted
    if clean.shape[0] % 2:
        raise ProbeInputError(f"corruption 'swap_pairs' needs an even number of prompts, got {clean.shape[0]}")
    order = torch.arange(clean.shape[0], device=clean.device).view(-1, 2).flip(1).reshape(-1)
    return clean[order]


def metric_function(ctx: ProbeContext, clean: Int[Tensor, "batch pos"], metric: str,
                    answers: list | None) -> Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, "batch"]]:
    """logits -> the metric of each row (the caller averages), read against the clean input's answers."""
    if metric not in METRICS:
        raise ProbeInputError(f"metric {metric!r} is not known. Valid: {', '.join(METRICS)}.")
    if metric == "repeat_loss":
        spec = ctx.input
        if spec is None or spec.repeated_random is None or spec.length_range is not None or not spec.prepend_bos:
            raise ProbeInputError("metric 'repeat_loss' needs a repeated_random input of one seq_len, with BOS")
        start = 1 + spec.repeated_random[0]  # the repeated half's first position
        targets = clean[:, start + 1:]

        def repeat_loss(logits):  # a batch of copies of the input: the targets repeat with them
            log_probs = logits[:, start:-1].float().log_softmax(-1)
            repeated = targets.repeat(logits.shape[0] // targets.shape[0], 1)
            return -log_probs.gather(-1, repeated[..., None])[..., 0].mean(-1)

        return repeat_loss
    pairs = answer_ids(ctx, answers, clean.shape[0]).to(clean.device)
    last = [stop - 1 for _, stop in ctx.spans()]

    def token_prob(logits):  # the correct answer's probability at the last position
        copies = logits.shape[0] // len(last)
        final = logits[torch.arange(logits.shape[0]), torch.tensor(last * copies)].float().softmax(-1)
        return final.gather(-1, pairs.repeat(copies, 1)[:, :1])[:, 0]

    if metric == "token_prob":
        return token_prob

    def logit_diff(logits):  # a batch of copies of the input: the answers repeat with them
        copies = logits.shape[0] // len(last)
        final = logits[torch.arange(logits.shape[0]), torch.tensor(last * copies)].float()
        return final.gather(-1, pairs.repeat(copies, 1)).diff(dim=-1)[:, 0].neg()

    return logit_diff


def answer_ids(ctx: ProbeContext, answers: list | None, prompts: int) -> Int[Tensor, "prompt 2"]:
    """The token ids of one [correct, incorrect] pair of single-token answers per prompt."""
    if not isinstance(answers, list) or len(answers) != prompts:
        raise ProbeInputError(f"the logit difference needs answers: one [correct, incorrect] pair per prompt "
                              f"({prompts}), got {answers!r}")
    tokenizer = ctx.bridge.tokenizer
    ids = []
    for pair in answers:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(a, str) and a for a in pair)):
            raise ProbeInputError(f"each answer is [correct, incorrect] (two non-empty strings), got {pair!r}")
        encoded = [tokenizer.encode(a, add_special_tokens=False) for a in pair]
        if any(len(e) != 1 for e in encoded):
            raise ProbeInputError(f"answers {pair!r} must be one token each with this tokenizer, got {encoded}")
        ids.append([e[0] for e in encoded])
    return torch.tensor(ids)


def restore_hooks(restored: str, groups: list[list[tuple[int, int]]], rows: int, clean: dict[int, Tensor]) -> list:
    """Hooks for a batch of ``len(groups)`` copies of the corrupted input (``rows`` rows each): copy k
    gets the heads of ``groups[k]`` restored from the clean run, the other copies stay corrupted."""
    head_axis = 1 if restored == "pattern" else 2  # hook_pattern is [batch, head, q, k]; z and v [batch, pos, head, d]
    by_layer: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for copy, group in enumerate(groups):
        for layer, head in group:
            by_layer[layer].append((copy, head))

    def make_hook(layer: int, copies: list[tuple[int, int]]):
        def hook(activation: Tensor, hook=None) -> Tensor:
            activation = activation.clone()
            for copy, head in copies:
                target: list = [slice(copy * rows, (copy + 1) * rows), slice(None), slice(None)]
                source: list = [slice(None), slice(None), slice(None)]
                target[head_axis] = source[head_axis] = head
                activation[tuple(target)] = clean[layer][tuple(source)]
            return activation

        return hook

    return [(f"blocks.{layer}.{RESTORED[restored]}", make_hook(layer, copies)) for layer, copies in sorted(by_layer.items())]


def stream_hooks(restored: str, layer: int, position: int | None, clean: Tensor) -> list:
    """Restore the residual stream entering ``layer`` (or its MLP output) at ``position`` (every position: None)."""

    def hook(activation: Tensor, hook=None) -> Tensor:
        activation = activation.clone()
        where = slice(None) if position is None else position
        activation[:, where] = clean[:, where]
        return activation

    return [(f"blocks.{layer}.{RESTORED_STREAMS[restored]}", hook)]


def patched_metrics(ctx: ProbeContext, corrupted: Int[Tensor, "batch pos"], restored: str, groups: list[list[tuple[int, int]]],
                    clean_cache: dict[int, Tensor], metric: Callable, per_pass: int) -> list[float]:
    """The metric (mean over rows) with each group of heads restored jointly, ``per_pass`` groups per forward pass."""
    rows = corrupted.shape[0]
    values = []
    for start in range(0, len(groups), per_pass):
        chunk = groups[start:start + per_pass]
        hooks = restore_hooks(restored, chunk, rows, clean_cache)
        batch = corrupted.repeat(len(chunk), 1)
        with torch.no_grad():
            logits = ctx.runner.timed(lambda: ctx.bridge.run_with_hooks(batch, fwd_hooks=hooks))
        values += metric(logits).view(len(chunk), rows).mean(-1).tolist()
    return values


def prepare(ctx: ProbeContext, restored: str, corruption: str, corruption_seed: int, metric: str, answers,
            corrupt_position: int | None = None, corrupt_token: str | None = None):
    if restored not in RESTORED and restored not in RESTORED_STREAMS:
        raise ProbeInputError(f"restore {restored!r} is not known. Valid: {', '.join([*RESTORED, *RESTORED_STREAMS])}.")
    require_in_range("corruption_seed", corruption_seed, 0)
    clean = ctx.tokens()
    measure = metric_function(ctx, clean, metric, answers)
    corrupted = corrupt(ctx, clean, corruption, corruption_seed, corrupt_position, corrupt_token)
    clean_logits, cache = ctx.forward()
    n_layers = ctx.model.cfg.n_layers
    hook = RESTORED.get(restored) or RESTORED_STREAMS[restored]
    clean_cache = {layer: cache[f"blocks.{layer}.{hook}"] for layer in range(n_layers)}
    with torch.no_grad():
        corrupted_logits = ctx.runner.timed(lambda: ctx.bridge(corrupted))
    clean_value, corrupted_value = float(measure(clean_logits).mean()), float(measure(corrupted_logits).mean())
    require_effect(f"the corruption {corruption!r}", metric, clean_value, corrupted_value)
    return corrupted, clean_cache, measure, clean_value, corrupted_value


def require_effect(what: str, metric: str, behaving: float, not_behaving: float) -> None:
    """ProbeInputError unless the behaviour is there to restore: ``MIN_EFFECT`` between the two runs."""
    if not abs(behaving - not_behaving) >= MIN_EFFECT[metric]:
        raise ProbeInputError(f"{what} moves {metric!r} from {behaving:.4g} to {not_behaving:.4g}, less than "
                              f"{MIN_EFFECT[metric]}: no behaviour to restore, a recovery would be noise over noise")


def recovery(value: float, clean: float, corrupted: float) -> float:
    return (value - corrupted) / (clean - corrupted)


ACROSS_INPUTS = ("lowest", "highest")


@probe("patching_recovery", hooks=HOOKS)
def patching_recovery(
    ctx: ProbeContext, *, head: str | None = None, heads: list[str] | None = None, layer: int | None = None,
    position: int | None = None, restore: str = "z", corruption: str, corruption_seed: int = 1,
    corrupt_position: int | None = None, corrupt_token: str | None = None, metric: str, answers: list | None = None,
    across_inputs: str = "lowest",
) -> Measurement:
    """The share of the metric restored when ``head`` (or ``heads``, together) get their clean ``restore``
    activation, or, for ``resid_pre`` and ``mlp_out``, ``layer``'s stream at ``position`` (every position
    when it is not given). An input of several lengths (``seq_len = [30, 23]``) is measured on each and
    the ``across_inputs`` one is reported: ``lowest`` for a claim that the restored part brings the
    behaviour back (a head copying by position restores it at one lag, not at another), ``highest`` for
    a claim that it brings back nothing."""
    if across_inputs not in ACROSS_INPUTS:
        raise ProbeInputError(f"across_inputs {across_inputs!r} is not known. Valid: {', '.join(ACROSS_INPUTS)}.")
    details = {"restore": restore, "corruption": corruption, "corruption_seed": corruption_seed, "metric": metric}
    cfg = ctx.model.cfg
    parsed: list[tuple[int, int]] = []
    if restore in RESTORED_STREAMS:
        if head is not None or heads is not None:
            raise ProbeInputError(f"restore {restore!r} takes a layer (and a position), not heads")
        if layer is None:
            raise ProbeInputError(f"restore {restore!r} needs the layer whose stream is restored")
        require_in_range("layer", layer, 0, cfg.n_layers - 1)
        if position is not None and (not isinstance(position, int) or isinstance(position, bool)):
            raise ProbeInputError(f"position must be a whole number (negative counts from the end), got {position!r}")
        details.update(layer=layer, position=position)
    else:
        if (head is None) == (heads is None):
            raise ProbeInputError("give one head (head = \"9.9\") or a list restored together (heads = [...]), not both or neither")
        heads = [head] if head is not None else heads
        if not isinstance(heads, list) or not heads or not all(isinstance(h, str) for h in heads):
            raise ProbeInputError(f"heads must be a non-empty list of 'LAYER.HEAD', got {heads!r}")
        parsed = [parse_head(h, cfg.n_layers, cfg.n_heads) for h in heads]
        details["heads"] = heads
    if corruption == "replace_token":
        details.update(corrupt_position=corrupt_position, corrupt_token=corrupt_token)
    per_input = {}
    for variant in ctx.each_input():
        corrupted, clean_cache, measure, clean, corrupted_value = prepare(
            variant, restore, corruption, corruption_seed, metric, answers, corrupt_position, corrupt_token)
        if restore in RESTORED_STREAMS:
            if position is not None and not -corrupted.shape[1] <= position < corrupted.shape[1]:
                raise ProbeInputError(f"position {position} is outside the input's {corrupted.shape[1]} tokens")
            hooks = stream_hooks(restore, layer, position, clean_cache[layer])
            with torch.no_grad():
                logits = variant.runner.timed(lambda: variant.bridge.run_with_hooks(corrupted, fwd_hooks=hooks))
            patched = float(measure(logits).mean())
        else:
            [patched] = patched_metrics(variant, corrupted, restore, [parsed], clean_cache, measure, 1)
        per_input[variant.input.label] = {"clean": round(clean, 4), "corrupted": round(corrupted_value, 4),
                                           "patched": round(patched, 4),
                                           "recovery": recovery(patched, clean, corrupted_value)}
    values = [row["recovery"] for row in per_input.values()]
    if len(per_input) == 1:
        details.update({k: v for k, v in next(iter(per_input.values())).items() if k != "recovery"})
    else:
        details.update(across_inputs=across_inputs,
                       per_input={label: {**row, "recovery": round(row["recovery"], 4)} for label, row in per_input.items()})
    return Measurement(value=worst_of(values, lowest=across_inputs == "lowest"), details=details)


SWEEP_AGGREGATES = ("claimed_min", "claimed_max", "unclaimed_max_abs", "claimed_sum")


@probe("patching_sweep", hooks=HOOKS)
def patching_sweep(
    ctx: ProbeContext, *, heads: list[str], aggregate: str, restore: str = "z", corruption: str, corruption_seed: int = 1,
    metric: str, answers: list | None = None, patches_per_pass: int = 12,
) -> Measurement:
    """Every head restored on its own (a layer x head table of recoveries, batched ``patches_per_pass``
    patched copies per forward pass), read at the claimed ``heads``: ``claimed_min`` (the weakest claimed
    head), ``claimed_max``, ``claimed_sum``, or ``unclaimed_max_abs`` (the largest effect of any other head)."""
    if aggregate not in SWEEP_AGGREGATES:
        raise ProbeInputError(f"aggregate {aggregate!r} is not known. Valid: {', '.join(SWEEP_AGGREGATES)}.")
    if not isinstance(heads, list) or not heads:
        raise ProbeInputError(f"heads must be a non-empty list of 'LAYER.HEAD', got {heads!r}")
    require_in_range("patches_per_pass", patches_per_pass, 1)
    if restore not in RESTORED:
        raise ProbeInputError(f"a sweep restores heads: restore is one of {', '.join(RESTORED)}, got {restore!r}")
    cfg = ctx.model.cfg
    claimed = {parse_head(head, cfg.n_layers, cfg.n_heads) for head in heads}
    every = [(layer, head) for layer in range(cfg.n_layers) for head in range(cfg.n_heads)]

    def sweep_on(variant: ProbeContext) -> tuple[list[list[float]], float, float]:
        def sweep() -> tuple[list[list[float]], float, float]:
            corrupted, clean_cache, measure, clean, corrupted_value = prepare(
                variant, restore, corruption, corruption_seed, metric, answers)
            patched = patched_metrics(variant, corrupted, restore, [[h] for h in every], clean_cache, measure, patches_per_pass)
            table = [[0.0] * cfg.n_heads for _ in range(cfg.n_layers)]
            for (layer, head), value in zip(every, patched, strict=True):
                table[layer][head] = recovery(value, clean, corrupted_value)
            return table, clean, corrupted_value

        # every claim reading the same sweep of the same input shares it (measured once)
        key = f"patching_sweep {restore} {corruption} {corruption_seed} {metric} {answers}"
        return variant.runner.derived(variant._require_input(), key, sweep)

    def read(table: list[list[float]]) -> tuple[float, str | None]:
        mine = [table[layer][head] for layer, head in sorted(claimed)]
        others = [(abs(table[layer][head]), head_name(layer, head)) for layer, head in every if (layer, head) not in claimed]
        value = {"claimed_min": min(mine), "claimed_max": max(mine), "claimed_sum": sum(mine),
                 "unclaimed_max_abs": max(others)[0] if others else 0.0}[aggregate]
        return value, max(others)[1] if others else None

    sweeps = {variant.input.label: sweep_on(variant) for variant in ctx.each_input()}
    read_out = {label: read(table) for label, (table, _, _) in sweeps.items()}
    # several lengths: the claim must hold on each (the weakest claimed head, the strongest other one)
    value = worst_of([v for v, _ in read_out.values()], lowest=aggregate != "unclaimed_max_abs")
    table, clean, corrupted_value = next(iter(sweeps.values()))  # the heatmap draws the first input's sweep
    details = {"kind": f"patching {restore} ({metric})", "claimed_heads": heads, "aggregate": aggregate,
               "strongest_unclaimed": next(iter(read_out.values()))[1], "restore": restore, "corruption": corruption,
               "corruption_seed": corruption_seed, "metric": metric, "clean": round(clean, 4),
               "corrupted": round(corrupted_value, 4), "patches_per_pass": patches_per_pass,
               "forward_calls": len(sweeps) * (2 + math.ceil(len(every) / patches_per_pass)),
               "forward_pass_equivalents": len(sweeps) * (2 + len(every)),
               "all_heads": [[round(v, 4) for v in row] for row in table]}
    if len(sweeps) > 1:
        details["per_input"] = {label: {"value": round(v, 4), "strongest_unclaimed": strongest}
                                for label, (v, strongest) in read_out.items()}
    return Measurement(value=value if math.isfinite(value) else float("nan"), details=details)


BACKUP_HOOKS = ("attn.hook_z", "ln_final.hook_scale")


def head_logit_differences(ctx: ProbeContext, cache, pairs: Int[Tensor, "prompt 2"], last: list[int]) -> Float[Tensor, "layer head"]:
    """Every head's direct logit attribution to logit(correct) - logit(incorrect) at each prompt's last
    position (its output through the final LayerNorm's scale of the same run, processed weights: the
    LayerNorm folded, b_O left out), mean over prompts: the Exploratory demo's cell 47."""
    bridge, cfg = ctx.bridge, ctx.model.cfg
    rows = torch.arange(len(last))
    positions = torch.tensor(last)
    directions = (bridge.W_U[:, pairs[:, 0]] - bridge.W_U[:, pairs[:, 1]]).double()  # [d_model, prompt]
    scale = cache["ln_final.hook_scale"][rows, positions].double()  # [prompt, 1]
    table = torch.zeros(cfg.n_layers, cfg.n_heads, dtype=torch.float64)
    for layer in range(cfg.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"][rows, positions].double()  # [prompt, head, d_head]
        out = torch.einsum("phd,hdm->phm", z, bridge.W_O[layer].double()) / scale[:, :, None]
        table[layer] = torch.einsum("phm,mp->ph", out, directions).mean(0)
    return table


@probe("ioi_backup_attribution_change", hooks=BACKUP_HOOKS)
def ioi_backup_attribution_change(ctx: ProbeContext, *, head: str, ablate: str, answers: list) -> Measurement:
    """How much ``head``'s direct logit attribution changes when ``ablate``'s output is zeroed at the last
    position (the Exploratory demo's cells 105/107: the backup name movers take over when 9.9 is gone)."""
    processed = ctx.with_weights("processed")
    cfg = processed.model.cfg
    read, removed = parse_head(head, cfg.n_layers, cfg.n_heads), parse_head(ablate, cfg.n_layers, cfg.n_heads)
    tokens = processed.tokens()
    pairs = answer_ids(processed, answers, tokens.shape[0])
    last = [stop - 1 for _, stop in processed.spans()]
    _, cache = processed.forward()

    def zero_last(z: Tensor, hook=None) -> Tensor:
        z = z.clone()
        z[torch.arange(len(last)), torch.tensor(last), removed[1]] = 0.0
        return z

    names = {"ln_final.hook_scale", *(f"blocks.{layer}.attn.hook_z" for layer in range(cfg.n_layers))}
    with processed.bridge.hooks(fwd_hooks=[(f"blocks.{removed[0]}.attn.hook_z", zero_last)]):
        _, ablated = processed.runner.timed(lambda: processed.bridge.run_with_cache(tokens, names_filter=lambda n: n in names))
    with torch.no_grad():
        before = head_logit_differences(processed, cache, pairs, last)
        after = head_logit_differences(processed, ablated, pairs, last)
    change = float(after[read] - before[read])
    return Measurement(value=change, details={"head": head, "ablated": ablate, "before": round(float(before[read]), 4),
                                              "after": round(float(after[read]), 4), "weights": "processed"})
