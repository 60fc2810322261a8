"""The report never shows green over a red run (issue 18): a claim whose probe raises, whose
probe returns a tensor, or that is skipped keeps its row in the terminal summary, the JSON,
Markdown and HTML reports and the JUnit properties, with its outcome and reason; the totals
agree with pytest's. Run in a user's repository (a temporary folder) on the embedded model."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

from interp_claims.measurement import json_ready_problem
from tests.helpers import subprocess_env

PROBES = '''
import torch
from interp_claims.measurement import Measurement, ResourceUnavailable
from interp_claims.registry import probe


@probe("mine_raises", hooks=None)
def mine_raises(ctx) -> Measurement:
    return Measurement(value={"a": 1}["b"])


@probe("mine_tensor", hooks=None)
def mine_tensor(ctx) -> Measurement:
    return Measurement(value=torch.tensor(0.711))


@probe("mine_fine", hooks=None)
def mine_fine(ctx) -> Measurement:
    return Measurement(value=0.7)


@probe("mine_unavailable", hooks=None)
def mine_unavailable(ctx) -> Measurement:
    raise ResourceUnavailable("no second device here")
'''

CLAIM = '''
[[claim]]
id = "mine.{name}"
behaviour = "mine"
kind = "sanity"
models = ["*"]
probe = "mine_{name}"
source = "a test of the reports"
justification = "any value above a half"
expect = {{ op = ">", value = 0.5 }}
'''

PYPROJECT = '''
[tool.pytest.ini_options]
claims_probes = ["mine_probes"]
claims_files = ["mine.toml"]
'''


def test_raising_tensor_and_skipped_claims_keep_their_rows_everywhere(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "mine_probes.py").write_text(PROBES)
    (repo / "mine.toml").write_text("".join(CLAIM.format(name=n) for n in ("raises", "tensor", "fine", "unavailable")))
    (repo / "pyproject.toml").write_text(PYPROJECT)
    report, junit = tmp_path / "claims.json", tmp_path / "junit.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "interp_claims.suite.test_claims", "-k", "mine", "-p", "no:cacheprovider",
         "--claims-report", str(report), f"--junitxml={junit}"],  # junit_family left at its default, xunit2
        cwd=repo, capture_output=True, text=True, env=subprocess_env(), timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "2 failed, 1 passed, 1 skipped" in output, output[-3000:]
    assert "1/4 claims passed, 2 raised an error, 1 skipped" in output, output[-3000:]
    assert "claim mine.raises (" in output and "probe 'mine_raises' raised KeyError: 'b'" in output
    assert "error: mine.tensor" in output and "value is a torch.Tensor (call float() or .tolist() on it)" in output
    assert "skipped: mine.unavailable" in output and "no second device here" in output
    assert "INTERNALERROR" not in output and "Traceback" not in output.split("claims ===")[-1]
    assert "record_property is incompatible" not in output  # no warning per claim under xunit2

    claims = {c["id"]: c for c in json.loads(report.read_text())["claims"]}
    assert {k: c["outcome"] for k, c in claims.items()} == {
        "mine.raises": "error", "mine.tensor": "error", "mine.fine": "passed", "mine.unavailable": "skipped"}
    assert claims["mine.raises"]["reason"] == "KeyError: 'b'" and not claims["mine.raises"]["passed"]
    markdown = report.with_suffix(".md").read_text()
    assert "1/4 claims passed, 2 raised an error, 1 skipped" in markdown
    assert "| mine.raises | sanity | **ERROR** | error: KeyError: 'b' |" in markdown
    html = report.with_suffix(".html").read_text()
    assert '<td class="fail">ERROR</td><td>error: KeyError: &#x27;b&#x27;</td>' in html
    assert '<td class="skip">skipped</td>' in html

    cases = {case.get("name"): case for case in ElementTree.parse(junit).iter("testcase")}
    properties = {p.get("name"): p.get("value") for p in cases["test_claim[mine.raises]"].iter("property")}
    assert properties["outcome"] == "error" and properties["reason"] == "KeyError: 'b'"


def test_json_readiness_names_what_is_not_json():
    import torch

    assert json_ready_problem([1, "a", {"b": [0.5, None, True]}]) is None
    assert json_ready_problem(torch.tensor(1.0)) == "value is a torch.Tensor (call float() or .tolist() on it)"
    assert json_ready_problem({"x": [1, torch.tensor(2)]}) == "value['x'][1] is a torch.Tensor (call float() or .tolist() on it)"
    assert json_ready_problem({1: 2}) == "value has a key 1 of type int"
