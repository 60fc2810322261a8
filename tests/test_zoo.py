"""Mutation testing: on each decoy of the zoo (interp_claims/zoo.py), a GPT-2-architecture model
built to imitate one behaviour without having it, exactly the listed claims fail and the
listed others still pass. The mutation score must be every decoy killed."""

import pytest

from interp_claims.zoo import DECOYS, mutation_score, run_zoo, table

pytestmark = [pytest.mark.honesty, pytest.mark.slow]


def test_every_decoy_is_killed_by_exactly_the_claims_it_fakes(claims_session, zoo_results):
    results = run_zoo(DECOYS, claims_session.device, claims_session.dtype)
    zoo_results.extend(results)  # printed in the terminal summary, with the mutation score
    assert [r.wrong for r in results] == [[] for _ in results], "\n".join(table(results))
    assert mutation_score(results) == f"mutation score {len(DECOYS)}/{len(DECOYS)} decoys killed"
    assert len(DECOYS) >= 6
