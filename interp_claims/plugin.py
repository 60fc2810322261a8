"""The pytest plugin (entry point ``pytest11``): options, the session's model, claims as
parametrized tests, the report.

Registered through ``pyproject.toml``, so its options exist before pytest chooses a rootdir:
``pytest --model /abs/folder`` works from anywhere. The tests it parametrizes live in
``interp_claims.suite`` (this repository collects them from ``interp_claims/suite``; another
repository runs ``pytest --pyargs interp_claims.suite``).

Nothing from ``probes`` is imported at module level: jaxtyping's import hook
(``--jaxtyping-packages=probes,...``) must see ``probes`` imported for the first time.
"""

import sys
import time
from pathlib import Path

import pytest

GROUP = "interp-claims"
CLAIM_TESTS = {"test_claim": "claim", "test_snapshot_claim": "snapshot_claim"}
MODEL_FIXTURES = {"claims_model", "claim", "snapshot_claim"}
MODEL_GROUP = "interp-claims-model"  # under `pytest -n N --dist loadgroup`, the model's tests share one worker
WORKER_OUTPUT = "interp_claims"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "interpretability claims about a language model")
    group.addoption(
        "--model",
        default="embedded",
        help="model to check: 'embedded' (default, built offline), 'gpt2' (= openai-community/gpt2), "
        "another Hugging Face id (the local cache first, then a download), or a model folder path",
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
        help="which claims apply: 'embedded', 'gpt2' or 'other' (default: inferred from the model)",
    )
    group.addoption("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available, else cpu)")
    group.addoption("--dtype", default="float32", help="float32 (default), bfloat16 or float16")
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


class ClaimSession:
    """One session's model, claims, shared forward passes and results."""

    def __init__(self, config: pytest.Config):
        from interp_claims.claims import ClaimFileError, load_claims
        from interp_claims.errors import ModelConfigError
        from interp_claims.models import WEIGHT_CONVENTIONS, resolve_device, resolve_dtype, resolve_model
        from interp_claims.registry import ProbeModuleError, load_builtin_probes, load_entry_point_probes, load_probe_modules

        option = config.option
        try:
            self.spec = resolve_model(option.model, option.model_family, option.revision)
            self.device = resolve_device(option.device)
            self.dtype = resolve_dtype(option.dtype)
            if option.weights not in WEIGHT_CONVENTIONS:
                raise ModelConfigError(f"--weights {option.weights!r} is not known. Valid: {', '.join(WEIGHT_CONVENTIONS)}.")
            load_builtin_probes()
            load_entry_point_probes()
            user_probes = config.getini("claims_probes")
            if user_probes:
                root = str(config.rootpath)
                if root not in sys.path:
                    sys.path.insert(0, root)
                load_probe_modules(user_probes, f"claims_probes of {config.inipath or config.rootpath}")
            files = [Path(p) for p in config.getini("claims_files")] + [Path(p) for p in option.claims]
            self.claims = load_claims(files)
        except (ModelConfigError, ClaimFileError, ProbeModuleError) as error:
            raise pytest.UsageError(str(error)) from None
        self.config = config
        self.weights = option.weights
        self.skip_missing = option.skip_missing_model
        self.report_path = Path(option.claims_report) if option.claims_report else None
        self.previous = None  # a previous report's claims, for --claims-compare
        if option.claims_compare:
            from interp_claims.compare import ReportFileError, read_report

            try:
                self.previous = read_report(Path(option.claims_compare))["claims"]
            except ReportFileError as error:
                raise pytest.UsageError(f"--claims-compare: {error}") from None
        self.results: list[dict] = []
        self.worker_runs: list[dict] = []  # under pytest-xdist, the run information of each worker that measured claims
        self.source = None  # interp_claims.models.ModelSource, once located
        self.models = None  # interp_claims.session.ModelSession, once located
        self._unavailable: str | None = None
        self._planned: list = []
        self.locate_seconds = 0.0

    # -- the model: located and checked once, loaded once per weight convention ----------------

    def prepare(self) -> None:
        """Find the model's files (build, cache or download) and settle its family.

        A model that cannot be had stops the session with one error; with --skip-missing-model,
        a model whose weights are unavailable makes every test that needs it skip instead."""
        from dataclasses import replace

        from interp_claims.errors import ModelError, ModelUnavailable
        from interp_claims.models import infer_family, locate

        from interp_claims.session import ModelSession

        if self.source is not None or self._unavailable is not None:
            return
        start = time.perf_counter()
        capture = self.config.pluginmanager.getplugin("capturemanager")
        try:
            with capture.global_and_fixture_disabled():  # the download's own progress bar reaches the terminal
                self.source = locate(self.spec)
        except ModelUnavailable as missing:
            if not self.skip_missing:
                raise pytest.UsageError(f"{missing}\n(--skip-missing-model skips the tests that need it instead)") from None
            self._unavailable = f"needs the model's weights: {missing}"
            return
        except ModelError as error:
            raise pytest.UsageError(str(error)) from None
        finally:
            self.locate_seconds += time.perf_counter() - start
        if self.spec.family is None:
            self.spec = replace(self.spec, family=infer_family(self.source.folder))
        self.models = ModelSession(self.spec, self.device, self.dtype, self.weights, self.source)
        self.models.plan(self._planned)

    @property
    def family(self) -> str | None:
        return self.spec.family

    def model(self, weights: str | None = None):
        """The loaded model (for tests): a load failure ends the session with one error."""
        from interp_claims.errors import ModelError

        self.prepare()
        if self._unavailable is not None:
            pytest.skip(self._unavailable)  # the one reason every model-dependent test gives
        try:
            return self.load(weights or self.weights)
        except ModelError as error:
            pytest.exit(f"ERROR: {error}", returncode=pytest.ExitCode.USAGE_ERROR)

    def load(self, weights: str):
        """The model in a weight convention, booted on first use. Raises ModelError."""
        self.prepare()
        return self.models.load(weights)

    def plan(self, claims: list) -> None:
        """Claims that will run: each input gets one forward pass keeping every hook they need."""
        self._planned = claims
        if self.models is not None:
            self.models.plan(claims)

    # -- measuring and recording -----------------------------------------------------------

    def measure(self, claim):
        from interp_claims.errors import ModelError
        from interp_claims.measurement import ResourceUnavailable

        self.model()  # skips, or ends the session, when the model cannot be had
        try:
            return self.models.measure(claim)
        except ResourceUnavailable as missing:
            pytest.skip(str(missing))
        except ModelError as error:  # a weight convention loaded on first use failed
            pytest.exit(f"ERROR: {error}", returncode=pytest.ExitCode.USAGE_ERROR)

    def record(self, claim, measurement, passed: bool, threshold: str, margin) -> dict:
        result = {
            "id": claim.id,
            "behaviour": claim.behaviour,
            "kind": claim.kind,
            "probe": claim.probe,
            "passed": passed,
            "value": measurement.value,
            "threshold": threshold,
            "margin": margin,
            "source": claim.source,
            "justification": claim.justification,
            "file": claim.file,
            "details": measurement.details,
            "seconds": round(self.models.last_seconds, 4),
            "pictures": [vars(p) for p in measurement.pictures],
        }
        self.results.append(result)
        return result

    def run_info(self) -> dict:
        if self.models is None and self.worker_runs:  # the xdist controller loaded no model: its workers did
            return merge_worker_runs(self.worker_runs)
        from importlib.metadata import version

        import torch

        passes, seconds = self.models.forward_stats if self.models else (0, 0.0)
        model = self.models.models.get(self.weights) if self.models else None
        return {
            "model": self.spec.name,
            "family": self.spec.family,
            "hub_id": self.spec.hub_id,
            "revision": self.spec.revision or ("main" if self.spec.kind == "hub" else None),
            "commit": self.source.commit if self.source else None,
            "weights_folder": str(self.source.folder) if self.source else None,
            "weights_origin": self.source.origin if self.source else None,
            "embedded": model.info if model else {},
            "device": str(self.device),
            "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            "dtype": str(self.dtype).removeprefix("torch."),
            "precision": self.models.precision if self.models else {},
            "weights": self.weights,
            "versions": {
                "torch": torch.__version__,
                "transformer_lens": version("transformer-lens"),
                "transformers": version("transformers"),
                "huggingface_hub": version("huggingface_hub"),
                "python": __import__("platform").python_version(),
            },
            "forward_passes": passes,
            "forward_seconds": round(seconds, 3),
            "claim_seconds": round(self.models.claim_seconds if self.models else 0.0, 3),
            "model_load_seconds": round(self.locate_seconds + (self.models.load_seconds if self.models else 0.0), 3),
        }


def merge_worker_runs(runs: list[dict]) -> dict:
    """One run's information from its workers': the first's model and versions, the work summed."""
    merged = dict(runs[0])
    for key in ("forward_passes", "forward_seconds", "claim_seconds", "model_load_seconds"):
        merged[key] = round(sum(run[key] for run in runs), 3)
    merged["xdist_workers"] = len(runs)
    return merged


SESSION_KEY = pytest.StashKey[ClaimSession]()


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "claim(behaviour): a claim about the model (from a claim file)")
    config.addinivalue_line("markers", "sanity: claims any healthy model of the architecture passes (normalisation, recompute, invariance, controls)")
    config.addinivalue_line("markers", "behaviour: claims about what a source says this model does inside")
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist --dist loadgroup keeps a group on one worker")
    if getattr(config.option, "help", False) or getattr(config.option, "version", False):
        return
    session = ClaimSession(config)
    config.stash[SESSION_KEY] = session
    if hasattr(config.option, "warn_unused_snapshots"):
        # snapshots are kept per model family: a run on one family leaves the others' unused by design
        config.option.warn_unused_snapshots = True
    for behaviour in sorted({claim.behaviour for claim in session.claims} - {"sanity", "behaviour"}):
        config.addinivalue_line("markers", f"{behaviour}: claims of behaviour '{behaviour}'")
    for family in sorted({family for claim in session.claims for family in claim.models}):
        config.addinivalue_line("markers", f"{model_marker(family)}: claims written for model family '{family}'")


def model_marker(family: str) -> str:
    """The marker of claims listing ``family``: ``-m for_gpt2``; ``for_any`` for models = ["*"]."""
    return "for_any" if family == "*" else f"for_{family}"


def _claims_session(config: pytest.Config) -> ClaimSession:
    return config.stash[SESSION_KEY]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    name = CLAIM_TESTS.get(metafunc.definition.originalname)
    if name is None or name not in metafunc.fixturenames:
        return
    session = _claims_session(metafunc.config)
    snapshot = name == "snapshot_claim"
    params = []
    for claim in session.claims:
        if (claim.expect["op"] == "snapshot") != snapshot:
            continue
        marks = [pytest.mark.claim(behaviour=claim.behaviour), getattr(pytest.mark, claim.behaviour), getattr(pytest.mark, claim.kind),
                 pytest.mark.xdist_group(MODEL_GROUP)]
        marks += [getattr(pytest.mark, model_marker(family)) for family in claim.models]
        if snapshot:  # one case, and one snapshot, per model family the claim lists
            params += [pytest.param((claim, family), id=f"{claim.id}@{family}", marks=marks) for family in claim.models]
        else:
            params.append(pytest.param(claim, id=claim.id, marks=marks))
    metafunc.parametrize(name, params)


def _claim_of(item: pytest.Item):
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "claim" in params:
        return params["claim"], None
    if "snapshot_claim" in params:
        return params["snapshot_claim"]
    return None, None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Find the model if a selected test needs it, deselect claims written for other model
    families, plan the shared forward passes, and load the model: every way the model can
    fail ends the session here, with one error, before any test runs."""
    claims_session = _claims_session(config)
    if not any(MODEL_FIXTURES & set(getattr(item, "fixturenames", ())) for item in items):
        return
    claims_session.prepare()
    family = claims_session.family
    keep, deselected = [], []
    for item in items:
        claim, snapshot_family = _claim_of(item)
        applies = claim is None or (claim.applies_to(family) if snapshot_family is None else snapshot_family == family)
        (keep if applies else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = keep
    claims_session.plan([claim for claim, _ in map(_claim_of, items) if claim is not None])
    if items and not config.option.collectonly and claims_session._unavailable is None:
        from interp_claims.errors import ModelError

        try:
            claims_session.load(claims_session.weights)
        except ModelError as error:  # one error line, no test run
            raise pytest.UsageError(str(error)) from None


@pytest.fixture(scope="session")
def claims_session(request: pytest.FixtureRequest) -> ClaimSession:
    return _claims_session(request.config)


@pytest.fixture(scope="session")
def claims_model(claims_session: ClaimSession):
    """The session's model (read-only: mutating it leaks into every later test)."""
    return claims_session.model()


def pytest_report_header(config: pytest.Config) -> str | None:
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return None
    spec = session.spec
    where = f" at revision {spec.revision}" if spec.revision else ""
    return f"interp-claims: model {spec.name}{where}, {session.device}, {str(session.dtype).removeprefix('torch.')}, {session.weights} weights"


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is None or not session.results:
        return
    from interp_claims.report import summary_lines

    terminalreporter.section("claims")
    for line in summary_lines(session.run_info(), session.results):
        terminalreporter.write_line(line)
    if session.previous is not None:
        from interp_claims.compare import compare, comparison_lines

        for line in comparison_lines(compare(session.previous, session.results), config.option.claims_compare):
            terminalreporter.write_line(line)
    if session.report_path:
        terminalreporter.write_line(f"claims report: {session.report_path} (+ .md, .html)")


def is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    claims_session = session.config.stash.get(SESSION_KEY, None)
    if claims_session is None:
        return
    if is_xdist_worker(session.config):  # the controller merges every worker's results and writes the report
        import json

        session.config.workeroutput[WORKER_OUTPUT] = json.dumps(
            {"run": claims_session.run_info() if claims_session.results else None, "results": claims_session.results}, default=str
        )
        return
    if claims_session.report_path is None or exitstatus == pytest.ExitCode.USAGE_ERROR:
        return  # a session stopped by a usage error measured nothing: no report that looks like a run
    from interp_claims.compare import compare
    from interp_claims.report import write_reports

    comparison = None
    if claims_session.previous is not None:
        comparison = {"source": session.config.option.claims_compare,
                      "rows": compare(claims_session.previous, claims_session.results)}
    write_reports(claims_session.report_path, claims_session.run_info(), claims_session.results, comparison)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist's controller: take a finished worker's claim results into this session's."""
    import json

    claims_session = node.config.stash.get(SESSION_KEY, None)
    output = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT)
    if claims_session is None or output is None:
        return
    data = json.loads(output)
    claims_session.results.extend(data["results"])
    if data["run"] is not None:
        claims_session.worker_runs.append(data["run"])


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Record where a timing came from: device, dtype, model, library versions."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return
    import torch

    machine_info["interp_claims"] = {
        "model": session.spec.name,
        "commit": session.source.commit if session.source else None,
        "device": str(session.device),
        "gpu": torch.cuda.get_device_name(session.device) if session.device.type == "cuda" else None,
        "dtype": str(session.dtype),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }
