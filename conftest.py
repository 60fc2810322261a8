"""This repository's own test fixtures. The claims engine is the installed pytest plugin
``interp_claims.plugin`` (entry point ``pytest11``), not this file."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """The suite runs that tests start in subprocesses use this session's --device and --dtype,
    and this session's cache of built models: pytester points HOME at a temporary folder, and a
    subprocess would otherwise build (or train) the models again."""
    import os

    from interp_claims.builtin.cache import cache_root
    from tests import helpers

    os.environ.setdefault("INTERP_CLAIMS_CACHE", str(cache_root()))
    helpers.SESSION_ARGS[:] = [
        *(["--device", config.option.device] if getattr(config.option, "device", None) else []),
        *(["--dtype", config.option.dtype] if getattr(config.option, "dtype", "float32") != "float32" else []),
    ]


@pytest.fixture(scope="session")
def random_gpt2_folder(tmp_path_factory: pytest.TempPathFactory):
    """A randomly initialised GPT-2-architecture model folder, built once per session."""
    from tests.helpers import write_random_gpt2

    return write_random_gpt2(tmp_path_factory.mktemp("models") / "random-gpt2")


ZOO_RESULTS = pytest.StashKey[list]()


@pytest.fixture
def zoo_results(request: pytest.FixtureRequest) -> list:
    """Where tests/test_zoo.py leaves the decoy zoo's results, for the terminal summary."""
    return request.config.stash.setdefault(ZOO_RESULTS, [])


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(ZOO_RESULTS, [])
    if results:
        from interp_claims.zoo import table

        terminalreporter.section("decoy zoo")
        for line in table(results):
            terminalreporter.write_line(line)
