"""A matrix in one session: several models, dtypes and devices, every claim on every combination
its families allow, one model in memory at a time, a report per combination and one across."""

import json
import sys

import pytest

from tests.helpers import CLAIM_TESTS, combination, run, run_claim_tests

pytestmark = pytest.mark.slow
SUBSET = "normalisation or vocabulary or snapshot"


def test_two_models_one_session_each_claim_per_combination(pytester, random_gpt2_folder, tmp_path):
    report = tmp_path / "matrix.json"
    result = run_claim_tests(
        pytester, "--model", str(random_gpt2_folder), "--model", "embedded", "--model-family", "embedded",
        "-k", SUBSET, "--claims-report", str(report), "-vv",  # -vv: the helper passes -q
    )
    assert result.ret == 1  # the random model fails the behaviour snapshots, as it should
    random, embedded = combination("random-gpt2"), combination("embedded")
    result.stdout.fnmatch_lines([
        f"*test_claim?normalisation.notebook-prompt@{random}? PASSED*",
        f"*test_snapshot_claim?topk.notebook-prompt@embedded#{random}? FAILED*",
        f"*test_claim?normalisation.notebook-prompt@{embedded}? PASSED*",
        f"*test_snapshot_claim?topk.notebook-prompt@embedded#{embedded}? PASSED*",  # the same snapshot
    ])
    merged = json.loads(report.read_text())
    assert list(merged["runs"]) == [random, embedded]
    assert merged["claims"]["topk.notebook-prompt"][embedded]["passed"] is True
    assert merged["claims"]["topk.notebook-prompt"][random]["passed"] is False
    assert "topk.notebook-prompt" in merged["differs"]
    for label in (random, embedded):
        per_combination = json.loads((tmp_path / f"matrix-{label.replace('/', '-').replace(':', '_')}.json").read_text())
        assert per_combination["run"]["forward_passes"] > 0 and per_combination["claims"]


def peak_rss_mib(*args: str) -> float:
    """Peak resident memory of one pytest run of the claim tests, in MiB (Linux reports KiB)."""
    code = (
        "import resource, subprocess, sys; "
        f"subprocess.run([sys.executable, '-m', 'pytest', {str(CLAIM_TESTS)!r}, '-p', 'no:cacheprovider', '-q', *sys.argv[1:]]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    result = run(sys.executable, "-c", code, *args)
    return float(result.stdout.strip().splitlines()[-1])


def test_a_second_model_does_not_double_the_memory():
    one = peak_rss_mib("-k", "normalisation.notebook-prompt")
    two = peak_rss_mib("-k", "normalisation.notebook-prompt", "--dtype", "float32,bfloat16")
    print(f"peak RSS: one model {one:.0f} MiB, two models in one session {two:.0f} MiB ({two / one:.2f}x)")
    assert two <= 1.3 * one


def test_a_matrix_entry_that_cannot_load_stops_the_session(pytester, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{")
    result = run_claim_tests(pytester, "--model", "embedded", "--model", str(broken), "-k", "normalisation")
    assert result.ret == 4
    result.stderr.fnmatch_lines([f"ERROR: model '{broken}': the folder {broken} lacks * (matrix entry {combination('broken')})"])


TIGHT_CROSS_CLAIM = """
[[claim]]
id = "mine.dtype-identical"
behaviour = "invariance"
kind = "sanity"
models = ["*"]
across = "dtype"
probe = "mean_loss"
source = "a claim no bfloat16 model can satisfy: the float32 loss to 1e-7"
justification = "below one bfloat16 rounding step of a loss near 5: must fail"
input = { prompt = "notebook" }
expect = { op = "<=", value = 1e-7 }
"""


def test_cross_dtype_claims_compare_each_dtype_with_the_first(pytester, tmp_path):
    claims = tmp_path / "tight.toml"
    claims.write_text(TIGHT_CROSS_CLAIM)
    report = tmp_path / "cross.json"
    result = run_claim_tests(pytester, "--dtype", "float32,bfloat16", "--device", "cpu", "--claims", str(claims),
                             "-k", "invariance.dtype or mine.dtype", "--claims-report", str(report), "-vv")
    result.stdout.fnmatch_lines([
        "*test_claim?invariance.dtype@embedded/bfloat16/cpu? PASSED*",
        "*test_claim?mine.dtype-identical@embedded/bfloat16/cpu? FAILED*",
    ])
    assert "@embedded/float32/cpu" not in result.stdout.str()  # the reference is not compared with itself
    assert result.ret == 1
    assert json.loads(report.read_text())["claims"]["invariance.dtype"]["embedded/bfloat16/cpu"]["passed"] is True
    bf16 = json.loads((tmp_path / "cross-embedded-bfloat16-cpu.json").read_text())["claims"]
    cross = next(c for c in bf16 if c["id"] == "invariance.dtype")
    assert cross["details"]["reference"] == "embedded/float32/cpu"
    assert 0 < cross["value"] <= 5e-2  # weights rounded to bfloat16 move the loss, within the bf16 loss tolerance


def test_cross_claims_without_a_second_value_say_how_to_run_them(pytester):
    result = run_claim_tests(pytester, "--dtype", "float32", "-k", "invariance.dtype", "-v")
    result.stdout.fnmatch_lines(["interp-claims: * claim(s) compare dtypes and run with several (--dtype float32,bfloat16): *invariance.dtype*"])
