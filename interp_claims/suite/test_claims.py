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

    @classmethod
    def dirname(cls, *, test_location) -> str:
        """A user's snapshot claims keep their snapshots in the user's repository (see
        ``interp_claims.plugin.snapshot_folder``), not inside the installed package."""
        from interp_claims.plugin import snapshot_folder

        case = getattr(getattr(test_location.item, "callspec", None), "params", {}).get("snapshot_case")
        folder = snapshot_folder(test_location.item.config, case.claim) if case is not None else None
        return str(folder) if folder is not None else super().dirname(test_location=test_location)


def measure(claims_session, case, reference: bool = False):
    """The claim's measurement (on the case's reference combination with ``reference``); a bad
    input or non-finite logits fail the claim with one clear line."""
    from interp_claims.context import NonFiniteLogits
    from interp_claims.measurement import ProbeInputError

    claim = case.claim
    try:
        if reference:
            return claims_session.reference(claim, claims_session.combos[case.reference])
        return claims_session.measure(claim, claims_session.combos[case.combo])
    except (ProbeInputError, NonFiniteLogits) as error:
        pytest.fail(f"claim {claim.id} ({claim.file} #{claim.row}): {type(error).__name__}: {error}", pytrace=False)


def _explain(claim, measurement, verdict_text: str) -> str:
    details = ", ".join(f"{k}={v}" for k, v in measurement.details.items())
    return (
        f"claim {claim.id} ({claim.file} #{claim.row}): measured {measurement.value!r}, "
        f"expected {verdict_text}\n  source: {claim.source}\n  details: {details}"
    )


def record(claims_session, node, case, measurement, passed: bool, threshold: str, margin, reason: str | None = None) -> None:
    """The claim's result, kept by the session and written as JUnit properties of the test (through
    ``user_properties``, as ``record_property`` does, without its warning under junit_family=xunit2:
    CI readers such as GitHub's and GitLab's show properties in either family)."""
    result = claims_session.record(case.claim, measurement, passed, threshold, margin, claims_session.combos[case.combo], reason)
    properties = [(key, result[key]) for key in ("value", "threshold", "margin", "source", "behaviour", "kind", "combination", "outcome")]
    properties += [("reason", reason)] if reason else []
    if result["published"] is not None:
        properties += [("published", result["published"]["value"]), ("published_source", result["published"]["source"])]
    node.user_properties.extend(properties)


def measure_across(claims_session, case):
    """A cross-combination claim: the largest |difference| between this combination's value and
    the reference combination's, with the looser dtype of the two and the reference's magnitude."""
    import torch

    from interp_claims.measurement import Measurement

    reference_combo = claims_session.combos[case.reference]
    reference = measure(claims_session, case, reference=True)
    here = measure(claims_session, case)
    ours, theirs = (torch.as_tensor(m.value, dtype=torch.float64).cpu() for m in (here, reference))
    if ours.shape != theirs.shape:
        pytest.fail(f"claim {case.claim.id}: values of shape {list(ours.shape)} and {list(theirs.shape)} cannot be compared", pytrace=False)
    difference = float((ours - theirs).abs().max()) if ours.numel() else 0.0
    if not (torch.isfinite(ours).all() and torch.isfinite(theirs).all()):
        difference = float("inf")
    dtypes = (claims_session.combos[case.combo].dtype, reference_combo.dtype)
    looser = max(dtypes, key=lambda dtype: torch.finfo(dtype).eps)
    magnitude = reference.details.get("magnitude")
    details = {"reference": reference_combo.label, "compared_in": str(looser).removeprefix("torch."),
               "magnitude": magnitude, "elements": ours.numel()}
    return Measurement(value=difference, details=details), looser, magnitude


def measure_over_checkpoints(claims_session, case):
    """A claim over training checkpoints: the value ``at`` picks from its value at each checkpoint;
    the series is kept for the report's plot, the last checkpoint's pictures too."""
    from interp_claims.checkpoints import at_checkpoints
    from interp_claims.measurement import Measurement, ProbeInputError

    claim = case.claim
    try:
        series = claims_session.over_checkpoints(claim, claims_session.combos[case.combo])
    except ProbeInputError as error:
        pytest.fail(f"claim {claim.id} ({claim.file} #{claim.row}): {error}", pytrace=False)
    values = [measurement.value for _, measurement in series]
    last = series[-1][1]
    details = {"at": claim.at, "series": [[name, m.value] for name, m in series],
               **{f"last: {key}": value for key, value in last.details.items() if key != "all_heads"}}
    return Measurement(value=at_checkpoints(values, claim.at, claim.expect["op"]), details=details, pictures=last.pictures)


def measure_case(claims_session, case):
    """(measurement, dtype and magnitude to check it with) of any claim: plain, across, over checkpoints."""
    if case.reference is not None:
        return measure_across(claims_session, case)
    dtype = claims_session.combos[case.combo].dtype
    if case.claim.checkpoints is not None:
        return measure_over_checkpoints(claims_session, case), dtype, None
    measurement = measure(claims_session, case)
    return measurement, dtype, measurement.details.get("magnitude")


def test_claim(case, claims_session, request):
    from interp_claims.claims import check

    measurement, dtype, magnitude = measure_case(claims_session, case)
    verdict = check(case.claim, measurement.value, dtype, magnitude)
    record(claims_session, request.node, case, measurement, verdict.passed, verdict.threshold, verdict.margin)
    assert verdict.passed, _explain(case.claim, measurement, verdict.threshold)


def test_snapshot_claim(snapshot_case, claims_session, snapshot, request):
    measurement, _, _ = measure_case(claims_session, snapshot_case)
    try:
        assert measurement.value == snapshot.use_extension(PerFamilySnapshot)
    except AssertionError as error:
        reason = ("no snapshot stored for this model family: write it with --snapshot-update" if "does not exist" in str(error)
                  else "differs from the stored snapshot (pytest's output shows the difference)")
        record(claims_session, request.node, snapshot_case, measurement, False, "matches snapshot", None, reason)
        raise
    record(claims_session, request.node, snapshot_case, measurement, True, "matches snapshot", None)
