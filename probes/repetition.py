"""In-context repetition: tokens of a name seen before are predicted on its next occurrence."""

import random

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp_claims.context import ProbeContext
from interp_claims.inputs import InputSpec
from interp_claims.measurement import Measurement, ProbeInputError, require_in_range
from interp_claims.registry import probe

REDUCTIONS = {"min": min, "max": max, "mean": lambda values: sum(values) / len(values)}
SYLLABLES = ("qu", "om", "at", "ar", "us", "lam", "an", "du", "zor", "vek", "ith", "ul", "mar", "tox", "eph", "ny", "rab", "ost")


def find_occurrences(tokens: Int[Tensor, " pos"], pattern: list[int]) -> list[int]:
    """Start positions of ``pattern`` in ``tokens``."""
    n = len(pattern)
    ids = tokens.tolist()
    return [i for i in range(len(ids) - n + 1) if ids[i : i + n] == pattern]


def continuation_probabilities(
    logits: Float[Tensor, "pos d_vocab"], tokens: Int[Tensor, " pos"], name_ids: list[int], occurrence: int
) -> list[float]:
    """p(piece j+1 | ...piece j) for pieces 2..n of the name's ``occurrence``-th appearance (1-based)."""
    scores, targets = continuation_logits(logits, tokens, name_ids, occurrence)
    return scores.softmax(dim=-1).gather(-1, targets[:, None])[:, 0].tolist()


def continuation_centred_logits(
    logits: Float[Tensor, "pos d_vocab"], tokens: Int[Tensor, " pos"], name_ids: list[int], occurrence: int
) -> list[float]:
    """The logit of piece j+1 minus the mean logit at its position, for pieces 2..n: unlike the
    probability it does not saturate, and a shift of every logit (which changes no probability)
    leaves it unchanged."""
    scores, targets = continuation_logits(logits, tokens, name_ids, occurrence)
    centred = scores - scores.mean(dim=-1, keepdim=True)
    return centred.gather(-1, targets[:, None])[:, 0].tolist()


def continuation_logits(
    logits: Float[Tensor, "pos d_vocab"], tokens: Int[Tensor, " pos"], name_ids: list[int], occurrence: int
) -> tuple[Float[Tensor, "piece d_vocab"], Int[Tensor, " piece"]]:
    """(float32 logits where pieces 2..n are predicted, their ids) at the ``occurrence``-th appearance."""
    starts = find_occurrences(tokens, name_ids)
    if len(name_ids) < 2:
        raise ProbeInputError(f"name ids {name_ids} form one token: there is no continuation to predict")
    if not 1 <= occurrence <= len(starts):
        raise ProbeInputError(f"occurrence {occurrence} asked, but the name appears {len(starts)} time(s) in the prompt")
    start = starts[occurrence - 1]
    scores = logits[start : start + len(name_ids) - 1].float()
    return scores, torch.tensor(name_ids[1:], device=scores.device)


def name_token_ids(ctx: ProbeContext, name: str) -> list[int]:
    if not name:
        raise ProbeInputError("empty name: give the name as it appears in the prompt, e.g. ' Quomatarus'")
    return ctx.bridge.tokenizer.encode(name, add_special_tokens=False)


@probe("name_continuation_probability", hooks=())
def name_continuation_probability(
    ctx: ProbeContext, *, name: str, occurrence: int, reduce: str = "min"
) -> Measurement:
    """Probability of the name's continuation pieces at its ``occurrence``-th appearance."""
    if reduce not in REDUCTIONS:
        raise ProbeInputError(f"reduce {reduce!r} is not known. Valid: {', '.join(REDUCTIONS)}.")
    logits, _ = ctx.forward()
    ids = name_token_ids(ctx, name)
    probs = continuation_probabilities(logits[0], ctx.tokens()[0], ids, occurrence)
    pieces = [ctx.bridge.tokenizer.decode([i]) for i in ids[1:]]
    return Measurement(
        value=REDUCTIONS[reduce](probs),
        details={"pieces": pieces, "probabilities": [round(p, 4) for p in probs], "reduce": reduce},
    )


def invented_names(count: int, seed: int) -> list[str]:
    """Deterministic invented names of 3 to 4 syllables, with a leading space, e.g. ' Zorithul'."""
    rng = random.Random(seed)
    names: list[str] = []
    while len(names) < count:
        name = " " + "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(3, 4))).capitalize()
        if name not in names:
            names.append(name)
    return names


@probe("repeated_name_failure_rate", hooks=None)
def repeated_name_failure_rate(
    ctx: ProbeContext,
    *,
    template: str,
    min_probability: float,
    occurrence: int = 2,
    count: int = 20,
    seed: int = 0,
) -> Measurement:
    """CheckList-style: the fraction of invented names whose continuation at ``occurrence``
    gets a (min) probability below ``min_probability``. ``template`` holds ``{name}``."""
    require_in_range("count", count, 1)
    require_in_range("seed", seed, 0)
    require_in_range("occurrence", occurrence, 1)
    if not 0 < min_probability <= 1:
        raise ProbeInputError(f"min_probability = {min_probability!r} is not a probability in (0, 1]")
    if "{name}" not in template:
        raise ProbeInputError(f"template {template[:60]!r}... has no {{name}} placeholder")
    names = [name for name in invented_names(count, seed) if len(name_token_ids(ctx, name)) >= 2]
    if not names:
        raise ProbeInputError("no invented name split into two or more tokens")
    spec = InputSpec(texts=tuple(template.replace("{name}", name) for name in names))
    logits, _ = ctx.runner.run(spec)  # one batched pass (right-padded) for every name
    tokens = ctx.runner.tokens(spec)
    worst, failures = {}, []
    for row, name in enumerate(names):
        ids = name_token_ids(ctx, name)
        p = min(continuation_probabilities(logits[row], tokens[row], ids, occurrence))
        worst[name] = round(p, 4)
        if p < min_probability:
            failures.append(name)
    return Measurement(
        value=len(failures) / len(worst),
        details={"names": len(worst), "failures": failures, "min_probability_per_name": worst},
    )
