"""The trained model (interp_claims/builtin/trained.py): deterministic training, and claims that
its circuits were found, not placed, and that its untrained initialisation fails them.

The determinism test is quick (a few training steps, twice); the rest train the model once per
machine (cached) and run the claim suite on it in a subprocess: the slow tier.
"""

import json
from dataclasses import replace

import pytest

from interp_claims.builtin.trained import RECIPE, train
from tests.helpers import run_suite

DETERMINISM_STEPS = 12


def state(model) -> dict:
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def test_training_is_deterministic_step_for_step():
    """Same seed, same first steps: the same weights bit for bit; another seed: other weights."""
    recipe = replace(RECIPE, batch=8)
    first, curve_a = train(recipe, steps=DETERMINISM_STEPS)
    again, curve_b = train(recipe, steps=DETERMINISM_STEPS)
    other, _ = train(replace(recipe, seed=recipe.seed + 1), steps=DETERMINISM_STEPS)
    a, b, c = state(first), state(again), state(other)
    assert all(a[name].equal(b[name]) for name in a), [name for name in a if not a[name].equal(b[name])]
    assert curve_a == curve_b
    assert not a["transformer.h.1.attn.c_attn.weight"].equal(c["transformer.h.1.attn.c_attn.weight"])
    assert all(not p.any() for name, p in a.items() if ".mlp." in name)  # attention-only: MLPs stay zero


@pytest.mark.slow
def test_trained_model_passes_its_discovery_and_checkpoint_claims(pytester, tmp_path):
    report = tmp_path / "trained.json"
    result, outcomes = run_suite(pytester, "--model", "trained", "-k", "trained.", report=report)
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert len(outcomes) >= 8 and all(outcomes.values()), outcomes
    data = json.loads(report.read_text())
    assert data["run"]["training"]["loss_curve"], "the report carries the loss curve"
    page = report.with_suffix(".html").read_text()
    assert "training loss" in page and "<polyline" in page


@pytest.mark.slow
def test_the_readme_command_for_the_trained_model_passes_whole(tmp_path):
    """README: `pytest interp_claims/suite --model trained`: its claims and the conformance tests of
    every probe a claim on its family uses (probes written for GPT-2's vocabulary are deselected,
    as their claims are)."""
    import subprocess
    import sys

    from tests.helpers import ROOT, subprocess_env

    line = next(line for line in (ROOT / "README.md").read_text().splitlines() if "interp_claims/suite --model trained" in line)
    command = line.split("#")[0].split()
    assert command[:3] == [".venv/bin/python", "-m", "pytest"]
    result = subprocess.run([sys.executable, *command[1:], "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True,
                            text=True, env=subprocess_env(), timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "test_probe_is_deterministic_json_ready_and_read_only" not in result.stdout  # no failure lines
    assert " passed" in result.stdout and "failed" not in result.stdout.splitlines()[-1]


@pytest.mark.slow
@pytest.mark.honesty
def test_untrained_initialisation_fails_every_discovery_claim(pytester, tmp_path):
    from interp_claims.builtin.trained import trained_model_folder

    step0 = trained_model_folder() / "checkpoints" / "step-00000"
    report = tmp_path / "untrained.json"
    result, outcomes = run_suite(pytester, "--model", str(step0), "--model-family", "trained",
                                 "-k", "trained. and not checkpoint and not score-at and not learning-score", report=report)
    assert result.ret == 1
    discovery = {claim: passed for claim, passed in outcomes.items()}
    assert len(discovery) >= 5 and not any(discovery.values()), discovery


@pytest.mark.slow
@pytest.mark.honesty
def test_before_the_copying_head_forms_a_previous_token_head_exists_but_feeds_nothing(pytester, tmp_path):
    """Step 250: layer 0 already has previous-token heads (the existence claim passes), but no
    copying head reads them yet: the feeding claim, the rotation-null K-composition and the patching
    claim (no copying head to restore) fail."""
    from interp_claims.builtin.trained import trained_model_folder

    step250 = trained_model_folder() / "checkpoints" / "step-00250"
    result, outcomes = run_suite(pytester, "--model", str(step250), "--model-family", "trained",
                                 "-k", "previous-token or k-composition or patching", report=tmp_path / "step250.json")
    assert result.ret == 1
    assert outcomes == {"trained.previous-token-head-before-it": True, "trained.previous-token-heads-feed-it": False,
                        "trained.k-composition-above-random": False,
                        "trained.patching.discovered-copying-heads-restore": False}, outcomes
