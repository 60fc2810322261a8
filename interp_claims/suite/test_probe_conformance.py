"""Generic conformance tests that every registered probe gets, with no code of its own.

Each probe is exercised through the first claim that uses it on the model family (a
probe without a claim fails here: add one; a probe whose claims are all written for other
families is deselected, as those claims are). A probe must return plain, JSON-ready values; measure the same
thing twice, from two independent forward passes; leave the model untouched (weights, device, dtype); and refuse bad
input with ProbeInputError, not a traceback from inside torch.
"""

import json
import math
from dataclasses import replace

import pytest
import torch

from interp_claims.inputs import InputSpec
from interp_claims.measurement import ProbeInputError
from interp_claims.registry import PROBES  # built-in, entry-point and `claims_probes` probes: the plugin loaded them


# The probe's conduct is tested here, not the claim: generated inputs (IOI prompts, invented
# names) are cut to SMALL_COUNT and random-token batches to SMALL_BATCH, to keep this quick.
SMALL_COUNT = 20
SMALL_BATCH = 2


def small_input(spec: InputSpec | None) -> InputSpec | None:
    if spec is None or spec.repeated_random is None or spec.repeated_random[1] <= SMALL_BATCH:
        return spec
    shrink = lambda s: replace(s, repeated_random=(s.repeated_random[0], SMALL_BATCH, s.repeated_random[2]))  # noqa: E731
    return replace(shrink(spec), alternatives=tuple(shrink(a) for a in spec.alternatives))


def example_claim(claims_run, name: str):
    claims = [c for c in claims_run.claims if c.probe == name]
    assert claims, f"probe {name!r} is registered but no claim uses it: add one to a claim file"
    applicable = [c for c in claims if c.applies_to(claims_run.spec.family)]
    claim = (applicable or claims)[0]
    if isinstance(claim.params.get("count"), int) and claim.params["count"] > SMALL_COUNT:
        claim = replace(claim, params={**claim.params, "count": SMALL_COUNT})
    return replace(claim, input=small_input(claim.input))


def fingerprint(bridge) -> tuple:
    parameters = list(bridge.parameters())
    total = sum(float(p.detach().double().sum()) for p in parameters)
    return total, parameters[0].device, parameters[0].dtype


@pytest.mark.parametrize("name", sorted(PROBES))
def test_probe_is_deterministic_json_ready_and_read_only(name, claims_run, claims_model):
    claim = example_claim(claims_run, name)
    before = fingerprint(claims_model.bridge)
    first = claims_run.measure(claim)
    with claims_run.primary.measurer.fresh_passes():  # the second measurement runs its own forward passes
        second = claims_run.measure(claim)
    assert fingerprint(claims_model.bridge) == before, f"probe {name!r} changed the model"
    encoded = json.dumps(first.value)
    json.dumps(first.details)
    assert encoded == json.dumps(second.value), f"probe {name!r} is not deterministic"
    if isinstance(first.value, float):
        assert math.isfinite(first.value), f"probe {name!r} returned {first.value}"


def bad_variants(claim):
    spec = PROBES[claim.probe]
    if spec.needs_forward:
        yield replace(claim, input=InputSpec(texts=("",)))
    for key, value in claim.params.items():
        if isinstance(value, str):
            yield replace(claim, params={**claim.params, key: ""})
        elif isinstance(value, list):
            yield replace(claim, params={**claim.params, key: []})
        elif isinstance(value, int) and not isinstance(value, bool):
            yield replace(claim, params={**claim.params, key: -1})


@pytest.mark.parametrize("name", sorted(name for name, spec in PROBES.items() if spec.params or spec.needs_forward))
def test_probe_refuses_bad_input_clearly(name, claims_run, claims_model):
    claim = example_claim(claims_run, name)
    variants = list(bad_variants(claim))
    assert variants
    for bad in variants:
        with pytest.raises(ProbeInputError):
            claims_run.measure(bad)


def test_empty_and_too_long_prompts_name_the_problem(claims_run, claims_model):
    claim = example_claim(claims_run, "probability_sum_deviation")
    with pytest.raises(ProbeInputError, match="empty prompt ''"):
        claims_run.measure(replace(claim, input=InputSpec(texts=("",))))
    tokenizer, n = claims_model.bridge.tokenizer, claims_model.cfg.n_ctx + 5
    if set(tokenizer.encode("Hello", add_special_tokens=False)) <= {tokenizer.unk_token_id}:  # no English words
        with pytest.raises(ProbeInputError, match="encodes to no known tokens with this model's tokenizer"):
            claims_run.measure(replace(claim, input=InputSpec(texts=("Hello",))))
    candidates = (" hello" * n, tokenizer.decode([claims_model.cfg.d_vocab // 2] * n))  # English; or the model's own words
    too_long = next(text for text in candidates
                    if len([i for i in tokenizer.encode(text, add_special_tokens=False) if i != tokenizer.unk_token_id]) >= n)
    with pytest.raises(ProbeInputError, match=rf"longer than the model's context of {claims_model.cfg.n_ctx} tokens"):
        claims_run.measure(replace(claim, input=InputSpec(texts=(too_long,))))


def test_non_finite_logits_are_a_clear_error():
    from interp_claims.context import NonFiniteLogits, check_finite_logits

    logits = torch.zeros(1, 3, 5)
    logits[0, 1, 2] = float("nan")
    with pytest.raises(NonFiniteLogits, match=r"NaN or inf logits at 1 entries, \(batch, position\) \[\[0, 1\]\]"):
        check_finite_logits(logits, InputSpec(texts=("x",)))
