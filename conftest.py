"""This repository's own test fixtures. The claims engine is the installed pytest plugin
``interp_claims.plugin`` (entry point ``pytest11``), not this file."""

import pytest


@pytest.fixture(scope="session")
def random_gpt2_folder(tmp_path_factory: pytest.TempPathFactory):
    """A randomly initialised GPT-2-architecture model folder, built once per session."""
    from tests.helpers import write_random_gpt2

    return write_random_gpt2(tmp_path_factory.mktemp("models") / "random-gpt2")
