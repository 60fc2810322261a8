"""The suite must fail on models without the behaviours it claims (run in a subprocess).

* A randomly initialised GPT-2-architecture model: the induction, repetition and
  ablation claims fail, while normalisation and the manual MLP still pass.
* The planted model with its heads moved elsewhere: the catalogue's head claims fail.
"""

import pytest

from interp_claims.builtin.embedded import PlantedLayout, write_planted_model
from tests.helpers import run_suite, write_random_gpt2

pytestmark = [pytest.mark.honesty, pytest.mark.slow]


def failed(outcomes: dict[str, bool], prefix: str) -> list[bool]:
    return [not passed for claim_id, passed in outcomes.items() if claim_id.startswith(prefix)]


def test_random_model_fails_behaviour_claims_but_passes_numerics(pytester, tmp_path):
    folder = write_random_gpt2(tmp_path / "random-gpt2")
    result, outcomes = run_suite(
        pytester,
        "--model", str(folder), "--model-family", "embedded",
        "-k", "not snapshot and not mlp and not invented and not invariance",
        report=tmp_path / "report.json",
    )
    assert result.ret == 1, result.stdout.str()[-2000:]
    for prefix in ("induction.layer5", "heads.induction", "repetition.quomatarus.repeat-predicted", "ablation.induction-heads-carry"):
        assert failed(outcomes, prefix) and all(failed(outcomes, prefix)), (prefix, outcomes)
    for prefix in ("normalisation.", "tokenization."):
        assert failed(outcomes, prefix) and not any(failed(outcomes, prefix)), (prefix, outcomes)


def test_random_model_still_passes_manual_mlp(pytester, tmp_path):
    folder = write_random_gpt2(tmp_path / "random-gpt2")
    result, outcomes = run_suite(
        pytester, "--model", str(folder), "--model-family", "embedded", "-k", "mlp", report=tmp_path / "report.json"
    )
    assert result.ret == 0, result.stdout.str()[-2000:]
    assert len(outcomes) == 48 and all(outcomes.values())


def test_heads_planted_elsewhere_fail_the_catalogue(pytester, tmp_path):
    moved = PlantedLayout(
        previous_token=((1, 3), (3, 7)),
        duplicate_token=((0, 4), (2, 8), (4, 5)),
        induction=((8, 0), (8, 6), (9, 3), (10, 4), (11, 8)),
    )
    folder = write_planted_model(tmp_path / "moved", moved)
    result, outcomes = run_suite(
        pytester, "--model", str(folder), "-k", "heads or ablation or embedded.", report=tmp_path / "report.json"
    )
    assert result.ret == 1
    for prefix in ("heads.induction", "heads.previous-token", "heads.duplicate-token", "ablation.induction-heads", "embedded.no-unplanted"):
        assert failed(outcomes, prefix) and all(failed(outcomes, prefix)), (prefix, outcomes)
    # the control ablates heads that now do nothing: it still passes
    assert outcomes["ablation.unclaimed-heads-do-not"] is True
