"""Mutation testing: on each decoy of the zoo (interp_claims/zoo.py), a GPT-2-architecture model
built to imitate one behaviour without having it, exactly the listed claims fail and the
listed others still pass. The mutation score must be every decoy killed."""

from pathlib import Path

import pytest

from interp_claims.zoo import BEFORE, DECOYS, mutation_score, run_zoo, table

BEFORE_CLAIMS = Path(__file__).parent / "data" / f"claims-{BEFORE}"

pytestmark = [pytest.mark.honesty, pytest.mark.slow]


def test_every_decoy_is_killed_by_exactly_the_claims_it_fakes(claims_run, zoo_results):
    results = run_zoo(DECOYS, claims_run.device, claims_run.dtype, before_dir=BEFORE_CLAIMS)
    zoo_results.extend(results)  # printed in the terminal summary, with the mutation score
    assert [r.wrong for r in results] == [[] for _ in results], "\n".join(table(results))
    counted = sum(d.attacks_definition for d in DECOYS)
    assert counted >= 2  # decoys that fooled the claims at BEFORE (passed_before checked there, above)
    assert mutation_score(results) == (f"mutation score {counted}/{counted} decoys killed that passed claims they imitate "
                                       f"at {BEFORE}; {len(DECOYS) - counted}/{len(DECOYS) - counted} regression guards killed")
