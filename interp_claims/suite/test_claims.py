"""Every claim of the claim files on every combination of the matrix, as one parametrized test
each (ids = claim ids, with ``@model/dtype/device`` when the matrix has several combinations).

The cases come from ``interp_claims.plugin.pytest_generate_tests``; claims written for other
model families are deselected. Each claim's value, threshold, margin and source are JUnit XML
properties (``--junitxml``), so CI pages show the evidence.
"""

import re

import pytest
from syrupy.extensions.amber import AmberSnapshotExtension


class PerFamilySnapshot(AmberSnapshotExtension):
    """One snapshot per model family, whatever dtype or device measured it: the combination
    (``#model/dtype/device`` in a matrix's test id) is not part of the snapshot's name."""

    @classmethod
    def get_snapshot_name(cls, *, test_location, index=0) -> str:
        return re.sub(r"#[^\]]*\]", "]", super().get_snapshot_name(test_location=test_location, index=index))


def measure(claims_session, case):
    """The claim's measurement; a bad input or non-finite logits fail the claim with one clear line."""
    from interp_claims.context import NonFiniteLogits
    from interp_claims.measurement import ProbeInputError

    claim = case.claim
    try:
        return claims_session.measure(claim, claims_session.combos[case.combo])
    except (ProbeInputError, NonFiniteLogits) as error:
        pytest.fail(f"claim {claim.id} ({claim.file} #{claim.row}): {type(error).__name__}: {error}", pytrace=False)


def _explain(claim, measurement, verdict_text: str) -> str:
    details = ", ".join(f"{k}={v}" for k, v in measurement.details.items())
    return (
        f"claim {claim.id} ({claim.file} #{claim.row}): measured {measurement.value!r}, "
        f"expected {verdict_text}\n  source: {claim.source}\n  details: {details}"
    )


def record(claims_session, record_property, case, measurement, passed: bool, threshold: str, margin) -> None:
    result = claims_session.record(case.claim, measurement, passed, threshold, margin, claims_session.combos[case.combo])
    for key in ("value", "threshold", "margin", "source", "behaviour", "kind", "combination"):
        record_property(key, result[key])


def test_claim(case, claims_session, record_property):
    from interp_claims.claims import check

    measurement = measure(claims_session, case)
    verdict = check(case.claim, measurement.value, claims_session.combos[case.combo].dtype)
    record(claims_session, record_property, case, measurement, verdict.passed, verdict.threshold, verdict.margin)
    assert verdict.passed, _explain(case.claim, measurement, verdict.threshold)


def test_snapshot_claim(snapshot_case, claims_session, snapshot, record_property):
    measurement = measure(claims_session, snapshot_case)
    try:
        assert measurement.value == snapshot.use_extension(PerFamilySnapshot)
    except AssertionError:
        record(claims_session, record_property, snapshot_case, measurement, False, "matches snapshot", None)
        raise
    record(claims_session, record_property, snapshot_case, measurement, True, "matches snapshot", None)
