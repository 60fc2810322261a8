"""One model on one device and dtype, measured claim by claim: no pytest here.

The run engine (``interp_claims.run``) measures its claims through one ``Measurer`` per
combination of the matrix (and one per training checkpoint), and so does the decoy zoo
(``interp_claims.zoo``), which measures the same claims on models built to fake them.
"""

import gc
import time
from contextlib import contextmanager

import torch

from interp_claims.claims import Claim
from interp_claims.context import ForwardRunner, ProbeContext
from interp_claims.measurement import Measurement
from interp_claims.models import LoadedModel, ModelSource, ModelSpec, load_model, pin_precision
from interp_claims.registry import get_probe


class Measurer:
    """Loads the model once per weight convention ("raw", "processed") on first use, and runs
    every claim on the same input through one shared forward pass per convention.

    ``source`` (the folder to boot) may be set after construction: a combination of the matrix
    owns its measurer before its files are located."""

    def __init__(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype, convention: str,
                 source: ModelSource | None = None):
        self.spec, self.device, self.dtype, self.convention, self.source = spec, device, dtype, convention, source
        self.precision = pin_precision(dtype, device)  # recorded in the report's run information
        self.loaded: dict[str, LoadedModel] = {}  # weight convention -> the booted model
        self.runners: dict[str, ForwardRunner] = {}
        self.planned: list[Claim] = []
        self.remaining: dict[tuple[str, str], int] = {}  # (convention, input key) -> planned claims not yet measured
        self.freed_passes, self.freed_seconds = 0, 0.0  # passes of runners dropped by close()
        self.load_seconds = 0.0
        self.claim_seconds = 0.0
        self.last_seconds = 0.0

    def load(self, convention: str | None = None) -> LoadedModel:
        """The model in a weight convention, booted on first use. Raises ModelError."""
        convention = convention or self.convention
        if convention not in self.loaded:
            start = time.perf_counter()
            model = load_model(self.spec, self.device, self.dtype, convention, self.source)
            self.load_seconds += time.perf_counter() - start
            self.loaded[convention] = model
            self.runners[convention] = ForwardRunner(model)
            for claim in self.planned:
                self._plan(claim, convention)
        return self.loaded[convention]

    @property
    def is_loaded(self) -> bool:
        return bool(self.loaded)

    def sharing_models(self) -> "Measurer":
        """A new measurer over the same booted models, with no forward pass cached and nothing planned."""
        twin = Measurer(self.spec, self.device, self.dtype, self.convention, self.source)
        twin.loaded = dict(self.loaded)
        twin.runners = {convention: ForwardRunner(model) for convention, model in twin.loaded.items()}
        return twin

    def plan(self, claims: list[Claim]) -> None:
        """Claims that will run: each input gets one forward pass keeping every hook they need,
        kept until the last of them has been measured."""
        self.planned = list(claims)
        self.remaining: dict[tuple[str, str], int] = {}
        for claim in self.planned:
            for key in self._pass_keys(claim):
                self.remaining[key] = self.remaining.get(key, 0) + 1
        for convention in self.runners:
            for claim in self.planned:
                self._plan(claim, convention)

    def _pass_keys(self, claim: Claim) -> list[tuple[str, str]]:
        """(convention, input key) of each planned pass the claim reads."""
        if claim.input is None or not get_probe(claim.probe).needs_forward:
            return []
        convention = claim.params.get("weights", self.convention)
        return [(convention, variant.key) for variant in claim.input.variants]

    def _release(self, claim: Claim) -> None:
        """Drop the passes that no claim still to be measured reads (their logits and activations)."""
        for key in self._pass_keys(claim):
            if key in self.remaining:
                self.remaining[key] -= 1
                if self.remaining[key] <= 0:
                    del self.remaining[key]
                    convention, input_key = key
                    if convention in self.runners:
                        self.runners[convention].drop(input_key)

    def _plan(self, claim: Claim, convention: str) -> None:
        probe = get_probe(claim.probe)
        if claim.input is not None and probe.needs_forward and claim.params.get("weights", self.convention) == convention:
            self.runners[convention].plan(claim.input, probe.hooks)

    def context(self, claim: Claim) -> ProbeContext:
        model = self.load()
        probe = get_probe(claim.probe)

        def other_convention(convention: str) -> ProbeContext:
            return ProbeContext(self.load(convention), self.runners[convention])

        return ProbeContext(model, self.runners[self.convention], claim.input, probe.hooks or (), other_convention)

    def measure(self, claim: Claim) -> Measurement:
        """The claim's measurement; a model variant loaded on the way counts as load time, not claim time."""
        ctx = self.context(claim)
        start, loading = time.perf_counter(), self.load_seconds
        try:
            return get_probe(claim.probe).function(ctx, **claim.params)
        finally:
            self.last_seconds = time.perf_counter() - start - (self.load_seconds - loading)
            self.claim_seconds += self.last_seconds
            self._release(claim)

    @property
    def forward_stats(self) -> tuple[int, float]:
        return (
            self.freed_passes + sum(r.stats.passes for r in self.runners.values()),
            self.freed_seconds + sum(r.stats.seconds for r in self.runners.values()),
        )

    @contextmanager
    def fresh_passes(self):
        """Within the block, no cached forward pass is reused (the models stay); after it, the
        session's own passes are back (the block's passes still count in ``forward_stats``).
        For measuring the same claim from independent passes."""
        kept = dict(self.runners)
        try:
            for convention, model in self.loaded.items():
                self.runners[convention] = ForwardRunner(model)
            yield
        finally:
            for convention, runner in self.runners.items():
                if convention in kept and runner is not kept[convention]:  # replaced by the kept one below
                    self.freed_passes += runner.stats.passes
                    self.freed_seconds += runner.stats.seconds
            self.runners.update(kept)

    def close(self) -> None:
        """Free the models and their cached passes, and give their memory back (the matrix, the
        checkpoints and the zoo load one model after another); they load again if needed."""
        if not self.loaded and not self.runners:
            return
        self.freed_passes, self.freed_seconds = self.forward_stats
        self.loaded.clear()
        self.runners.clear()
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
