"""One model on one device and dtype, measured claim by claim: no pytest here.

The pytest plugin runs its claims through a ``ModelSession``, and so does the decoy zoo
(``interp_claims.zoo``), which measures the same claims on models built to fake them.
"""

import time
from contextlib import contextmanager

import torch

from interp_claims.claims import Claim
from interp_claims.context import ForwardRunner, ProbeContext
from interp_claims.measurement import Measurement
from interp_claims.models import LoadedModel, ModelSource, ModelSpec, load_model, pin_precision
from interp_claims.registry import get_probe


class ModelSession:
    """Loads the model once per weight convention ("raw", "processed") on first use, and runs
    every claim on the same input through one shared forward pass per convention."""

    def __init__(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype, weights: str, source: ModelSource):
        self.spec, self.device, self.dtype, self.weights, self.source = spec, device, dtype, weights, source
        self.precision = pin_precision(dtype, device)  # recorded in the report's run information
        self.models: dict[str, LoadedModel] = {}
        self.runners: dict[str, ForwardRunner] = {}
        self.planned: list[Claim] = []
        self.remaining: dict[tuple[str, str], int] = {}  # (weights, input key) -> planned claims not yet measured
        self.freed_passes, self.freed_seconds = 0, 0.0  # passes of runners dropped by close()
        self.load_seconds = 0.0
        self.claim_seconds = 0.0
        self.last_seconds = 0.0

    def load(self, weights: str | None = None) -> LoadedModel:
        """The model in a weight convention, booted on first use. Raises ModelError."""
        weights = weights or self.weights
        if weights not in self.models:
            start = time.perf_counter()
            model = load_model(self.spec, self.device, self.dtype, weights, self.source)
            self.load_seconds += time.perf_counter() - start
            self.models[weights] = model
            self.runners[weights] = ForwardRunner(model)
            for claim in self.planned:
                self._plan(claim, weights)
        return self.models[weights]

    def plan(self, claims: list[Claim]) -> None:
        """Claims that will run: each input gets one forward pass keeping every hook they need,
        kept until the last of them has been measured."""
        self.planned = list(claims)
        self.remaining: dict[tuple[str, str], int] = {}
        for claim in self.planned:
            for key in self._pass_keys(claim):
                self.remaining[key] = self.remaining.get(key, 0) + 1
        for weights in self.runners:
            for claim in self.planned:
                self._plan(claim, weights)

    def _pass_keys(self, claim: Claim) -> list[tuple[str, str]]:
        """(weights, input key) of each planned pass the claim reads."""
        if claim.input is None or not get_probe(claim.probe).needs_forward:
            return []
        weights = claim.params.get("weights", self.weights)
        return [(weights, variant.key) for variant in claim.input.variants]

    def _release(self, claim: Claim) -> None:
        """Drop the passes that no claim still to be measured reads (their logits and activations)."""
        for key in self._pass_keys(claim):
            if key in self.remaining:
                self.remaining[key] -= 1
                if self.remaining[key] <= 0:
                    del self.remaining[key]
                    weights, input_key = key
                    if weights in self.runners:
                        self.runners[weights].drop(input_key)

    def _plan(self, claim: Claim, weights: str) -> None:
        probe = get_probe(claim.probe)
        if claim.input is not None and probe.needs_forward and claim.params.get("weights", self.weights) == weights:
            self.runners[weights].plan(claim.input, probe.hooks)

    def context(self, claim: Claim) -> ProbeContext:
        model = self.load()
        probe = get_probe(claim.probe)

        def other_weights(weights: str) -> ProbeContext:
            return ProbeContext(self.load(weights), self.runners[weights])

        return ProbeContext(model, self.runners[self.weights], claim.input, probe.hooks or (), other_weights)

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
            for weights, model in self.models.items():
                self.runners[weights] = ForwardRunner(model)
            yield
        finally:
            for weights, runner in self.runners.items():
                if weights in kept and runner is not kept[weights]:  # replaced by the kept one below
                    self.freed_passes += runner.stats.passes
                    self.freed_seconds += runner.stats.seconds
            self.runners.update(kept)

    def close(self) -> None:
        """Free the models and their cached passes (the zoo and the matrix load one model after another)."""
        self.freed_passes, self.freed_seconds = self.forward_stats
        self.models.clear()
        self.runners.clear()
