"""Indirect object identification (Wang et al. 2022, arXiv 2211.00593) on generated prompts.

"When Mary and John went to the store, John gave a drink to" -> " Mary" (the indirect
object, IO), not " John" (the subject, S). The logit difference is logit(IO) - logit(S)
at the last position; accuracy is the fraction of prompts where it is positive.
"""

import random

import torch

from interp_claims.context import InputSpec, ProbeContext
from probes.distribution import real_positions
from interp_claims.measurement import Measurement, ProbeInputError, require_in_range
from interp_claims.registry import probe

# BABA templates of the IOI paper's dataset (Appendix; ioi_dataset.py of its code).
TEMPLATES = (
    "When{A} and{B} went to the store,{B} gave a drink to",
    "When{A} and{B} went to the park,{B} gave a ring to",
    "Then,{A} and{B} were working at the office.{B} decided to give a kiss to",
    "Then,{A} and{B} had a long argument, and afterwards{B} said to",
    "After{A} and{B} went to the garden,{B} gave a bone to",
    "While{A} and{B} were commuting to the school,{B} gave a basketball to",
    "Friends{A} and{B} found a necklace at the house.{B} gave it to",
    "The local big{A} and{B} went to the hospital.{B} gave a snack to",
)
NAMES = (" Mary", " John", " Tom", " James", " Dan", " Sid", " Martin", " Amy", " Lisa", " Michael",
         " Alex", " Sarah", " Kate", " Paul", " Anna", " David", " Emma", " Jack", " Laura", " Mark")


def ioi_prompts(ctx: ProbeContext, count: int, seed: int) -> list[tuple[str, int, int]]:
    """``count`` prompts as (text, IO id, S id); names are the single-token ones of NAMES."""
    require_in_range("count", count, 1)
    require_in_range("seed", seed, 0)
    tokenizer = ctx.bridge.tokenizer
    single = [(n, ids[0]) for n in NAMES if len(ids := tokenizer.encode(n, add_special_tokens=False)) == 1]
    if len(single) < 2:
        raise ProbeInputError("fewer than two single-token names in this tokenizer: IOI prompts need two")
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        (io, io_id), (s, s_id) = rng.sample(single, 2)
        prompts.append((rng.choice(TEMPLATES).format(A=io, B=s), io_id, s_id))
    return prompts


def ioi_logit_differences(ctx: ProbeContext, count: int, seed: int) -> torch.Tensor:
    prompts = ioi_prompts(ctx, count, seed)
    spec = InputSpec(texts=tuple(text for text, _, _ in prompts))
    logits, _ = ctx.runner.run(spec)
    child = ProbeContext(ctx.model, ctx.runner, spec)
    last = torch.tensor(real_positions(child, ctx.runner.tokens(spec)), device=logits.device) - 1
    final = logits[torch.arange(len(prompts), device=logits.device), last].float()
    io = torch.tensor([i for _, i, _ in prompts], device=final.device)
    s = torch.tensor([j for _, _, j in prompts], device=final.device)
    return (final.gather(-1, io[:, None]) - final.gather(-1, s[:, None]))[:, 0].cpu()


@probe("ioi_logit_difference", hooks=None)
def ioi_logit_difference(ctx: ProbeContext, *, count: int = 100, seed: int = 0) -> Measurement:
    diffs = ioi_logit_differences(ctx, count, seed)
    return Measurement(value=float(diffs.mean()), details={"prompts": count, "min": float(diffs.min())})


@probe("ioi_accuracy", hooks=None)
def ioi_accuracy(ctx: ProbeContext, *, count: int = 100, seed: int = 0) -> Measurement:
    diffs = ioi_logit_differences(ctx, count, seed)
    return Measurement(value=float((diffs > 0).float().mean()), details={"prompts": count})
