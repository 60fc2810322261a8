"""`pytest -n 2` (pytest-xdist) gives the same verdicts and values, and a complete claims report:
the controller merges its workers' results. `--dist load` spreads the claims over both workers
(each loads the model), the hardest case for the merge; `--dist loadgroup` keeps them on one."""

import json

import pytest

from tests.helpers import run_claim_tests

pytestmark = pytest.mark.slow
SUBSET = "heads or repetition or tokenization or normalisation"


def claims_of(report) -> dict[str, tuple[bool, object]]:
    return {c["id"]: (c["passed"], c["value"]) for c in json.loads(report.read_text())["claims"]}


def test_two_workers_report_what_one_process_reports(pytester, tmp_path):
    single, merged = tmp_path / "single.json", tmp_path / "merged.json"
    one = run_claim_tests(pytester, "-k", SUBSET, "--claims-report", str(single))
    two = run_claim_tests(pytester, "-k", SUBSET, "--claims-report", str(merged), "-n", "2", "--dist", "load")
    assert one.ret == 0 and two.ret == 0, two.stdout.str()[-3000:]
    alone, together = claims_of(single), claims_of(merged)
    assert len(alone) > 30 and together.keys() == alone.keys()
    assert {k: v[0] for k, v in together.items()} == {k: v[0] for k, v in alone.items()}
    for claim_id, (_, value) in alone.items():
        if isinstance(value, float):
            assert together[claim_id][1] == pytest.approx(value, rel=1e-5, abs=1e-7), claim_id
        else:
            assert together[claim_id][1] == value, claim_id
    run = json.loads(merged.read_text())["run"]
    assert run["xdist_workers"] == 2 and run["forward_passes"] > 0
