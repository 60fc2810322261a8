"""Indirect object identification (Wang et al. 2022, arXiv 2211.00593) on the paper's prompts.

"Then, John and Mary went to the store. John gave a drink to" -> " Mary" (the indirect object,
IO), not " John" (the subject, S). The templates, names, places and objects are the paper's
(``fixtures/ioi.toml``); its templates are named as the paper names them: BABA when the subject
comes first in the first clause ("Then, [B] and [A] ... [B] gave ... to"), ABBA when the IO does.
Names are the paper's that are one GPT-2 token with a leading space, as its code requires.

The logit difference is logit(IO) - logit(S) at the last position; accuracy is the fraction of
prompts where it is positive. Prompts get a BOS token, as TransformerLens's IOI evaluation does.
"""

import random
import tomllib

import torch

from interp_claims.resources import FIXTURES_DIR
from interp_claims.context import ProbeContext
from interp_claims.inputs import InputSpec
from interp_claims.measurement import Measurement, ProbeInputError, require_in_range
from interp_claims.registry import probe
from interp_claims.probes.heads import parse_head

IOI_DATA = FIXTURES_DIR / "ioi.toml"
TEMPLATE_SETS = ("ABBA", "BABA", "both")


def paper_data() -> dict:
    return tomllib.loads(IOI_DATA.read_text())


def abba(template: str) -> str:
    """The paper's ABBA form of a BABA template: the first clause's two names swap places."""
    first_b, first_a = template.index("[B]"), template.index("[A]")
    swapped = template[:first_b] + "[A]" + template[first_b + 3 : first_a] + "[B]" + template[first_a + 3 :]
    return swapped


def templates(which: str) -> list[tuple[str, str]]:
    """(name, template) pairs: "ABBA", "BABA" or "both"."""
    if which not in TEMPLATE_SETS:
        raise ProbeInputError(f"templates {which!r} is not known. Valid: {', '.join(TEMPLATE_SETS)}.")
    baba = paper_data()["baba_templates"]
    sets = {"BABA": [("BABA", t) for t in baba], "ABBA": [("ABBA", abba(t)) for t in baba]}
    return sets["ABBA"] + sets["BABA"] if which == "both" else sets[which]


def ioi_prompts(ctx: ProbeContext, count: int, seed: int, which: str = "both") -> list[tuple[str, int, int]]:
    """``count`` prompts as (text, IO id, S id), drawn with a seeded generator."""
    require_in_range("count", count, 1)
    require_in_range("seed", seed, 0)
    chosen = templates(which)
    data = paper_data()
    tokenizer = ctx.bridge.tokenizer
    single = [(f" {n}", ids[0]) for n in data["names"] if len(ids := tokenizer.encode(f" {n}", add_special_tokens=False)) == 1]
    if len(single) < 2:
        raise ProbeInputError("fewer than two single-token names in this tokenizer: IOI prompts need two")
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        _, template = rng.choice(chosen)
        (io, io_id), (s, s_id) = rng.sample(single, 2)
        text = template.replace("[PLACE]", rng.choice(data["places"])).replace("[OBJECT]", rng.choice(data["objects"]))
        text = text.removesuffix(" [A]").replace(" [A]", io).replace(" [B]", s).replace("[A]", io.strip()).replace("[B]", s.strip())
        prompts.append((text, io_id, s_id))
    return prompts


def ioi_logit_differences(ctx: ProbeContext, count: int, seed: int, which: str) -> tuple[list[tuple[str, int, int]], torch.Tensor]:
    """(prompts, logit(IO) - logit(S) at each prompt's last position)."""
    prompts = ioi_prompts(ctx, count, seed, which)
    spec = InputSpec(texts=tuple(text for text, _, _ in prompts))
    logits, _ = ctx.runner.run(spec)
    last = torch.tensor([stop - 1 for _, stop in ctx.runner.spans(spec)], device=logits.device)
    final = logits[torch.arange(len(prompts), device=logits.device), last].float()
    io = torch.tensor([i for _, i, _ in prompts], device=final.device)
    s = torch.tensor([j for _, _, j in prompts], device=final.device)
    return prompts, (final.gather(-1, io[:, None]) - final.gather(-1, s[:, None]))[:, 0].cpu()


@probe("ioi_logit_difference", hooks=None)
def ioi_logit_difference(ctx: ProbeContext, *, count: int = 100, seed: int = 0, templates: str = "both") -> Measurement:
    _, diffs = ioi_logit_differences(ctx, count, seed, templates)
    return Measurement(value=float(diffs.mean()), details={"prompts": count, "templates": templates, "min": float(diffs.min())})


@probe("ioi_accuracy", hooks=None)
def ioi_accuracy(ctx: ProbeContext, *, count: int = 100, seed: int = 0, templates: str = "both") -> Measurement:
    prompts, diffs = ioi_logit_differences(ctx, count, seed, templates)
    misses = [text for (text, _, _), diff in zip(prompts, diffs.tolist(), strict=True) if diff <= 0]
    return Measurement(value=float((diffs > 0).float().mean()),
                       details={"prompts": count, "templates": templates, "misses": misses[:10]})


@probe("ioi_s2_attention_to_s1", hooks=None)
def ioi_s2_attention_to_s1(ctx: ProbeContext, *, head: str, count: int = 100, seed: int = 0, templates: str = "BABA") -> Measurement:
    """A head's mean attention from the subject's second occurrence (S2) to its first (S1) on IOI
    prompts: what Wang et al. 2022 call a duplicate-token head does on names (their Figure 2)."""
    layer, index = parse_head(head, ctx.model.cfg.n_layers, ctx.model.cfg.n_heads)
    prompts = ioi_prompts(ctx, count, seed, templates)
    spec = InputSpec(texts=tuple(text for text, _, _ in prompts))
    _, cache = ctx.runner.run(spec, ("attn.hook_pattern",))
    tokens = ctx.runner.tokens(spec)
    pattern = cache[f"blocks.{layer}.attn.hook_pattern"][:, index].float()
    values, chance = [], []
    for row, (_, _, s_id) in enumerate(prompts):
        positions = (tokens[row] == s_id).nonzero()[:, 0].tolist()
        if len(positions) < 2:
            raise ProbeInputError(f"prompt {row} names its subject {len(positions)} time(s): S1 and S2 are needed")
        s1, s2 = positions[:2]
        values.append(float(pattern[row, s2, s1]))
        chance.append(1.0 / (s2 + 1))
    return Measurement(value=sum(values) / len(values),
                       details={"prompts": count, "templates": templates, "uniform_attention": round(sum(chance) / len(chance), 4),
                                "lowest": round(min(values), 4)})
