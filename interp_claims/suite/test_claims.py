"""Every claim of the claim files, as one parametrized test each (ids = claim ids).

The cases come from ``interp_claims.plugin.pytest_generate_tests``; claims written for other
model families are deselected. Each claim's value, threshold, margin and source are JUnit XML
properties (``--junitxml``), so CI pages show the evidence.
"""

import pytest


def measure(claims_session, claim):
    """The claim's measurement; a bad input or non-finite logits fail the claim with one clear line."""
    from interp_claims.context import NonFiniteLogits
    from interp_claims.measurement import ProbeInputError

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


def record(claims_session, record_property, claim, measurement, passed: bool, threshold: str, margin) -> None:
    result = claims_session.record(claim, measurement, passed, threshold, margin)
    for key in ("value", "threshold", "margin", "source", "behaviour", "kind"):
        record_property(key, result[key])


def test_claim(claim, claims_session, record_property):
    from interp_claims.claims import check

    measurement = measure(claims_session, claim)
    verdict = check(claim, measurement.value, claims_session.dtype)
    record(claims_session, record_property, claim, measurement, verdict.passed, verdict.threshold, verdict.margin)
    assert verdict.passed, _explain(claim, measurement, verdict.threshold)


def test_snapshot_claim(snapshot_claim, claims_session, snapshot, record_property):
    claim, _family = snapshot_claim
    measurement = measure(claims_session, claim)
    try:
        assert measurement.value == snapshot
    except AssertionError:
        record(claims_session, record_property, claim, measurement, False, "matches snapshot", None)
        raise
    record(claims_session, record_property, claim, measurement, True, "matches snapshot", None)
