"""The claim-file loader: malformed files are clear errors naming the file and the row."""

import textwrap

import pytest

from interp_claims.claims import ClaimFileError, check, load_claim_file, load_claims

GOOD = """
[[claim]]
id = "x.one"
behaviour = "induction"
kind = "behaviour"
models = ["gpt2"]
probe = "head_score"
source = "a paper"
justification = "a reason"
input = { repeated_random = { seq_len = 5, batch = 2, seed = 0 } }
params = { kind = "induction" }
each = { head = ["5.1", "5.5"] }
expect = { op = ">", value = 0.4 }
"""


def write(tmp_path, text: str):
    path = tmp_path / "claims.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_each_expands_into_one_claim_per_value(tmp_path):
    claims = load_claim_file(write(tmp_path, GOOD))
    assert [c.id for c in claims] == ["x.one[5.1]", "x.one[5.5]"]
    assert claims[1].params == {"kind": "induction", "head": "5.5"}
    assert claims[0].input.repeated_random == (5, 2, 0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('probe = "head_score"', 'probe = "no_such_probe"'), "unknown probe 'no_such_probe'"),
        (('source = "a paper"\n', ""), "missing field(s) source"),
        (('value = 0.4', 'value = "high"'), "neither a number nor a tolerance kind"),
        (('op = ">"', 'op = "~"'), "expect.op '~' is not known"),
        (('justification = "a reason"\n', ""), "needs a `justification`"),
        (('kind = "induction"', 'kind = "induction", colour = "red"'), "takes no parameter(s) colour"),
        (('input = { repeated_random = { seq_len = 5, batch = 2, seed = 0 } }\n', ""), "needs an `input` table"),
        (('models = ["gpt2"]', "models = []"), "models must be a non-empty list"),
        (('kind = "behaviour"', 'kind = "vibe"'), "kind 'vibe' is not known. Valid: sanity, behaviour"),
        (('kind = "behaviour"\n', ""), "missing field(s) kind"),
        (("seq_len = 5,", "seq_len = [5, 5],"), "seq_len must be a number or a list of distinct numbers"),
        (('kind = "behaviour"', 'kind = "behaviour"\nacross = "colour"'), "across 'colour' needs one of dtype, device"),
        (('kind = "behaviour"', 'kind = "behaviour"\nacross = "dtype"'), "and an upper bound (op < or <=)"),
        (('kind = "behaviour"', 'kind = "behaviour"\ncheckpoints = "all"'), "needs `at`, one of first, last, change, each"),
        (('kind = "behaviour"', 'kind = "behaviour"\ncheckpoints = []\nat = "last"'), "checkpoints must be \"all\" or a non-empty list"),
        (('kind = "behaviour"', 'kind = "behaviour"\ncheckpoints = "all"\nat = "each"\nacross = "dtype"'), "over checkpoints or across combinations, not both"),
        (('value = 0.4', 'value = 0.4, rounding_steps = -1'), "rounding_steps must be a non-negative integer"),
        (('value = 0.4', 'value = "probability", rounding_steps = 2'), "rounding_steps widens a numeric one-sided bound"),
    ],
)
def test_malformed_claims_name_file_row_and_problem(tmp_path, change, message):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ClaimFileError) as error:
        load_claim_file(path)
    assert str(path) in str(error.value)
    assert "claim #1" in str(error.value)
    assert message in str(error.value)


def test_between_needs_low_below_high(tmp_path):
    path = write(tmp_path, GOOD.replace('expect = { op = ">", value = 0.4 }', 'expect = { op = "between", low = 2, high = 1 }'))
    with pytest.raises(ClaimFileError, match="low 2 is above expect.high 1"):
        load_claim_file(path)


def test_duplicate_id_across_files_names_both(tmp_path):
    first = write(tmp_path, GOOD)
    second = tmp_path / "more.toml"
    second.write_text(GOOD)
    with pytest.raises(ClaimFileError, match=r"duplicate id 'x.one\[5.1\]', first defined in .*claims.toml"):
        load_claims([first, second])


def test_builtin_claims_load_with_unique_ids():
    claims = load_claims()
    assert len({c.id for c in claims}) == len(claims) > 50
    assert all(c.source for c in claims)


def test_invalid_toml_is_named(tmp_path):
    with pytest.raises(ClaimFileError, match="not valid TOML"):
        load_claim_file(write(tmp_path, "[[claim]\nid="))


@pytest.fixture
def claim(tmp_path):
    return load_claim_file(write(tmp_path, GOOD))[0]


def with_expect(claim, **expect):
    from dataclasses import replace

    return replace(claim, expect=expect)


def test_check_one_sided_and_margin(claim):
    assert check(claim, 0.5).passed and check(claim, 0.5).margin == pytest.approx(0.1)
    assert not check(claim, 0.4).passed  # strict
    assert not check(claim, float("nan")).passed


@pytest.mark.parametrize("op", [">", ">=", "<", "<=", "between", "approx"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_pass_no_comparison(claim, op, value):
    expect = {"between": dict(low=-1.0, high=1.0), "approx": dict(value=0.0, tolerance=1.0)}.get(op, dict(value=0.0))
    verdict = check(with_expect(claim, op=op, **expect), value)
    assert not verdict.passed and verdict.margin is None


def test_several_lags_become_alternative_inputs(tmp_path):
    claim = load_claim_file(write(tmp_path, GOOD.replace("seq_len = 5,", "seq_len = [5, 7],")))[0]
    assert claim.input.repeated_random == (5, 2, 0)
    assert [v.repeated_random for v in claim.input.variants] == [(5, 2, 0), (7, 2, 0)]


def test_check_approx_is_two_sided(claim):
    import torch

    c = with_expect(claim, op="approx", value=5.0, tolerance="loss")
    assert check(c, 5.0004, torch.float32).passed
    assert not check(c, 5.0006, torch.float32).passed
    assert not check(c, 4.9994, torch.float32).passed  # below as well as above
    assert check(c, 5.04, torch.bfloat16).passed


def test_check_tolerance_kind_depends_on_dtype(claim):
    import torch

    c = with_expect(claim, op="<=", value="probability")
    assert check(c, 5e-3, torch.bfloat16).passed
    assert not check(c, 5e-3, torch.float32).passed
    assert not check(c, float("inf"), torch.float32).passed


def test_check_exact_and_between(claim):
    assert check(with_expect(claim, op="==", value=[1, 2]), [1, 2]).passed
    assert not check(with_expect(claim, op="==", value=[1, 2]), [2, 1]).passed
    between = with_expect(claim, op="between", low=1.0, high=2.0)
    assert check(between, 1.0).passed and check(between, 2.0).passed
    assert not check(between, 2.01).passed
