"""Every claim of the claim files, as one parametrized test each (ids = claim ids).

The cases come from conftest.py's ``pytest_generate_tests``; claims written for other
model families are deselected.
"""

import pytest


def measure(claims_session, claim):
    """The claim's measurement; a bad input or non-finite logits fail the claim with one clear line."""
    from probes.context import NonFiniteLogits
    from probes.measurement import ProbeInputError

    try:
        return claims_session.measure(claim)
    except (ProbeInputError, NonFiniteLogits) as error:
        pytest.fail(f"claim {claim.id} ({claim.file} #{claim.row}): {type(error).__name__}: {error}", pytrace=False)


def _explain(claim, measurement, verdict_text: str) -> str:
    details = ", ".join(f"{k}={v}" for k, v in measurement.details.items())
    return (
        f"claim {claim.id} ({claim.file} #{claim.row}): measured {measurement.value!r}, "
        f"expected {verdict_text}\n  source: {claim.source}\n  details: {details}"
    )


def test_claim(claim, claims_session):
    from probes.claims import check

    measurement = measure(claims_session, claim)
    verdict = check(claim, measurement.value, claims_session.dtype)
    claims_session.record(claim, measurement, verdict.passed, verdict.threshold, verdict.margin)
    assert verdict.passed, _explain(claim, measurement, verdict.threshold)


def test_snapshot_claim(snapshot_claim, claims_session, snapshot):
    claim, _family = snapshot_claim
    measurement = measure(claims_session, claim)
    try:
        assert measurement.value == snapshot
    except AssertionError:
        claims_session.record(claim, measurement, False, "matches snapshot", None)
        raise
    claims_session.record(claim, measurement, True, "matches snapshot", None)
