"""The pytest plugin (entry point ``pytest11``): options, the session's model, claims as
parametrized tests, the report.

Registered through ``pyproject.toml``, so its options exist before pytest chooses a rootdir:
``pytest --model /abs/folder`` works from anywhere. The tests it parametrizes live in
``interp_claims.suite`` (this repository collects them from ``interp_claims/suite``; another
repository runs ``pytest --pyargs interp_claims.suite``).

Nothing from ``interp_claims.probes`` is imported at module level: jaxtyping's import hook
(``--jaxtyping-packages=interp_claims.probes,...``) must see it imported for the first time.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

GROUP = "interp-claims"
CLAIM_TESTS = {"test_claim": "case", "test_snapshot_claim": "snapshot_case"}
MODEL_FIXTURES = {"claims_model", "case", "snapshot_case"}
WORKER_OUTPUT = "interp_claims"


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


def snapshot_folder(config: pytest.Config, claim) -> Path | None:
    """Where a user's snapshot claim keeps its snapshot: the ``claims_snapshots`` folder, else
    ``__snapshots__`` beside its claim file; None for a built-in claim (the package's own)."""
    from interp_claims.claims import is_builtin

    if is_builtin(claim):
        return None
    configured = config.getini("claims_snapshots")
    return Path(configured[0]) if configured else Path(claim.file).resolve().parent / "__snapshots__"


@dataclass(frozen=True)
class ClaimCase:
    """One claim on one combination of the matrix; ``family`` names a snapshot claim's snapshot."""

    claim: object  # interp_claims.claims.Claim
    combo: int  # index into ClaimSession.combos
    family: str | None = None
    reference: int | None = None  # a cross-combination claim: the combination it is compared with


class ClaimSession:
    """One session's matrix of models, its claims, shared forward passes and results.

    The first combination is the *primary* one: the fixtures of the project's own tests
    (``claims_model``, ``claims_session.measure``) use it."""

    def __init__(self, config: pytest.Config):
        from interp_claims.claims import ClaimFileError, load_claims
        from interp_claims.errors import ModelConfigError
        from interp_claims.matrix import build_matrix
        from interp_claims.models import WEIGHT_CONVENTIONS
        from interp_claims.registry import ProbeModuleError, load_builtin_probes, load_entry_point_probes, load_probe_modules

        option = config.option
        try:
            if option.weights not in WEIGHT_CONVENTIONS:
                raise ModelConfigError(f"--weights {option.weights!r} is not known. Valid: {', '.join(WEIGHT_CONVENTIONS)}.")
            self.combos = build_matrix(option.model or ["embedded"], option.model_family, option.revision,
                                       option.dtype, option.device, option.weights)
            if hasattr(config, "workerinput"):
                from interp_claims.matrix import place_on_worker_gpu

                place_on_worker_gpu(self.combos, config.workerinput.get("workerid", ""))
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
        self.recorded: set[tuple[str, str]] = set()  # (claim id, combination) of every result
        self.references: dict[tuple[str, int], object] = {}  # (claim id, combination) -> its Measurement
        self.cross_cases: list[ClaimCase] = []  # selected cross-combination cases
        self.checkpoint_claims: dict[int, list] = {}  # combination -> its selected claims over checkpoints
        self.checkpoint_results: dict[int, dict[str, list | Exception]] = {}  # combination -> claim id -> [(name, Measurement)]
        self.checkpoint_work: dict[int, dict[str, float]] = {}  # combination -> checkpoints loaded, load and claim seconds
        self.worker_runs: list[dict] = []  # under pytest-xdist, the run information of each worker that measured claims

    # -- the primary combination, for the project's own tests ---------------------------------

    @property
    def primary(self):
        return self.combos[0]

    @property
    def matrix(self) -> bool:
        return len(self.combos) > 1

    @property
    def spec(self):
        return self.primary.spec

    @property
    def device(self):
        return self.primary.run_device

    @property
    def dtype(self):
        return self.primary.dtype

    @property
    def family(self) -> str | None:
        return self.primary.family

    @property
    def models(self):
        """The primary combination's ModelSession (None until located)."""
        return self.primary.models

    # -- locating and loading: every failure is one error for the whole session -----------------

    def prepare(self, combo=None) -> None:
        """Find a combination's files (build, cache or download) and settle its family.

        A model that cannot be had stops the session with one error naming the matrix entry;
        with --skip-missing-model, unavailable weights make that combination's tests skip."""
        from interp_claims.errors import ModelError, ModelUnavailable

        combo = combo or self.primary
        if combo.source is not None or combo.unavailable is not None:
            return
        entry = f" (matrix entry {combo.label})" if self.matrix else ""
        capture = self.config.pluginmanager.getplugin("capturemanager")
        try:
            with capture.global_and_fixture_disabled():  # the download's own progress bar reaches the terminal
                combo.locate()
        except ModelUnavailable as missing:
            if not self.skip_missing:
                raise pytest.UsageError(f"{missing}{entry}\n(--skip-missing-model skips the tests that need it instead)") from None
            combo.unavailable = f"needs the model's weights: {missing}"
        except ModelError as error:
            raise pytest.UsageError(f"{error}{entry}") from None

    def activate(self, combo) -> None:
        """Make ``combo`` the one in memory: free every other combination's model first, after
        measuring what cross-combination claims need from it (so that it is not loaded again)."""
        for other in self.combos:
            if other is not combo and other.loaded:
                self._capture_references(other)
                other.free()

    def _capture_references(self, combo) -> None:
        from interp_claims.errors import ModelError
        from interp_claims.measurement import ProbeInputError, ResourceUnavailable

        for case in self.cross_cases:
            key = (case.claim.id, combo.index)
            if case.reference == combo.index and key not in self.references:
                try:
                    self.references[key] = combo.models.measure(case.claim)
                except (ProbeInputError, ResourceUnavailable, ModelError, FloatingPointError):
                    pass  # measured again, with its error, in the claim's own test

    def over_checkpoints(self, claim, combo) -> list[tuple[str, object]]:
        """(checkpoint name, Measurement) of a claim on each of its checkpoints, in order.

        The first such claim of a combination measures all of them: each checkpoint is loaded
        once, alone in memory (the combination's own model is freed first; these claims run last
        in its group). A bad checkpoint name or a bad input raises ProbeInputError for its claim;
        a checkpoint that cannot be loaded ends the session with one error."""
        import gc

        from interp_claims.builtin.cache import announce
        from interp_claims.checkpoints import checkpoint_model, checkpoint_names
        from interp_claims.context import NonFiniteLogits
        from interp_claims.errors import ModelConfigError, ModelError
        from interp_claims.measurement import ProbeInputError
        from interp_claims.session import ModelSession

        self.prepare(combo)  # its files, not its model: the checkpoints are other models
        if combo.unavailable is not None:
            pytest.skip(combo.unavailable)
        done = self.checkpoint_results.setdefault(combo.index, {})
        if claim.id not in done:
            pending = [c for c in self.checkpoint_claims.get(combo.index, []) if c.id not in done]
            pending += [claim] if claim not in pending else []
            wanted: dict[str, list[str]] = {}
            for c in pending:
                try:
                    wanted[c.id] = checkpoint_names(combo.spec, combo.source, c.checkpoints)
                    done[c.id] = []
                except ModelConfigError as error:
                    done[c.id] = ProbeInputError(str(error))
            self.activate(None)  # nothing else in memory while the checkpoints load
            work = self.checkpoint_work.setdefault(combo.index, {"checkpoints": 0, "load_seconds": 0.0, "claim_seconds": 0.0})
            names = list(dict.fromkeys(n for names in wanted.values() for n in names))
            for number, name in enumerate(names, start=1):
                users = [c for c in pending if name in wanted.get(c.id, ()) and isinstance(done[c.id], list)]
                announce(f"checkpoint {name} ({number}/{len(names)}) of {combo.label}: {len(users)} claim(s)")
                try:
                    spec, source = checkpoint_model(combo.spec, combo.source, name)
                    models = ModelSession(spec, combo.run_device, combo.dtype, self.weights, source)
                    models.plan(users)
                    models.load()
                except ModelError as error:
                    pytest.exit(f"ERROR: {error}" + (f" (matrix entry {combo.label})" if self.matrix else ""),
                                returncode=pytest.ExitCode.USAGE_ERROR)
                for c in users:
                    try:
                        done[c.id].append((name, models.measure(c)))
                    except (ProbeInputError, NonFiniteLogits) as error:
                        done[c.id] = ProbeInputError(f"checkpoint {name}: {error}")
                work["checkpoints"] += 1
                work["load_seconds"] += models.load_seconds
                work["claim_seconds"] += models.claim_seconds
                models.close()
                gc.collect()
        result = done[claim.id]
        if isinstance(result, Exception):
            raise result
        return result

    def reference(self, claim, combo):
        """The measurement a cross-combination claim compares with, on ``combo`` (measured once)."""
        key = (claim.id, combo.index)
        if key not in self.references:
            self.references[key] = self.measure(claim, combo)
        return self.references[key]

    @staticmethod
    def reference_index(claim, combo, combos) -> int | None:
        """The combination ``combo`` is compared with on the claim's axis: the same model and
        other axis, the matrix's first value on this one; None for the reference itself or when
        the matrix has one value on the axis."""
        values = list(dict.fromkeys(getattr(c, claim.across) for c in combos))
        if len(values) < 2 or getattr(combo, claim.across) == values[0]:
            return None
        other = "device" if claim.across == "dtype" else "dtype"
        for candidate in combos:
            if (candidate.spec == combo.spec and getattr(candidate, other) == getattr(combo, other)
                    and getattr(candidate, claim.across) == values[0]):
                return candidate.index
        return None

    def model(self, weights: str | None = None, combo=None):
        """The loaded model (for tests): a load failure ends the session with one error."""
        from interp_claims.errors import ModelError

        combo = combo or self.primary
        self.prepare(combo)
        if combo.unavailable is not None:
            pytest.skip(combo.unavailable)  # the one reason every model-dependent test gives
        try:
            return self.load(weights or self.weights, combo)
        except ModelError as error:
            pytest.exit(f"ERROR: {error}" + (f" (matrix entry {combo.label})" if self.matrix else ""),
                        returncode=pytest.ExitCode.USAGE_ERROR)

    def load(self, weights: str, combo=None):
        """The model in a weight convention, booted on first use. Raises ModelError."""
        combo = combo or self.primary
        self.prepare(combo)
        if not combo.loaded:
            self.activate(combo)
        return combo.models.load(weights)

    # -- measuring and recording -----------------------------------------------------------

    def measure(self, claim, combo=None):
        from interp_claims.errors import ModelError
        from interp_claims.measurement import ProbeOutputError, ResourceUnavailable, json_ready_problem

        combo = combo or self.primary
        self.model(combo=combo)  # skips, or ends the session, when the model cannot be had
        try:
            measurement = combo.models.measure(claim)
        except ResourceUnavailable as missing:
            pytest.skip(str(missing))
        except ModelError as error:  # a weight convention loaded on first use failed
            pytest.exit(f"ERROR: {error}", returncode=pytest.ExitCode.USAGE_ERROR)
        if problem := json_ready_problem(measurement.value):
            raise ProbeOutputError(f"probe {claim.probe!r} returned a value the reports cannot hold: {problem}; a value "
                                   f"is a number, a string, a boolean, or lists and dicts of them")
        return measurement

    def record(self, claim, measurement, passed: bool, threshold: str, margin, combo=None, reason: str | None = None) -> dict:
        combo = combo or self.primary
        return self._keep(claim, combo, "passed" if passed else "failed", reason, passed=passed, value=measurement.value,
                          threshold=threshold, margin=margin, details=measurement.details,
                          seconds=round(combo.models.last_seconds, 4), pictures=[vars(p) for p in measurement.pictures])

    def record_unmeasured(self, claim, combo, outcome: str, reason: str) -> dict:
        """A claim that was collected but gave no verdict: it raised (``error``), failed before
        its check (``failed``: a bad input, say) or was skipped; it stays in every report."""
        return self._keep(claim, combo, outcome, reason, passed=False, value=None, threshold=claim.threshold_text,
                          margin=None, details={}, seconds=0.0, pictures=[])

    def _keep(self, claim, combo, outcome: str, reason: str | None, **measured) -> dict:
        result = {
            "id": claim.id, "combination": combo.label, "behaviour": claim.behaviour, "kind": claim.kind,
            "probe": claim.probe, "passed": measured["passed"], "value": measured["value"],
            "threshold": measured["threshold"], "margin": measured["margin"], "source": claim.source,
            "published": claim.published, "justification": claim.justification, "file": claim.file,
            "details": measured["details"], "seconds": measured["seconds"], "pictures": measured["pictures"],
            "outcome": outcome, "reason": reason,
        }
        self.results.append(result)
        self.recorded.add((claim.id, combo.label))
        return result

    def results_by_combination(self) -> dict[str, list[dict]]:
        grouped: dict[str, list[dict]] = {}
        for result in self.results:
            grouped.setdefault(result.get("combination", ""), []).append(result)
        return grouped

    def run_info(self, combo=None) -> dict:
        if all(c.models is None for c in self.combos) and self.worker_runs:  # the xdist controller loaded no model
            return merge_worker_runs(self.worker_runs)
        from importlib.metadata import version

        import torch

        combo = combo or self.primary
        models = combo.models
        passes, seconds = models.forward_stats if models else (0, 0.0)
        model = models.models.get(self.weights) if models else None
        spec, source = combo.spec, combo.source
        return {
            "combination": combo.label,
            "model": spec.name,
            "family": spec.family,
            "hub_id": spec.hub_id,
            "revision": spec.revision or ("main" if spec.kind == "hub" else None),
            "commit": source.commit if source else None,
            "weights_folder": str(source.folder) if source else None,
            "weights_origin": source.origin if source else None,
            "embedded": model.info if model else (built_model_info(source.folder) if source else {}),
            "device": str(combo.run_device),
            "device_name": torch.cuda.get_device_name(combo.run_device) if combo.run_device.type == "cuda" else "cpu",
            "dtype": str(combo.dtype).removeprefix("torch."),
            "precision": models.precision if models else {},
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
            "claim_seconds": round(models.claim_seconds if models else 0.0, 3),
            "model_load_seconds": round(combo.locate_seconds + (models.load_seconds if models else 0.0), 3),
            **({"checkpoint_runs": {k: round(v, 3) for k, v in self.checkpoint_work[combo.index].items()}}
               if combo.index in self.checkpoint_work else {}),
            **({"training": {"loss_curve": curve}} if source and (curve := training_curve(source.folder)) else {}),
        }


def built_model_info(folder: Path) -> dict:
    from interp_claims.models import built_model_info

    return built_model_info(folder)


def training_curve(folder: Path) -> list[dict]:
    from interp_claims.checkpoints import training_curve

    return training_curve(folder)


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
    config.addinivalue_line("markers", "behaviour: claims about what a source says this model does inside, resting on a published number")
    config.addinivalue_line("markers", "prediction: behaviour claims no published number supports (never checked on real GPT-2)")
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist --dist loadgroup keeps a group on one worker")
    if getattr(config.option, "help", False) or getattr(config.option, "version", False):
        return
    check_rootdir(config)
    from interp_claims.builtin.cache import ANNOUNCE

    ANNOUNCE.append(lambda line: write_past_capture(config, line))
    config.add_cleanup(ANNOUNCE.pop)
    session = ClaimSession(config)
    config.stash[SESSION_KEY] = session
    if hasattr(config.option, "warn_unused_snapshots"):
        # snapshots are kept per model family: a run on one family leaves the others' unused by design
        config.option.warn_unused_snapshots = True
    for behaviour in sorted({claim.behaviour for claim in session.claims} - {"sanity", "behaviour", "prediction"}):
        config.addinivalue_line("markers", f"{behaviour}: claims of behaviour '{behaviour}'")
    for family in sorted({family for claim in session.claims for family in claim.models}):
        config.addinivalue_line("markers", f"{model_marker(family)}: claims written for model family '{family}'")
    for combo in session.combos:
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


def _claims_session(config: pytest.Config) -> ClaimSession:
    return config.stash[SESSION_KEY]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every claim on every combination of the matrix (ids ``claim@model/dtype/device`` when the
    matrix has several; a single combination keeps the plain claim ids)."""
    name = CLAIM_TESTS.get(metafunc.definition.originalname)
    if name is None or name not in metafunc.fixturenames:
        return
    session = _claims_session(metafunc.config)
    snapshot = name == "snapshot_case"
    params = []
    for combo in session.combos:
        suffix = f"@{combo.label}" if session.matrix else ""
        combo_marks = [pytest.mark.xdist_group(combo.label), getattr(pytest.mark, dtype_marker(combo.dtype)),
                       getattr(pytest.mark, device_marker(combo.device))]
        for claim in session.claims:
            if (claim.expect["op"] == "snapshot") != snapshot:
                continue
            marks = [pytest.mark.claim(behaviour=claim.behaviour), getattr(pytest.mark, claim.behaviour),
                     getattr(pytest.mark, claim.kind), *combo_marks]
            marks += [getattr(pytest.mark, model_marker(family)) for family in claim.models]
            if snapshot:  # one case, and one snapshot, per model family the claim lists
                params += [
                    pytest.param(ClaimCase(claim, combo.index, family), id=f"{claim.id}@{family}" + (f"#{combo.label}" if session.matrix else ""), marks=marks)
                    for family in claim.models
                ]
            elif claim.across is not None:  # compared with another combination: none to compare without a matrix
                reference = session.reference_index(claim, combo, session.combos)
                if reference is not None:
                    params.append(pytest.param(ClaimCase(claim, combo.index, reference=reference), id=claim.id + suffix, marks=marks))
            else:
                params.append(pytest.param(ClaimCase(claim, combo.index), id=claim.id + suffix, marks=marks))
    metafunc.parametrize(name, params)


def dtype_marker(dtype) -> str:
    return f"dtype_{str(dtype).removeprefix('torch.')}"


def device_marker(device) -> str:
    return f"device_{str(device).replace(':', '_')}"


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
    """Find every model of the matrix that a selected test needs, deselect claims written for
    other model families, order the claim tests by combination (one model in memory at a time),
    plan the shared forward passes, and load the first model: every way a model can fail to be
    had ends the session here, with one error naming it, before any test runs."""
    claims_session = _claims_session(config)
    if not any(MODEL_FIXTURES & set(getattr(item, "fixturenames", ())) for item in items):
        return
    needed = {index for case in map(_case_of, items) if case is not None
              for index in (case.combo, case.reference) if index is not None} | {0}
    for index in sorted(needed):
        claims_session.prepare(claims_session.combos[index])
    keep, deselected = [], []
    primary_family = claims_session.primary.family
    for item in items:
        case = _case_of(item)
        if case is None:  # a probe's conformance test runs with the inputs of a claim on this model's family
            probe_name = _conformance_probe(item)
            used_by = [c for c in claims_session.claims if c.probe == probe_name]
            applies = probe_name is None or not used_by or any(c.applies_to(primary_family) for c in used_by)
        else:
            family = claims_session.combos[case.combo].family
            applies = case.claim.applies_to(family) if case.family is None else case.family == family
        (keep if applies else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    # claim tests grouped by combination, in their slots: the other tests keep their places
    slots = [i for i, item in enumerate(keep) if _case_of(item) is not None]
    ordered = sorted((keep[i] for i in slots),  # claims over checkpoints last: they free the combination's model
                     key=lambda item: (_case_of(item).combo, _case_of(item).claim.checkpoints is not None))
    for slot, item in zip(slots, ordered, strict=True):
        keep[slot] = item
    items[:] = keep
    cases = [case for case in map(_case_of, items) if case is not None]
    claims_session.cross_cases = [case for case in cases if case.reference is not None]
    for combo in claims_session.combos:  # each combination keeps the passes its own and its comparisons' claims read
        combo.plan([case.claim for case in cases
                    if combo.index in (case.combo, case.reference) and case.claim.checkpoints is None])
        claims_session.checkpoint_claims[combo.index] = list(
            {case.claim.id: case.claim for case in cases if case.combo == combo.index and case.claim.checkpoints is not None}.values())
    target = claims_session.combos[_case_of(keep[slots[0]]).combo] if slots else claims_session.primary
    if items and not config.option.collectonly and target.unavailable is None:
        from interp_claims.errors import ModelError

        try:
            claims_session.load(claims_session.weights, target)
        except ModelError as error:  # one error line, no test run
            entry = f" (matrix entry {target.label})" if claims_session.matrix else ""
            raise pytest.UsageError(f"{error}{entry}") from None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A claim test that ended without a verdict (its probe raised, its input was refused, it was
    skipped) still gets its row in every report, with the outcome and the reason; an exception
    from a probe is headed by the claim's file and row."""
    report = (yield).get_result()
    case = _case_of(item)
    if case is None or not (report.failed or report.skipped):
        return
    claims_session = item.config.stash.get(SESSION_KEY, None)
    if claims_session is None:
        return
    claim, combo = case.claim, claims_session.combos[case.combo]
    if (claim.id, combo.label) in claims_session.recorded:
        return
    where = f"claim {claim.id} ({claim.file} #{claim.row}), probe {claim.probe!r}"
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        outcome, reason = "skipped", reason.removeprefix("Skipped: ")
    elif call.excinfo is not None and call.excinfo.errisinstance(pytest.fail.Exception):
        outcome, reason = "failed", str(call.excinfo.value).strip()
    else:
        error = call.excinfo.value if call.excinfo is not None else None
        first_line = (str(error).strip().splitlines() or [""])[0][:300] if error is not None else str(report.longrepr)[:300]
        outcome, reason = "error", f"{type(error).__name__ if error is not None else 'error'}: {first_line}"
        report.longrepr = f"{where} raised {reason}\n\n{report.longrepr}"
    result = claims_session.record_unmeasured(claim, combo, outcome, reason)
    for key in ("outcome", "reason", "threshold", "source", "behaviour", "kind", "combination"):
        item.user_properties.append((key, result[key]))  # JUnit XML reads them from the teardown report


@pytest.fixture(scope="session")
def claims_session(request: pytest.FixtureRequest) -> ClaimSession:
    return _claims_session(request.config)


@pytest.fixture
def claims_model(claims_session: ClaimSession):
    """The primary combination's model (read-only: mutating it leaks into every later test).
    Function-scoped, so that no fixture keeps a model alive while another combination runs."""
    return claims_session.model()


def pytest_report_header(config: pytest.Config) -> str | None:
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return None
    lines = []
    for combo in session.combos:
        where = f" at revision {combo.spec.revision}" if combo.spec.revision else ""
        lines.append(f"interp-claims: model {combo.spec.name}{where}, {combo.device}, "
                     f"{str(combo.dtype).removeprefix('torch.')}, {session.weights} weights")
    from interp_claims.claims import BUILTIN_CLAIMS_DIR, is_builtin

    builtin = sum(map(is_builtin, session.claims))
    lines.append(f"interp-claims: {builtin} built-in claims ({BUILTIN_CLAIMS_DIR}), {len(session.claims) - builtin} of yours")
    for axis, example in (("dtype", "--dtype float32,bfloat16"), ("device", "--device cpu,cuda")):
        idle = [claim.id for claim in session.claims if claim.across == axis]
        if idle and len({getattr(combo, axis) for combo in session.combos}) < 2:
            lines.append(f"interp-claims: {len(idle)} claim(s) compare {axis}s and run with several ({example}): {', '.join(idle)}")
    return lines


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is None or not session.results:
        return
    from interp_claims.report import summary_lines

    terminalreporter.section("claims")
    by_combination = session.results_by_combination()
    for combo in session.combos:
        results = by_combination.get(combo.label) or (session.results if not session.matrix else [])
        if results:
            run = session.run_info(combo) if not session.worker_runs else session.run_info()
            for line in summary_lines(run, results):
                terminalreporter.write_line(line)
    if session.previous is not None:
        from interp_claims.compare import compare, comparison_lines, model_warning

        for line in comparison_lines(compare(session.previous, session.results), config.option.claims_compare,
                                     warning=model_warning(session.previous, session.results)):
            terminalreporter.write_line(line)
    if session.report_path:
        extra = " and one report per combination" if session.matrix else ""
        terminalreporter.write_line(f"claims report: {session.report_path} (+ .md, .html){extra}")


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
    if exitstatus == pytest.ExitCode.INTERRUPTED and not claims_session.results:
        return  # interrupted before any claim ran (during collection, say): nothing to report
    from interp_claims.compare import compare
    from interp_claims.report import write_reports

    comparison = None
    if claims_session.previous is not None:
        comparison = {"source": session.config.option.claims_compare,
                      "rows": compare(claims_session.previous, claims_session.results)}
    path = claims_session.report_path
    if not claims_session.matrix:
        write_reports(path, claims_session.run_info(), claims_session.results, comparison)
        return
    from interp_claims.compare import write_merged

    reports = []
    by_combination = claims_session.results_by_combination()
    for combo in claims_session.combos:  # one report per combination, then the view across them
        slug = combo.label.replace("/", "-").replace(":", "_")
        run, results = claims_session.run_info(combo), by_combination.get(combo.label, [])
        write_reports(path.with_name(f"{path.stem}-{slug}{path.suffix}"), run, results)
        reports.append({"run": run, "claims": results})
    write_merged(path, reports)


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
    """Record where a timing came from: device, dtype, model and its commit, library versions."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return
    import torch

    primary = session.primary
    machine_info["interp_claims"] = {
        "model": primary.spec.name,
        "commit": primary.source.commit if primary.source else None,
        "device": str(session.device),
        "gpu": torch.cuda.get_device_name(session.device) if session.device.type == "cuda" else None,
        "dtype": str(session.dtype),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }
