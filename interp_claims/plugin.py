"""The pytest plugin (entry point ``pytest11``): a thin adapter over the run engine.

Each hook delegates in a few lines to the session's ``ClaimRun`` (``interp_claims.run``), which
knows nothing of pytest: this module turns options into ``RunOptions``, the run's cases into
parametrized tests with markers, its schedule into the collection's order, its exceptions into
pytest's outcomes (``engine_outcomes``), and its results into the terminal summary and the report.

Registered through ``pyproject.toml``, so its options exist before pytest chooses a rootdir:
``pytest --model /abs/folder`` works from anywhere. The tests it parametrizes live in
``interp_claims.suite`` (this repository collects them from ``interp_claims/suite``; another
repository runs ``pytest --pyargs interp_claims.suite``).

Nothing here imports ``interp_claims.probes``: jaxtyping's import hook
(``--jaxtyping-packages=interp_claims.probes,...``) must see it imported for the first time, which
the run does in ``pytest_configure``.
"""

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest

from interp_claims.builtin.cache import ANNOUNCE
from interp_claims.claims import ClaimFileError, is_builtin
from interp_claims.compare import ReportFileError
from interp_claims.errors import ClaimUnmeasured, CombinationSkipped, ModelConfigError, RunStopped
from interp_claims.measurement import ResourceUnavailable
from interp_claims.models import dtype_name
from interp_claims.registry import ProbeModuleError
from interp_claims.run import ClaimCase, ClaimRun, RunOptions

GROUP = "interp-claims"
CLAIM_TESTS = {"test_claim": "case", "test_snapshot_claim": "snapshot_case"}
MODEL_FIXTURES = {"claims_model", "case", "snapshot_case"}
WORKER_OUTPUT = "interp_claims"
RUN_KEY = pytest.StashKey[ClaimRun]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "interpretability claims about a language model")
    group.addoption(
        "--model",
        action="append",
        default=None,
        help="model to check: 'embedded' (default, built offline), 'trained' (trained here on first use), "
        "'gpt2' (= openai-community/gpt2), "
        "another Hugging Face id (the local cache first, then a download), or a model folder path; "
        "repeat it for a matrix of models",
    )
    group.addoption(
        "--revision",
        default=None,
        help="Hugging Face models: the branch, tag or commit to use (default: the repository's main branch); "
        "the report records the commit it resolved to",
    )
    group.addoption(
        "--model-family",
        default=None,
        help="which claims apply: 'embedded', 'trained', 'gpt2' or 'other' (default: inferred from the model)",
    )
    group.addoption(
        "--device", default=None,
        help="cpu, cuda or cuda:N, or several comma-separated (default: cuda if available, else cpu)",
    )
    group.addoption(
        "--dtype", default="float32",
        help="float32 (default), bfloat16 or float16, or several comma-separated (float32,bfloat16)",
    )
    group.addoption(
        "--weights",
        default="raw",
        help="raw: Hugging Face weights (default); processed: TransformerLens compatibility mode",
    )
    group.addoption(
        "--skip-missing-model",
        action="store_true",
        help="when the model's weights cannot be had (offline, Hub unreachable, not cached), skip the tests "
        "that need them with that reason instead of stopping the session with an error (the default)",
    )
    group.addoption(
        "--claims",
        action="append",
        default=[],
        metavar="PATH",
        help="a claim file (TOML) to add to the built-in ones; repeatable",
    )
    group.addoption(
        "--claims-report",
        default=None,
        metavar="PATH",
        help="write the claims report: PATH (JSON), plus PATH with .md and .html suffixes",
    )
    group.addoption(
        "--claims-compare",
        default=None,
        metavar="PREVIOUS.json",
        help="compare every claim with a previous claims report: value deltas and verdict flips, "
        "in the terminal summary and the report",
    )
    parser.addini("claims_files", type="paths", default=[], help="claim files (TOML) to add to the built-in ones")
    parser.addini(
        "claims_probes",
        type="linelist",
        default=[],
        help="modules holding your own probes, imported before claim files are read (project root on sys.path)",
    )
    parser.addini(
        "claims_snapshots",
        type="paths",
        default=[],
        help="folder for the snapshots of your snapshot claims (default: __snapshots__ beside each claim file); "
        "built-in claims keep theirs in the package",
    )


@contextmanager
def engine_outcomes(collecting: bool = False) -> Iterator[None]:
    """The engine's exceptions as pytest's outcomes: a model that cannot be had is a usage error
    before any test runs and the end of the session during one; a missing optional resource is a
    skip with its reason; a claim that cannot be measured fails with its one-line reason."""
    try:
        yield
    except (ModelConfigError, ClaimFileError, ProbeModuleError) as error:
        raise pytest.UsageError(str(error)) from None
    except ReportFileError as error:
        raise pytest.UsageError(f"--claims-compare: {error}") from None
    except RunStopped as error:
        if collecting:
            raise pytest.UsageError(str(error)) from None
        pytest.exit(f"ERROR: {error}", returncode=pytest.ExitCode.USAGE_ERROR)
    except (CombinationSkipped, ResourceUnavailable) as why:
        pytest.skip(str(why))
    except ClaimUnmeasured as error:
        pytest.fail(str(error), pytrace=False)


def run_options(config: pytest.Config) -> RunOptions:
    option = config.option
    return RunOptions(
        models=tuple(option.model or ["embedded"]), family=option.model_family, revision=option.revision,
        dtypes=option.dtype, devices=option.device, convention=option.weights, skip_missing=option.skip_missing_model,
        claim_files=tuple(Path(p) for p in [*config.getini("claims_files"), *option.claims]),
        probe_modules=tuple(config.getini("claims_probes")), probe_root=config.rootpath,
        probe_modules_named_in=f"claims_probes of {config.inipath or config.rootpath}",
        compare_with=option.claims_compare,
        worker_id=config.workerinput.get("workerid", "") if is_xdist_worker(config) else None,
    )


def snapshot_folder(config: pytest.Config, claim) -> Path | None:
    """Where a user's snapshot claim keeps its snapshot: the ``claims_snapshots`` folder, else
    ``__snapshots__`` beside its claim file; None for a built-in claim (the package's own)."""
    if is_builtin(claim):
        return None
    configured = config.getini("claims_snapshots")
    return Path(configured[0]) if configured else Path(claim.file).resolve().parent / "__snapshots__"


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "claim(behaviour): a claim about the model (from a claim file)")
    config.addinivalue_line("markers", "sanity: claims any healthy model of the architecture passes (normalisation, recompute, invariance, controls)")
    config.addinivalue_line("markers", "behaviour: claims about what a source says this model does inside, resting on a published number")
    config.addinivalue_line("markers", "prediction: behaviour claims no published number supports (never checked on real GPT-2)")
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist --dist loadgroup keeps a group on one worker")
    if getattr(config.option, "help", False) or getattr(config.option, "version", False):
        return
    check_rootdir(config)
    ANNOUNCE.append(lambda line: write_past_capture(config, line))
    config.add_cleanup(ANNOUNCE.pop)
    capture = config.pluginmanager.getplugin("capturemanager")
    with engine_outcomes(collecting=True):
        run = ClaimRun(run_options(config), terminal=capture.global_and_fixture_disabled if capture else nullcontext)
    config.stash[RUN_KEY] = run
    if hasattr(config.option, "warn_unused_snapshots"):
        # snapshots are kept per model family: a run on one family leaves the others' unused by design
        config.option.warn_unused_snapshots = True
    for behaviour in sorted({claim.behaviour for claim in run.claims} - {"sanity", "behaviour", "prediction"}):
        config.addinivalue_line("markers", f"{behaviour}: claims of behaviour '{behaviour}'")
    for family in sorted({family for claim in run.claims for family in claim.models}):
        config.addinivalue_line("markers", f"{model_marker(family)}: claims written for model family '{family}'")
    for combo in run.combos:
        config.addinivalue_line("markers", f"{dtype_marker(combo.dtype)}: claims measured in {combo.dtype}")
        config.addinivalue_line("markers", f"{device_marker(combo.device)}: claims measured on {combo.device}")


def write_past_capture(config: pytest.Config, line: str) -> None:
    """A progress line on the terminal now, not when pytest releases the captured output."""
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        print(line, file=sys.stderr, flush=True)
        return
    with capture.global_and_fixture_disabled():
        print(line, file=sys.stderr, flush=True)


def check_rootdir(config: pytest.Config) -> None:
    """pytest chooses its rootdir and configuration file before this plugin's options exist, so in
    ``pytest --model /abs/folder`` it takes the folder for a test path: the rootdir becomes the folder
    and the project's configuration (addopts, markers, testpaths) is silently skipped. Stop with the remedy."""
    if config.inipath is not None:
        return
    here = config.invocation_params.dir
    pyproject = here / "pyproject.toml"
    has_config = (here / "pytest.ini").is_file() or (pyproject.is_file() and "[tool.pytest.ini_options]" in pyproject.read_text())
    paths = [v for v in [*(config.option.model or []), *config.option.claims] if Path(v).expanduser().exists()]
    if has_config and paths:  # the rootdir came from those paths (it is their ancestor), not from here
        raise pytest.UsageError(
            f"pytest took {config.rootpath} (from {paths[0]}, a --model or --claims value) for its rootdir and skipped the "
            f"configuration in {here}: pytest reads its configuration before this plugin's options exist. "
            f"Write the option with '=' (--model=/abs/folder, --claims=/abs/file.toml), or name the configuration: "
            f"-c {(here / 'pytest.ini') if (here / 'pytest.ini').is_file() else pyproject}"
        )


def model_marker(family: str) -> str:
    """The marker of claims listing ``family``: ``-m for_gpt2``; ``for_any`` for models = ["*"]."""
    return "for_any" if family == "*" else f"for_{family}"


def dtype_marker(dtype) -> str:
    return f"dtype_{dtype_name(dtype)}"


def device_marker(device) -> str:
    return f"device_{str(device).replace(':', '_')}"


def claims_run_of(config: pytest.Config) -> ClaimRun | None:
    return config.stash.get(RUN_KEY, None)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every case of the run as one parametrized test, marked with its claim's behaviour, kind and
    model families and its combination's dtype, device and xdist group."""
    name = CLAIM_TESTS.get(metafunc.definition.originalname)
    if name is None or name not in metafunc.fixturenames:
        return
    run = metafunc.config.stash[RUN_KEY]
    params = []
    for test_id, case in run.cases(snapshot=name == "snapshot_case"):
        claim, combo = case.claim, run.combos[case.combo]
        marks = [pytest.mark.claim(behaviour=claim.behaviour), getattr(pytest.mark, claim.behaviour),
                 getattr(pytest.mark, claim.kind), pytest.mark.xdist_group(combo.label),
                 getattr(pytest.mark, dtype_marker(combo.dtype)), getattr(pytest.mark, device_marker(combo.device))]
        marks += [getattr(pytest.mark, model_marker(family)) for family in claim.models]
        params.append(pytest.param(case, id=test_id, marks=marks))
    metafunc.parametrize(name, params)


def _conformance_probe(item: pytest.Item) -> str | None:
    """The probe a conformance test of ``suite/test_probe_conformance.py`` exercises, if it is one."""
    if not item.nodeid.split("::")[0].endswith("test_probe_conformance.py"):
        return None
    return getattr(getattr(item, "callspec", None), "params", {}).get("name")


def _case_of(item: pytest.Item) -> ClaimCase | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return params.get("case") or params.get("snapshot_case")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Locate every model a selected test needs, deselect claims written for other model families,
    order the claim tests by combination (one model in memory at a time), plan the shared forward
    passes, and load the first model: every way a model can fail to be had ends the session here,
    with one error naming it, before any test runs."""
    run = config.stash[RUN_KEY]
    if not any(MODEL_FIXTURES & set(getattr(item, "fixturenames", ())) for item in items):
        return
    with engine_outcomes(collecting=True):
        run.prepare_for([case for case in map(_case_of, items) if case is not None])
    keep, deselected = [], []
    for item in items:
        case = _case_of(item)
        applies = run.applies(case) if case is not None else run.probe_applies(_conformance_probe(item))
        (keep if applies else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    slots = [i for i, item in enumerate(keep) if _case_of(item) is not None]  # the other tests keep their places
    for slot, item in zip(slots, sorted((keep[i] for i in slots), key=lambda item: run.order(_case_of(item))), strict=True):
        keep[slot] = item
    items[:] = keep
    run.plan([case for case in map(_case_of, items) if case is not None])
    target = run.combos[_case_of(keep[slots[0]]).combo] if slots else run.primary
    if items and not config.option.collectonly and target.unavailable is None:
        with engine_outcomes(collecting=True):
            run.model(combo=target)


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):
    """A test that uses the run gets the engine's outcomes (skip, stop, a claim's failure)."""
    if claims_run_of(pyfuncitem.config) is None or not ({"claims_run", *MODEL_FIXTURES} & set(pyfuncitem.fixturenames)):
        return (yield)
    with engine_outcomes():
        return (yield)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A claim test that ended without a verdict (its probe raised, its input was refused, it was
    skipped) still gets its row in every report, with the outcome and the reason; an exception
    from a probe is headed by the claim's file and row."""
    report = (yield).get_result()
    case = _case_of(item)
    run = claims_run_of(item.config)
    if case is None or run is None or not (report.failed or report.skipped):
        return
    claim = case.claim
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        outcome, reason = "skipped", reason.removeprefix("Skipped: ")
    elif call.excinfo is not None and call.excinfo.errisinstance(pytest.fail.Exception):
        outcome, reason = "failed", str(call.excinfo.value).strip()
    else:
        error = call.excinfo.value if call.excinfo is not None else None
        first_line = (str(error).strip().splitlines() or [""])[0][:300] if error is not None else str(report.longrepr)[:300]
        outcome, reason = "error", f"{type(error).__name__ if error is not None else 'error'}: {first_line}"
    result = run.record_unmeasured(case, outcome, reason)
    if result is None:  # the claim has its row already (a failed check)
        return
    if outcome == "error":
        report.longrepr = f"claim {claim.id} ({claim.file} #{claim.row}), probe {claim.probe!r} raised {reason}\n\n{report.longrepr}"
    for key in ("outcome", "reason", "threshold", "source", "behaviour", "kind", "combination"):
        item.user_properties.append((key, result[key]))  # JUnit XML reads them from the teardown report


@pytest.fixture(scope="session")
def claims_run(request: pytest.FixtureRequest) -> ClaimRun:
    """The session's run engine: its claims, its matrix, ``measure(claim)`` on the primary model."""
    return request.config.stash[RUN_KEY]


@pytest.fixture
def claims_model(claims_run: ClaimRun):
    """The primary combination's model (read-only: mutating it leaks into every later test).
    Function-scoped, so that no fixture keeps a model alive while another combination runs."""
    with engine_outcomes():
        return claims_run.model()


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    run = claims_run_of(config)
    return run.header_lines() if run is not None else None


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    run = claims_run_of(config)
    if run is None or not run.results:
        return
    terminalreporter.section("claims")
    for line in run.summary_lines(config.option.claims_report):
        terminalreporter.write_line(line)


def is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = claims_run_of(session.config)
    if run is None:
        return
    if is_xdist_worker(session.config):  # the controller merges every worker's results and writes the report
        session.config.workeroutput[WORKER_OUTPUT] = json.dumps(run.worker_output(), default=str)
        return
    report = session.config.option.claims_report
    if report is None or exitstatus == pytest.ExitCode.USAGE_ERROR:
        return  # a session stopped by a usage error measured nothing: no report that looks like a run
    if exitstatus == pytest.ExitCode.INTERRUPTED and not run.results:
        return  # interrupted before any claim ran (during collection, say): nothing to report
    run.write_reports(Path(report))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist's controller: take a finished worker's claim results into this run's."""
    run = claims_run_of(node.config)
    output = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT)
    if run is not None and output is not None:
        run.take_worker_output(json.loads(output))


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Record where a timing came from: device, dtype, model and its commit, library versions."""
    run = claims_run_of(config)
    if run is not None:
        machine_info["interp_claims"] = run.machine_info()
