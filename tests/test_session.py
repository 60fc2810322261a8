"""A session keeps each input's forward pass exactly as long as a planned claim still reads it."""

from dataclasses import replace

from interp_claims.context import ForwardRunner, InputSpec
from interp_claims.session import ModelSession


def test_a_pass_is_freed_after_the_last_claim_that_reads_it(claims_session, claims_model):
    claims = {c.id: c for c in claims_session.claims}
    prompt = InputSpec(texts=("Hello world, this is a test.",))
    first = replace(claims["normalisation.notebook-prompt"], input=prompt)
    second = replace(claims["topk.notebook-prompt"], input=prompt)
    primary = claims_session.primary
    session = ModelSession(primary.spec, primary.run_device, primary.dtype, "raw", primary.source)
    session.models, session.runners = {"raw": claims_model}, {"raw": ForwardRunner(claims_model)}  # reuse the booted model
    session.plan([first, second])
    session.measure(first)
    assert session.runners["raw"].held == [prompt.key]  # the second claim still reads it
    session.measure(second)
    assert session.runners["raw"].held == []  # nothing planned reads it any more
    assert session.forward_stats[0] == 1  # and it ran once
