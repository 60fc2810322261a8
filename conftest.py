"""The pytest layer: options, the session's model, claims as parametrized tests, the report.

Nothing from ``probes`` is imported at module level: jaxtyping's import hook
(``--jaxtyping-packages=probes,...``) must see ``probes`` imported for the first time.
"""

import time
from pathlib import Path

import pytest

GROUP = "interp-claims"
CLAIM_TESTS = {"test_claim": "claim", "test_snapshot_claim": "snapshot_claim"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "interpretability claims about a language model")
    group.addoption(
        "--model",
        default="embedded",
        help="model to check: 'embedded' (default, built offline), 'gpt2' (= openai-community/gpt2, "
        "from the local Hugging Face cache), another cached Hugging Face id, or a model folder path",
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


class ClaimSession:
    """One session's model, claims, shared forward passes and results."""

    def __init__(self, config: pytest.Config):
        from probes.claims import ClaimFileError, load_claims
        from probes.models import ModelConfigError, WEIGHT_CONVENTIONS, resolve_device, resolve_dtype, resolve_model

        option = config.option
        try:
            self.spec = resolve_model(option.model, option.model_family)
            self.device = resolve_device(option.device)
            self.dtype = resolve_dtype(option.dtype)
            if option.weights not in WEIGHT_CONVENTIONS:
                raise ModelConfigError(f"--weights {option.weights!r} is not known. Valid: {', '.join(WEIGHT_CONVENTIONS)}.")
            self.claims = load_claims([Path(p) for p in option.claims])
        except (ModelConfigError, ClaimFileError) as error:
            raise pytest.UsageError(str(error)) from None
        self.weights = option.weights
        self.report_path = Path(option.claims_report) if option.claims_report else None
        self.by_id = {claim.id: claim for claim in self.claims}
        self.results: list[dict] = []
        self._models: dict[str, object] = {}
        self._runners: dict[str, object] = {}
        self._unavailable: str | None = None
        self._planned: list = []
        self.load_seconds = 0.0
        self.claim_seconds = 0.0
        self.last_seconds = 0.0

    # -- the model, loaded once per (model, device, dtype, weights) ------------------------

    def model(self, weights: str | None = None):
        from probes.context import ForwardRunner
        from probes.models import WeightsUnavailable, load_model

        weights = weights or self.weights
        if weights not in self._models and self._unavailable is None:
            start = time.perf_counter()
            try:
                model = load_model(self.spec, self.device, self.dtype, weights)
            except WeightsUnavailable as missing:
                self._unavailable = f"needs the weights of {self.spec.name!r}: {missing}"
            else:
                self.load_seconds += time.perf_counter() - start
                self._models[weights] = model
                self._runners[weights] = ForwardRunner(model)
                for claim in self._planned:
                    self._plan(claim, weights)
        if self._unavailable is not None:
            pytest.skip(self._unavailable)  # the one reason every model-dependent test gives
        return self._models[weights]

    def plan(self, claims: list) -> None:
        """Claims that will run: each input gets one forward pass keeping every hook they need."""
        self._planned = claims
        for weights in self._runners:
            for claim in claims:
                self._plan(claim, weights)

    def _plan(self, claim, weights: str) -> None:
        from probes.registry import get_probe

        probe = get_probe(claim.probe)
        if claim.input is not None and probe.needs_forward and claim.params.get("weights", self.weights) == weights:
            self._runners[weights].plan(claim.input, probe.hooks)

    def context(self, claim):
        from probes.context import ProbeContext
        from probes.registry import get_probe

        model = self.model()
        probe = get_probe(claim.probe)

        def variant(weights: str) -> ProbeContext:
            return ProbeContext(self.model(weights), self._runners[weights])

        return ProbeContext(model, self._runners[self.weights], claim.input, probe.hooks or (), variant)

    # -- measuring and recording -----------------------------------------------------------

    def measure(self, claim):
        from probes.measurement import ResourceUnavailable
        from probes.registry import get_probe

        ctx = self.context(claim)
        start, loading = time.perf_counter(), self.load_seconds
        try:
            return get_probe(claim.probe).function(ctx, **claim.params)
        except ResourceUnavailable as missing:
            pytest.skip(str(missing))
        finally:  # a model variant loaded on first use is load time, not claim time
            self.last_seconds = time.perf_counter() - start - (self.load_seconds - loading)
            self.claim_seconds += self.last_seconds

    def record(self, claim, measurement, passed: bool, threshold: str, margin) -> None:
        self.results.append(
            {
                "id": claim.id,
                "behaviour": claim.behaviour,
                "probe": claim.probe,
                "passed": passed,
                "value": measurement.value,
                "threshold": threshold,
                "margin": margin,
                "source": claim.source,
                "justification": claim.justification,
                "file": claim.file,
                "details": measurement.details,
                "seconds": round(self.last_seconds, 4),
                "pictures": [vars(p) for p in measurement.pictures],
            }
        )

    @property
    def forward_stats(self) -> tuple[int, float]:
        passes = sum(r.stats.passes for r in self._runners.values())
        seconds = sum(r.stats.seconds for r in self._runners.values())
        return passes, seconds

    def run_info(self) -> dict:
        from importlib.metadata import version

        import torch

        passes, seconds = self.forward_stats
        model = self._models.get(self.weights)
        return {
            "model": self.spec.name,
            "family": self.spec.family,
            "weights_folder": str(model.folder) if model else None,
            "embedded": model.info if model else {},
            "device": str(self.device),
            "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            "dtype": str(self.dtype).removeprefix("torch."),
            "weights": self.weights,
            "versions": {
                "torch": torch.__version__,
                "transformer_lens": version("transformer-lens"),
                "transformers": version("transformers"),
                "python": __import__("platform").python_version(),
            },
            "forward_passes": passes,
            "forward_seconds": round(seconds, 3),
            "claim_seconds": round(self.claim_seconds, 3),
            "model_load_seconds": round(self.load_seconds, 3),
        }


SESSION_KEY = pytest.StashKey[ClaimSession]()


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "claim(behaviour): a claim about the model (from a claim file)")
    if getattr(config.option, "help", False) or getattr(config.option, "version", False):
        return
    session = ClaimSession(config)
    config.stash[SESSION_KEY] = session
    for behaviour in sorted({claim.behaviour for claim in session.claims}):
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
        marks = [pytest.mark.claim(behaviour=claim.behaviour), getattr(pytest.mark, claim.behaviour)]
        marks += [getattr(pytest.mark, model_marker(family)) for family in claim.models]
        if snapshot:  # one case, and one snapshot, per model family the claim lists
            params += [pytest.param((claim, family), id=f"{claim.id}@{family}", marks=marks) for family in claim.models]
        else:
            params.append(pytest.param(claim, id=claim.id, marks=marks))
    metafunc.parametrize(name, params)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect claims written for other model families, then plan the shared forward passes."""
    claims_session = _claims_session(config)
    family = claims_session.spec.family
    keep, deselected = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "claim" in callspec.params:
            applies = callspec.params["claim"].applies_to(family)
        elif callspec is not None and "snapshot_claim" in callspec.params:
            applies = callspec.params["snapshot_claim"][1] == family
        else:
            applies = True
        (keep if applies else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = keep
    selected = [
        item.callspec.params.get("claim") or item.callspec.params["snapshot_claim"][0]
        for item in items
        if getattr(item, "callspec", None) is not None and ({"claim", "snapshot_claim"} & set(item.callspec.params))
    ]
    claims_session.plan(selected)


@pytest.fixture(scope="session")
def claims_session(request: pytest.FixtureRequest) -> ClaimSession:
    return _claims_session(request.config)


@pytest.fixture(scope="session")
def model(claims_session: ClaimSession):
    """The session's model (read-only: mutating it leaks into every later test)."""
    return claims_session.model()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is None or not session.results:
        return
    from probes.report import summary_lines

    terminalreporter.section("claims")
    for line in summary_lines(session.run_info(), session.results):
        terminalreporter.write_line(line)
    if session.report_path:
        terminalreporter.write_line(f"claims report: {session.report_path} (+ .md, .html)")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    claims_session = session.config.stash.get(SESSION_KEY, None)
    if claims_session is None or claims_session.report_path is None:
        return
    from probes.report import write_reports

    write_reports(claims_session.report_path, claims_session.run_info(), claims_session.results)


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Record where a timing came from: device, dtype, model, library versions."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return
    import torch

    machine_info["interp_claims"] = {
        "model": session.spec.name,
        "device": str(session.device),
        "gpu": torch.cuda.get_device_name(session.device) if session.device.type == "cuda" else None,
        "dtype": str(session.dtype),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }
