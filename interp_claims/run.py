"""The run engine: every claim on every combination of the matrix, scheduled so that one model
is in memory at a time, measured, and kept for the reports. No pytest here.

The pytest plugin (``interp_claims.plugin``) is a thin adapter over a ``ClaimRun``: it turns the
run's cases into parametrized tests and the engine's exceptions into pytest's outcomes:

* ``RunStopped`` (these three are in ``interp_claims.errors``): a model the user asked for cannot be had or loaded: a usage error before any
  test runs, the end of the session during one (never a run of skips);
* ``CombinationSkipped`` and ``ResourceUnavailable`` (``interp_claims.measurement``): an optional
  resource is missing (weights with ``--skip-missing-model``, CUDA): the test skips with the reason;
* ``ClaimUnmeasured``: the claim's input or its model's logits make it fail before its check.

Setup errors (``ModelConfigError``, ``ClaimFileError``, ``ProbeModuleError``, ``ReportFileError``)
are usage errors.
"""

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from interp_claims.checkpoints import at_checkpoints
from interp_claims.claims import BUILTIN_CLAIMS_DIR, Claim, is_builtin, load_claims
from interp_claims.compare import compare, comparison_lines, model_warning, read_report, write_merged
from interp_claims.context import NonFiniteLogits
from interp_claims.errors import ClaimUnmeasured, CombinationSkipped, ModelConfigError, ModelError, ModelUnavailable, RunStopped
from interp_claims.matrix import Combination, build_matrix, place_on_worker_gpu, reference_index
from interp_claims.measurement import Measurement, ProbeInputError, ProbeOutputError, ResourceUnavailable, json_ready_problem
from interp_claims.models import WEIGHT_CONVENTIONS, dtype_name
from interp_claims.sweep import CheckpointSweep
from interp_claims.records import group_by_combination, merge_worker_runs, result_record, run_info, unmeasured_record
from interp_claims.registry import load_probe_modules, load_probes
from interp_claims.report import summary_lines, write_reports


@dataclass(frozen=True)
class RunOptions:
    """What the user asked for (the plugin's options and ini settings, as plain values)."""

    models: tuple[str, ...] = ("embedded",)
    family: str | None = None
    revision: str | None = None
    dtypes: str = "float32"
    devices: str | None = None
    convention: str = "raw"  # --weights
    skip_missing: bool = False
    claim_files: tuple[Path, ...] = ()
    probe_modules: tuple[str, ...] = ()  # the claims_probes setting
    probe_root: Path | None = None  # put on sys.path before importing them
    probe_modules_named_in: str = ""
    compare_with: str | None = None  # a previous report's path, as the user wrote it (--claims-compare)
    worker_id: str | None = None  # pytest-xdist's gwN


@dataclass(frozen=True)
class ClaimCase:
    """One claim on one combination of the matrix; ``family`` names a snapshot claim's snapshot."""

    claim: Claim
    combo: int  # index into ClaimRun.combos
    family: str | None = None
    reference: int | None = None  # a cross-combination claim: the combination it is compared with


class ClaimRun:
    """One run's matrix of models, its claims, and its results.

    The first combination is the *primary* one: the fixtures of the project's own tests
    (``claims_model``, ``claims_run.measure``) use it."""

    def __init__(self, options: RunOptions, terminal: Callable[[], AbstractContextManager] = nullcontext):
        if options.convention not in WEIGHT_CONVENTIONS:
            raise ModelConfigError(f"--weights {options.convention!r} is not known. Valid: {', '.join(WEIGHT_CONVENTIONS)}.")
        self.combos = build_matrix(list(options.models), options.family, options.revision, options.dtypes,
                                   options.devices, options.convention)
        if options.worker_id is not None:
            place_on_worker_gpu(self.combos, options.worker_id)
        load_probes()
        if options.probe_modules:
            root = str(options.probe_root)
            if root not in sys.path:
                sys.path.insert(0, root)
            load_probe_modules(options.probe_modules, options.probe_modules_named_in)
        self.claims = load_claims(list(options.claim_files))
        self.options = options
        self.terminal = terminal  # a download's own progress bar is written inside it
        self.compare_with = options.compare_with
        self.previous = read_report(Path(options.compare_with))["claims"] if options.compare_with else None
        self.results: list[dict] = []
        self.recorded: set[tuple[str, str]] = set()  # (claim id, combination) of every result
        self.references: dict[tuple[str, int], Measurement] = {}  # (claim id, combination) -> its measurement
        self.cross_cases: list[ClaimCase] = []  # selected cross-combination cases
        self.sweeps: dict[int, CheckpointSweep] = {}  # combination -> its claims over checkpoints
        self.worker_runs: list[dict] = []  # under pytest-xdist, the run information of each worker that measured claims

    # -- the primary combination, for the project's own tests ---------------------------------

    @property
    def primary(self) -> Combination:
        return self.combos[0]

    @property
    def is_matrix(self) -> bool:
        return len(self.combos) > 1

    @property
    def spec(self):
        return self.primary.spec

    @property
    def device(self) -> torch.device:
        return self.primary.run_device

    @property
    def dtype(self) -> torch.dtype:
        return self.primary.dtype

    @property
    def family(self) -> str | None:
        return self.primary.family

    @property
    def convention(self) -> str:
        return self.options.convention

    def entry(self, combo: Combination) -> str:
        """How an error names the combination: only a matrix needs to."""
        return f" (matrix entry {combo.label})" if self.is_matrix else ""

    # -- the schedule: which cases, in which order, which passes ------------------------------

    def cases(self, snapshot: bool) -> list[tuple[str, ClaimCase]]:
        """(test id, case) of every claim on every combination (ids ``claim@model/dtype/device``
        in a matrix; a snapshot claim has one case per model family it lists)."""
        cases = []
        for combo in self.combos:
            suffix = f"@{combo.label}" if self.is_matrix else ""
            for claim in self.claims:
                if (claim.expect["op"] == "snapshot") != snapshot:
                    continue
                if snapshot:
                    cases += [(f"{claim.id}@{family}" + (f"#{combo.label}" if self.is_matrix else ""),
                               ClaimCase(claim, combo.index, family)) for family in claim.models]
                elif claim.across is not None:  # compared with another combination: none to compare without a matrix
                    reference = reference_index(claim, combo, self.combos)
                    if reference is not None:
                        cases.append((claim.id + suffix, ClaimCase(claim, combo.index, reference=reference)))
                else:
                    cases.append((claim.id + suffix, ClaimCase(claim, combo.index)))
        return cases

    def prepare_for(self, cases: list[ClaimCase]) -> None:
        """Locate every combination the cases need (and the primary one). Raises RunStopped."""
        needed = {index for case in cases for index in (case.combo, case.reference) if index is not None} | {0}
        for index in sorted(needed):
            self.prepare(self.combos[index])

    def applies(self, case: ClaimCase) -> bool:
        """Whether the claim was written for the family of the model its combination measures."""
        family = self.combos[case.combo].family
        return case.claim.applies_to(family) if case.family is None else case.family == family

    def probe_applies(self, probe_name: str | None) -> bool:
        """A probe's conformance test runs with a claim of the primary model's family, when one uses it."""
        used_by = [claim for claim in self.claims if claim.probe == probe_name]
        return probe_name is None or not used_by or any(claim.applies_to(self.primary.family) for claim in used_by)

    @staticmethod
    def order(case: ClaimCase) -> tuple[int, bool]:
        """Claims grouped by combination, claims over checkpoints last (they free its model)."""
        return case.combo, case.claim.checkpoints is not None

    def plan(self, cases: list[ClaimCase]) -> None:
        """Each combination keeps the passes its own and its comparisons' claims read."""
        self.cross_cases = [case for case in cases if case.reference is not None]
        for combo in self.combos:
            combo.plan([case.claim for case in cases
                        if combo.index in (case.combo, case.reference) and case.claim.checkpoints is None])
            claims = {case.claim.id: case.claim for case in cases if case.combo == combo.index and case.claim.checkpoints is not None}
            self.sweeps[combo.index] = CheckpointSweep(list(claims.values()))

    # -- locating, loading, freeing: every failure is one error for the whole run --------------

    def prepare(self, combo: Combination) -> None:
        """Find a combination's files (build, cache or download) and settle its family.

        A model that cannot be had stops the run (RunStopped) naming the matrix entry; with
        skip_missing, unavailable weights mark the combination unavailable (its tests skip)."""
        if combo.located or combo.unavailable is not None:
            return
        try:
            with self.terminal():
                combo.locate()
        except ModelUnavailable as missing:
            if not self.options.skip_missing:
                raise RunStopped(f"{missing}{self.entry(combo)}\n"
                                 "(--skip-missing-model skips the tests that need it instead)") from None
            combo.unavailable = f"needs the model's weights: {missing}"
        except ModelError as error:
            raise RunStopped(f"{error}{self.entry(combo)}") from None

    def model(self, convention: str | None = None, combo: Combination | None = None):
        """The combination's model, loaded alone in memory: every other combination's model is freed
        first (after measuring what cross-combination claims need from it). The one loading path."""
        combo = combo or self.primary
        self.prepare(combo)
        if combo.unavailable is not None:
            raise CombinationSkipped(combo.unavailable)
        if not combo.loaded:
            self.free_all(but=combo)
        try:
            return combo.measurer.load(convention or self.convention)
        except ModelError as error:
            raise RunStopped(f"{error}{self.entry(combo)}") from None

    def free_all(self, but: Combination | None = None) -> None:
        """Free every combination's model but ``but``'s, after measuring what cross-combination
        claims need from it (so that it is not loaded again)."""
        for other in self.combos:
            if other is not but and other.loaded:
                self._capture_references(other)
                other.free()

    def _capture_references(self, combo: Combination) -> None:
        for case in self.cross_cases:
            key = (case.claim.id, combo.index)
            if case.reference == combo.index and key not in self.references:
                try:
                    self.references[key] = combo.measurer.measure(case.claim)
                except (ProbeInputError, ResourceUnavailable, ModelError, FloatingPointError):
                    pass  # measured again, with its error, in the claim's own test

    # -- measuring ---------------------------------------------------------------------------

    def measure(self, claim: Claim, combo: Combination | None = None) -> Measurement:
        """The claim's measurement on a combination (the primary one by default)."""
        combo = combo or self.primary
        measurer = combo.measurer
        self.model(combo=combo)
        try:
            measurement = measurer.measure(claim)
        except ModelError as error:  # a weight convention loaded on first use failed
            raise RunStopped(f"{error}{self.entry(combo)}") from None
        if problem := json_ready_problem(measurement.value):
            raise ProbeOutputError(f"probe {claim.probe!r} returned a value the reports cannot hold: {problem}; a value "
                                   f"is a number, a string, a boolean, or lists and dicts of them")
        return measurement

    def measure_case(self, case: ClaimCase) -> tuple[Measurement, torch.dtype, float | None]:
        """(measurement, dtype and magnitude to check it with) of any case: plain, across, over checkpoints."""
        combo = self.combos[case.combo]
        if case.reference is not None:
            return self._measure_across(case)
        if case.claim.checkpoints is not None:
            return self._measure_over_checkpoints(case), combo.dtype, None
        measurement = self._measure_or_fail(case.claim, combo)
        return measurement, combo.dtype, measurement.details.get("magnitude")

    def _measure_or_fail(self, claim: Claim, combo: Combination, reference: bool = False) -> Measurement:
        try:
            return self._reference(claim, combo) if reference else self.measure(claim, combo)
        except (ProbeInputError, NonFiniteLogits) as error:
            raise ClaimUnmeasured(f"claim {claim.id} ({claim.file} #{claim.row}): {type(error).__name__}: {error}") from None

    def _reference(self, claim: Claim, combo: Combination) -> Measurement:
        """The measurement a cross-combination claim compares with, on ``combo`` (measured once)."""
        key = (claim.id, combo.index)
        if key not in self.references:
            self.references[key] = self.measure(claim, combo)
        return self.references[key]

    def _measure_across(self, case: ClaimCase) -> tuple[Measurement, torch.dtype, float | None]:
        """A cross-combination claim: the largest |difference| between this combination's value and
        the reference combination's, with the looser dtype of the two and the reference's magnitude."""
        combo, reference_combo = self.combos[case.combo], self.combos[case.reference]
        reference = self._measure_or_fail(case.claim, reference_combo, reference=True)
        here = self._measure_or_fail(case.claim, combo)
        ours, theirs = (torch.as_tensor(m.value, dtype=torch.float64).cpu() for m in (here, reference))
        if ours.shape != theirs.shape:
            raise ClaimUnmeasured(f"claim {case.claim.id}: values of shape {list(ours.shape)} and {list(theirs.shape)} cannot be compared")
        difference = float((ours - theirs).abs().max()) if ours.numel() else 0.0
        if not (torch.isfinite(ours).all() and torch.isfinite(theirs).all()):
            difference = float("inf")
        looser = max((combo.dtype, reference_combo.dtype), key=lambda dtype: torch.finfo(dtype).eps)
        magnitude = reference.details.get("magnitude")
        details = {"reference": reference_combo.label, "compared_in": dtype_name(looser),
                   "magnitude": magnitude, "elements": ours.numel()}
        return Measurement(value=difference, details=details), looser, magnitude

    def _measure_over_checkpoints(self, case: ClaimCase) -> Measurement:
        """A claim over training checkpoints: the value ``at`` picks from its value at each checkpoint;
        the series is kept for the report's plot, the last checkpoint's pictures too."""
        claim = case.claim
        try:
            series = self.over_checkpoints(claim, self.combos[case.combo])
        except ProbeInputError as error:
            raise ClaimUnmeasured(f"claim {claim.id} ({claim.file} #{claim.row}): {error}") from None
        values = [measurement.value for _, measurement in series]
        last = series[-1][1]
        details = {"at": claim.at, "series": [[name, m.value] for name, m in series],
                   **{f"last: {key}": value for key, value in last.details.items() if key != "all_heads"}}
        return Measurement(value=at_checkpoints(values, claim.at, claim.expect["op"]), details=details, pictures=last.pictures)

    def over_checkpoints(self, claim: Claim, combo: Combination) -> list[tuple[str, Measurement]]:
        """(checkpoint name, Measurement) of a claim on each of its checkpoints (``CheckpointSweep``):
        the combination's files are located, every model in memory is freed first."""
        self.prepare(combo)  # its files, not its model: the checkpoints are other models
        if combo.unavailable is not None:
            raise CombinationSkipped(combo.unavailable)
        sweep = self.sweeps.setdefault(combo.index, CheckpointSweep())
        try:
            return sweep.measure(claim, combo, free_memory=self.free_all)
        except ModelError as error:
            raise RunStopped(f"{error}{self.entry(combo)}") from None

    # -- recording -----------------------------------------------------------------------------

    def record(self, case: ClaimCase, measurement: Measurement, passed: bool, threshold: str, margin,
               reason: str | None = None) -> dict:
        combo = self.combos[case.combo]
        return self._keep(result_record(
            case.claim, combo.label, "passed" if passed else "failed", reason, passed=passed, value=measurement.value,
            threshold=threshold, margin=margin, details=measurement.details,
            seconds=round(combo.measurer.last_seconds, 4), pictures=[vars(p) for p in measurement.pictures]))

    def record_unmeasured(self, case: ClaimCase, outcome: str, reason: str) -> dict | None:
        """A case that ended without a verdict keeps its row (once: None when it has one already)."""
        combo = self.combos[case.combo]
        if (case.claim.id, combo.label) in self.recorded:
            return None
        return self._keep(unmeasured_record(case.claim, combo.label, outcome, reason))

    def _keep(self, result: dict) -> dict:
        self.results.append(result)
        self.recorded.add((result["id"], result["combination"]))
        return result

    def run_info(self, combo: Combination | None = None) -> dict:
        if all(not c.located for c in self.combos) and self.worker_runs:  # the xdist controller loaded no model
            return merge_worker_runs(self.worker_runs)
        combo = combo or self.primary
        sweep = self.sweeps.get(combo.index)
        return run_info(combo, sweep.work if sweep is not None else None)

    # -- what the terminal and the report files show -------------------------------------------

    def header_lines(self) -> list[str]:
        lines = []
        for combo in self.combos:
            where = f" at revision {combo.spec.revision}" if combo.spec.revision else ""
            lines.append(f"interp-claims: model {combo.spec.name}{where}, {combo.device}, "
                         f"{dtype_name(combo.dtype)}, {self.convention} weights")
        builtin = sum(map(is_builtin, self.claims))
        lines.append(f"interp-claims: {builtin} built-in claims ({BUILTIN_CLAIMS_DIR}), {len(self.claims) - builtin} of yours")
        for axis, example in (("dtype", "--dtype float32,bfloat16"), ("device", "--device cpu,cuda")):
            idle = [claim.id for claim in self.claims if claim.across == axis]
            if idle and len({getattr(combo, axis) for combo in self.combos}) < 2:
                lines.append(f"interp-claims: {len(idle)} claim(s) compare {axis}s and run with several ({example}): {', '.join(idle)}")
        return lines

    def summary_lines(self, report_path: Path | None) -> list[str]:
        """The claims section of the terminal summary: per combination, then the comparison."""
        lines = []
        by_combination = group_by_combination(self.results)
        for combo in self.combos:
            results = by_combination.get(combo.label) or (self.results if not self.is_matrix else [])
            if results:
                run = self.run_info(combo) if not self.worker_runs else self.run_info()
                lines += summary_lines(run, results)
        if self.previous is not None:
            lines += comparison_lines(compare(self.previous, self.results), self.compare_with,
                                      warning=model_warning(self.previous, self.results))
        if report_path:
            extra = " and one report per combination" if self.is_matrix else ""
            lines.append(f"claims report: {report_path} (+ .md, .html){extra}")
        return lines

    def write_reports(self, path: Path) -> None:
        """The report (JSON, Markdown, HTML); in a matrix one per combination, then the view across them."""
        comparison = None
        if self.previous is not None:
            comparison = {"source": self.compare_with, "rows": compare(self.previous, self.results)}
        if not self.is_matrix:
            write_reports(path, self.run_info(), self.results, comparison)
            return
        reports = []
        by_combination = group_by_combination(self.results)
        for combo in self.combos:
            slug = combo.label.replace("/", "-").replace(":", "_")
            run, results = self.run_info(combo), by_combination.get(combo.label, [])
            write_reports(path.with_name(f"{path.stem}-{slug}{path.suffix}"), run, results)
            reports.append({"run": run, "claims": results})
        write_merged(path, reports)

    # -- pytest-xdist: workers measure, the controller reports ---------------------------------

    def worker_output(self) -> dict:
        return {"run": self.run_info() if self.results else None, "results": self.results}

    def take_worker_output(self, data: dict) -> None:
        self.results.extend(data["results"])
        if data["run"] is not None:
            self.worker_runs.append(data["run"])

    def machine_info(self) -> dict:
        """Where a benchmark's timing came from: device, dtype, model and its commit, library versions."""
        primary = self.primary
        return {
            "model": primary.spec.name,
            "commit": primary.source.commit if primary.source else None,
            "device": str(self.device),
            "gpu": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None,
            "dtype": str(self.dtype),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
        }
