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
published = { table = "EA_runA_Induction_Head_Scores", source = "TransformerLens Exploratory demo", spread = 0.076 }
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
        (('kind = "behaviour"', 'kind = "vibe"'), "kind 'vibe' is not known. Valid: sanity, behaviour, prediction"),
        (('published = { table', '# published = { table'), "a behaviour claim about gpt2 needs `published"),
        (('kind = "behaviour"', 'kind = "prediction"'), "a prediction has no published value"),
        ((', spread = 0.076', ''), "published needs a `spread`"),
        (('spread = 0.076', 'spread = -1'), "published.spread must be a non-negative finite number"),
        (('table = "EA_runA_Induction_Head_Scores"', 'table = "EA_runZ"'), "published.table 'EA_runZ' is not a published table"),
        (('source = "TransformerLens Exploratory demo", ', 'source = "TransformerLens Exploratory demo", colour = 1, '), "published has unknown field(s) colour"),
        (('table = "EA_runA_Induction_Head_Scores"', 'table = "EA_runA_Induction_Head_Scores", value = 1'), "exactly one of `value`"),
        (('kind = "behaviour"\n', ""), "missing field(s) kind"),
        (("seq_len = 5,", "seq_len = [5, 5],"), "seq_len must be a number, a list of distinct numbers or { low, high }"),
        (('kind = "behaviour"', 'kind = "behaviour"\nacross = "colour"'), "across 'colour' needs one of dtype, device"),
        (('kind = "behaviour"', 'kind = "behaviour"\nacross = "dtype"'), "and an upper bound (op < or <=)"),
        (('kind = "behaviour"', 'kind = "behaviour"\ncheckpoints = "all"'), "needs `at`, one of first, last, change, each"),
        (('kind = "behaviour"', 'kind = "behaviour"\ncheckpoints = []\nat = "last"'), "checkpoints must be \"all\" or a non-empty list"),
        (('kind = "behaviour"', 'kind = "behaviour"\ncheckpoints = "all"\nat = "each"\nacross = "dtype"'), "over checkpoints or across combinations, not both"),
        (('value = 0.4', 'value = 0.4, rounding_steps = -1'), "rounding_steps must be a non-negative integer"),
        (('id = "x.one"', 'id = 7'), "id must be a non-empty string, got 7"),  # issue 18's mistakes, one clear line each
        (('models = ["gpt2"]', 'models = ["gpt-2"]'),
         "'gpt-2' is not a model family (did you mean 'gpt2'?). Valid: embedded, trained, gpt2, other"),
        (('probe = "head_score"', 'probe = "head_scores"'), "unknown probe 'head_scores' (did you mean 'head_score'?)"),
        (('source = "a paper"', 'source = 3'), "source must be a non-empty string, got 3"),
        (('justification = "a reason"', 'justification = ["a", "list"]'), "justification must be a non-empty string"),
        (('params = { kind = "induction" }', 'params = "induction"'), "params must be a table"),
        (('["5.1", "5.5"]', '[5.1, 7.10]'), "each.head 5.1 is not a string: TOML reads 7.10 as the number 7.1"),
        (("input = { repeated_random = { seq_len = 5, batch = 2, seed = 0 } }", 'input = { texts = "Hello world" }'),
         "texts must be a list of strings"),
        (("input = { repeated_random = { seq_len = 5, batch = 2, seed = 0 } }", "input = { text = 5 }"), "text must be a string"),
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


def test_a_claim_its_own_published_number_fails_is_refused_at_load(tmp_path):
    """The old catalogue's duplicate-token claim on 0.10 (published 0.019 on random tokens) against
    its bar 0.3: GPT-2 itself would fail it, so the file is refused, naming the case."""
    text = (GOOD.replace('"induction" }', '"duplicate_token" }').replace('["5.1", "5.5"]', '["3.0", "0.10"]')
            .replace("EA_runA_Induction_Head_Scores", "EA_runA_Duplicate_Token_Scores").replace("0.076", "0.029")
            .replace("value = 0.4", "value = 0.3"))
    with pytest.raises(ClaimFileError) as error:
        load_claim_file(write(tmp_path, text))
    message = str(error.value)
    assert "x.one[0.10]: published value 0.018" in message and "(worst -0.01" in message
    assert "does not satisfy > 0.3: GPT-2's own published number fails this claim" in message


def test_the_spread_is_the_margin_a_published_value_must_clear(tmp_path):
    """10.1's published induction score is 0.482: it clears 0.45 by 0.032, less than the demo's
    run-to-run spread (0.076), so a bar of 0.45 is refused; 0.4 is accepted."""
    text = GOOD.replace('["5.1", "5.5"]', '["10.1"]')
    assert load_claim_file(write(tmp_path, text))[0].published["value"] == pytest.approx(0.482, abs=1e-3)
    with pytest.raises(ClaimFileError, match=r"x.one\[10.1\]: published value 0.48.* with spread 0.076"):
        load_claim_file(write(tmp_path, text.replace("value = 0.4", "value = 0.45")))


def test_published_values_per_case_and_exact_facts(tmp_path):
    per_case = GOOD.replace('table = "EA_runA_Induction_Head_Scores"', 'value = { "5.1" = 0.9, "5.5" = 0.8 }')
    assert [c.published["value"] for c in load_claim_file(write(tmp_path, per_case))] == [0.9, 0.8]
    missing = GOOD.replace('table = "EA_runA_Induction_Head_Scores"', 'value = { "5.1" = 0.9 }')
    with pytest.raises(ClaimFileError, match="published.value has no entry for case '5.5'"):
        load_claim_file(write(tmp_path, missing))
    exact = """
    [[claim]]
    id = "x.ids"
    behaviour = "tokenization"
    kind = "behaviour"
    models = ["gpt2"]
    probe = "token_ids"
    source = "s"
    params = { text = " Mary" }
    published = { value = [5336], source = "a typo" }
    expect = { op = "==", value = [5335] }
    """
    with pytest.raises(ClaimFileError, match=r"published value \[5336\] is not \[5335\]"):
        load_claim_file(write(tmp_path, exact))


def test_every_builtin_behaviour_claim_about_gpt2_rests_on_a_published_number():
    claims = load_claims()
    about_gpt2 = [c for c in claims if "gpt2" in c.models]
    assert all(c.published is not None for c in about_gpt2 if c.kind == "behaviour")
    assert all(c.published is None for c in claims if c.kind == "prediction")
    assert sum(c.kind == "prediction" for c in about_gpt2) >= 10


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


def test_an_infinite_tolerance_is_refused(tmp_path):
    text = GOOD.replace('expect = { op = ">", value = 0.4 }', 'expect = { op = "approx", value = 0.9, tolerance = inf }')
    with pytest.raises(ClaimFileError, match="expect.tolerance must be a non-negative finite number or a kind, got inf"):
        load_claim_file(write(tmp_path, text))


def test_an_unknown_model_family_is_one_clear_error():
    from interp_claims.models import ModelConfigError, resolve_model

    with pytest.raises(ModelConfigError, match=r"--model-family 'gtp2' is not a model family \(did you mean 'gpt2'\?\)\. Valid: embedded, trained, gpt2, other"):
        resolve_model("embedded", "gtp2")


def test_a_claim_file_given_twice_loads_once(tmp_path):
    from interp_claims.claims import load_claims

    path = write(tmp_path, GOOD)
    once = load_claims([path])
    assert [c.id for c in load_claims([path, tmp_path / ".." / tmp_path.name / path.name])] == [c.id for c in once]


def test_a_numeric_bound_on_a_value_that_is_not_a_number_names_the_probe(tmp_path):
    from interp_claims.claims import check
    from interp_claims.measurement import ProbeOutputError

    claim = load_claim_file(write(tmp_path, GOOD))[0]
    with pytest.raises(ProbeOutputError, match="compares numbers \\(> 0.4\\) but probe 'head_score' returned list"):
        check(claim, [[262, " the"]])
