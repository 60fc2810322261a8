"""A measurer keeps each input's forward pass exactly as long as a planned claim still reads it."""

from dataclasses import replace

from interp_claims.inputs import InputSpec


def test_a_pass_is_freed_after_the_last_claim_that_reads_it(claims_run, claims_model):
    claims = {c.id: c for c in claims_run.claims}
    prompt = InputSpec(texts=("Hello world, this is a test.",))
    first = replace(claims["normalisation.notebook-prompt"], input=prompt)
    second = replace(claims["topk.notebook-prompt"], input=prompt)
    measurer = claims_run.primary.measurer.sharing_models()  # the booted model, none of its passes
    measurer.plan([first, second])
    measurer.measure(first)
    assert measurer.runners["raw"].held == [prompt.key]  # the second claim still reads it
    measurer.measure(second)
    assert measurer.runners["raw"].held == []  # nothing planned reads it any more
    assert measurer.forward_stats[0] == 1  # and it ran once
