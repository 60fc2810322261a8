"""The suite must fail on models without the behaviours it claims (run in a subprocess).

* A randomly initialised GPT-2-architecture model, checked against the embedded model's
  claims: every `behaviour` claim fails and every `sanity` claim passes. This is what the
  two kinds mean, so a summary that counts them apart cannot overstate what was shown.
* The planted model with its heads moved elsewhere: the catalogue's head claims fail.

The decoy zoo (tests/test_zoo.py) goes further: one faked behaviour per model.
"""

import json

import pytest

from interp_claims.builtin.embedded import PlantedLayout, write_planted_model
from interp_claims.measurement import ProbeInputError
from tests.helpers import run_suite

pytestmark = [pytest.mark.honesty, pytest.mark.slow]


def failed(outcomes: dict[str, bool], prefix: str) -> list[bool]:
    return [not passed for claim_id, passed in outcomes.items() if claim_id.startswith(prefix)]


def test_random_model_fails_every_behaviour_claim_and_passes_every_sanity_claim(pytester, random_gpt2_folder, tmp_path):
    report = tmp_path / "report.json"
    result, _ = run_suite(pytester, "--model", str(random_gpt2_folder), "--model-family", "embedded", report=report)
    assert result.ret == 1, result.stdout.str()[-2000:]
    claims = json.loads(report.read_text())["claims"]
    behaviour = {c["id"]: c["passed"] for c in claims if c["kind"] == "behaviour"}
    prediction = {c["id"]: c["passed"] for c in claims if c["kind"] == "prediction"}
    sanity = {c["id"]: c["passed"] for c in claims if c["kind"] == "sanity"}
    assert len(behaviour) > 20 and len(prediction) > 10 and len(sanity) > 60
    assert [claim for claim, passed in {**behaviour, **prediction}.items() if passed] == []
    assert [claim for claim, passed in sanity.items() if not passed] == []
    result.stdout.fnmatch_lines([f"*claims passed, * failed (behaviour 0/{len(behaviour)} passed, prediction 0/{len(prediction)} passed "
                                 f"(never checked on real GPT-2), sanity {len(sanity)}/{len(sanity)} passed)*"])


def test_heads_planted_elsewhere_fail_the_catalogue(pytester, tmp_path):
    """The twin with its named heads' plans (attention and output) swapped onto heads that GPT-2's
    tables give no role: every claim naming them fails, and so does the published-table claim."""
    moved = PlantedLayout(swaps=(
        ((2, 2), (1, 3)), ((4, 11), (1, 4)), ((3, 7), (1, 5)),  # previous-token heads (the writers among them)
        ((0, 5), (0, 4)), ((3, 0), (2, 7)),  # duplicate-token heads
        ((5, 1), (8, 0)), ((5, 5), (8, 4)), ((6, 9), (8, 9)), ((7, 2), (8, 11)), ((7, 10), (9, 5)),  # induction heads
    ))
    folder = write_planted_model(tmp_path / "moved", moved)
    result, outcomes = run_suite(
        pytester, "--model", str(folder), "-k", "heads or ablation or circuits or published", report=tmp_path / "report.json"
    )
    assert result.ret == 1
    for prefix in ("heads.induction", "heads.previous-token", "heads.duplicate-token", "ablation.induction-heads",
                   "heads.no-other-", "circuits.", "published.head-table"):
        assert failed(outcomes, prefix) and all(failed(outcomes, prefix)), (prefix, outcomes)
    # the control ablates five heads that write only noise, untouched by the swaps: it still passes
    assert outcomes["ablation.unclaimed-heads-do-not"] is True


def test_gpt2_only_behaviour_claims_fail_on_a_model_without_them(claims_run, claims_model):
    """IOI and factual recall, as restated in issue 7, fail on the embedded model: it copies
    repeated tokens but has no name movers and no facts (measured in-process, the claims as written)."""
    from interp_claims.claims import check

    if claims_run.family != "embedded":  # pragma: no cover - the project's default session
        pytest.fail("run the project's tests on the embedded model (the default)")
    claims = {c.id: c for c in claims_run.claims}
    for claim_id in ("gpt2.factual-recall", "gpt2.ioi-logit-difference", "gpt2.ioi-accuracy",
                     "ioi.backup-name-movers-take-over[10.10]"):
        claim = claims[claim_id]
        measurement = claims_run.measure(claim)
        verdict = check(claim, measurement.value, claims_run.dtype, measurement.details.get("magnitude"))
        assert not verdict.passed, (claim_id, measurement.value)
    # the patching claims find no IOI behaviour to restore: swapping the names moves its logit difference
    # by 2e-4, and a recovery measured there would be noise over noise (one head passed before the guard)
    # nor any to keep: mean-ablating every head moves it as little (the IOI faithfulness predictions)
    for claim_id in ("ioi.patching.head-output-restores[9.9]", "ioi.patching.negative-heads-push-against[10.7]",
                     "ioi.path.s-inhibition-heads-act-through-name-mover-queries",
                     "ioi.faithfulness.circuit-keeps-the-logit-difference", "ioi.faithfulness.random-sets-keep-less"):
        with pytest.raises(ProbeInputError, match="no behaviour to restore"):
            claims_run.measure(claims[claim_id])
