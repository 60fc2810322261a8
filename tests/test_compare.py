"""Reports that compare: a run against a previous report, and reports of several CI jobs merged."""

import json
import sys

import pytest

from interp_claims.compare import ReportFileError, compare, merge, read_report, write_merged
from tests.helpers import run, run_claim_tests


def claim(claim_id: str, passed: bool, value) -> dict:
    return {"id": claim_id, "passed": passed, "value": value}


def report(model: str, dtype: str, claims: list[dict]) -> dict:
    return {"run": {"model": model, "dtype": dtype, "device": "cpu", "commit": None}, "claims": claims}


def test_compare_names_flips_deltas_and_claims_new_or_gone():
    before = [claim("a", True, 0.9), claim("b", True, 0.5), claim("gone", True, 1.0), claim("ids", True, [1, 2])]
    now = [claim("a", True, 0.95), claim("b", False, 0.3), claim("new", True, 2.0), claim("ids", True, [1, 3])]
    rows = {r["id"]: r for r in compare(before, now)}
    assert rows["a"]["delta"] == pytest.approx(0.05) and rows["a"]["change"] is None
    assert rows["b"]["change"] == "now FAILS" and rows["b"]["delta"] == pytest.approx(-0.2)
    assert rows["new"]["change"] == "new" and rows["gone"]["change"] == "gone"
    assert rows["ids"]["change"] == "value changed"


def test_a_matrix_run_is_compared_combination_by_combination_and_other_models_are_flagged():
    """Keyed by claim id alone, the bfloat16 row overwrote the float32 one (issue 18)."""
    from interp_claims.compare import model_warning

    def at(claim_id, passed, value, combo):
        return {**claim(claim_id, passed, value), "combination": combo}

    before = [at("a", True, 0.9, "embedded/float32/cpu"), at("a", True, 0.8, "embedded/bfloat16/cpu")]
    now = [at("a", True, 0.9, "embedded/float32/cpu"), at("a", False, 0.1, "embedded/bfloat16/cpu")]
    rows = {r["id"]: r for r in compare(before, now)}
    assert rows["a@embedded/float32/cpu"]["change"] is None and rows["a@embedded/float32/cpu"]["delta"] == 0
    assert rows["a@embedded/bfloat16/cpu"]["change"] == "now FAILS"
    assert model_warning(before, now) is None
    other = [at("a", True, 0.9, "gpt2/float32/cpu")]
    assert model_warning(before[:1], other) == ("warning: the previous report is of embedded and this run of gpt2: "
                                                 "its differences include the change of model")
    assert {r["id"] for r in compare(before[:1], other)} == {"a"}  # one run against one run: claim by claim


def test_merge_of_different_catalogues_says_what_each_side_lacks(tmp_path):
    cpu = report("gpt2", "float32", [claim("a", True, 0.9), claim("b", True, 0.5)])
    bf16 = report("gpt2", "bfloat16", [claim("a", False, 0.3), claim("c", True, 1.0)])
    merged = merge([cpu, bf16])
    assert list(merged["runs"]) == ["gpt2/float32/cpu", "gpt2/bfloat16/cpu"]
    assert merged["missing"] == {"gpt2/float32/cpu": ["c"], "gpt2/bfloat16/cpu": ["b"]}
    assert merged["differs"] == ["a", "b", "c"]
    out, markdown, page = write_merged(tmp_path / "merged.json", [cpu, bf16])
    assert "**gpt2/bfloat16/cpu** lacks 1 claim(s): b" in markdown.read_text()
    assert "| **a** | pass 0.9 | FAIL 0.3 |" in markdown.read_text()
    assert "class='differs'" in page.read_text() and json.loads(out.read_text())["claims"]["a"]["gpt2/bfloat16/cpu"]["passed"] is False


def test_merge_command_and_bad_report_files(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(report("gpt2", "float32", [claim("x", True, 1.0)])))
    b.write_text(json.dumps(report("embedded", "float32", [claim("x", True, 1.0)])))
    result = run(sys.executable, "-m", "interp_claims.compare", "merge", str(tmp_path / "out.json"), str(a), str(b))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.md").is_file() and (tmp_path / "out.html").is_file()
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ReportFileError, match="is not a claims report"):
        read_report(tmp_path / "bad.json")
    with pytest.raises(ReportFileError, match="does not exist"):
        read_report(tmp_path / "absent.json")


@pytest.mark.slow  # two suite runs in subprocesses (~20 s)
def test_claims_compare_shows_changes_in_terminal_and_report(pytester, random_gpt2_folder, tmp_path):
    previous = tmp_path / "previous.json"
    args = ("--model", str(random_gpt2_folder), "-k", "normalisation.notebook-prompt or tokenization.vocabulary-size")
    first = run_claim_tests(pytester, *args, "--claims-report", str(previous))
    assert first.ret == 0
    data = json.loads(previous.read_text())
    data["claims"][0].update(passed=False, value=1.0)  # as if it had failed last time
    data["claims"].append(claim("retired.claim", True, 1.0))
    previous.write_text(json.dumps(data))
    current = tmp_path / "current.json"
    second = run_claim_tests(pytester, *args, "--claims-report", str(current), "--claims-compare", str(previous))
    assert second.ret == 0
    second.stdout.fnmatch_lines([f"compared with {previous}: 1 verdict flip(s), 0 new, 1 gone", "*: now passes (1.0 -> *)", "*retired.claim: gone"])
    assert json.loads(current.read_text())["compare"]["source"] == str(previous)
    assert "## Since the previous report" in current.with_suffix(".md").read_text()


def test_claims_compare_with_a_missing_file_is_one_error(pytester, tmp_path):
    result = run_claim_tests(pytester, "--claims-compare", str(tmp_path / "nope.json"))
    assert result.ret == 4
    result.stderr.fnmatch_lines(["ERROR: --claims-compare: claims report */nope.json does not exist*"])
