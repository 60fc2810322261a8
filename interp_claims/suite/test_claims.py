"""Every claim of the claim files on every combination of the matrix, as one parametrized test
each (ids = claim ids, with ``@model/dtype/device`` when the matrix has several combinations).

The cases come from the run engine (``interp_claims.run.ClaimRun.cases``, parametrized by the
plugin); claims written for other model families are deselected. A test here measures its case,
checks the value against the claim and records it: each claim's value, threshold, margin and source
are JUnit XML properties (``--junitxml``), so CI pages show the evidence.
"""

import re

from syrupy.extensions.amber import AmberSnapshotExtension

from interp_claims.claims import check
from interp_claims.plugin import snapshot_folder


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
        case = getattr(getattr(test_location.item, "callspec", None), "params", {}).get("snapshot_case")
        folder = snapshot_folder(test_location.item.config, case.claim) if case is not None else None
        return str(folder) if folder is not None else super().dirname(test_location=test_location)


def _explain(claim, measurement, verdict_text: str) -> str:
    details = ", ".join(f"{k}={v}" for k, v in measurement.details.items())
    return (
        f"claim {claim.id} ({claim.file} #{claim.row}): measured {measurement.value!r}, "
        f"expected {verdict_text}\n  source: {claim.source}\n  details: {details}"
    )


def record(claims_run, node, case, measurement, passed: bool, threshold: str, margin, reason: str | None = None) -> None:
    """The claim's result, kept by the run and written as JUnit properties of the test (through
    ``user_properties``, as ``record_property`` does, without its warning under junit_family=xunit2:
    CI readers such as GitHub's and GitLab's show properties in either family)."""
    result = claims_run.record(case, measurement, passed, threshold, margin, reason)
    properties = [(key, result[key]) for key in ("value", "threshold", "margin", "source", "behaviour", "kind", "combination", "outcome")]
    properties += [("reason", reason)] if reason else []
    if result["published"] is not None:
        properties += [("published", result["published"]["value"]), ("published_source", result["published"]["source"])]
    node.user_properties.extend(properties)


def test_claim(case, claims_run, request):
    measurement, dtype, magnitude = claims_run.measure_case(case)
    verdict = check(case.claim, measurement.value, dtype, magnitude)
    record(claims_run, request.node, case, measurement, verdict.passed, verdict.threshold, verdict.margin)
    assert verdict.passed, _explain(case.claim, measurement, verdict.threshold)


def test_snapshot_claim(snapshot_case, claims_run, snapshot, request):
    measurement, _, _ = claims_run.measure_case(snapshot_case)
    try:
        assert measurement.value == snapshot.use_extension(PerFamilySnapshot)
    except AssertionError as error:
        reason = ("no snapshot stored for this model family: write it with --snapshot-update" if "does not exist" in str(error)
                  else "differs from the stored snapshot (pytest's output shows the difference)")
        record(claims_run, request.node, snapshot_case, measurement, False, "matches snapshot", None, reason)
        raise
    record(claims_run, request.node, snapshot_case, measurement, True, "matches snapshot", None)
