"""The shared forward passes that every claim on the same input reuses, and what a probe sees
(``ProbeContext``). Inputs are ``interp_claims.inputs``."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp_claims.inputs import InputSpec, mixed_repeat_tokens, repeated_random_tokens
from interp_claims.measurement import ProbeInputError
from interp_claims.models import LoadedModel


@dataclass
class ForwardStats:
    passes: int = 0
    seconds: float = 0.0


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class ForwardResult:
    logits: Tensor
    cache: dict[str, Tensor]
    names: frozenset[str]  # the hooks kept
    finite: bool  # every logit finite (checked once per pass)


class ForwardRunner:
    """Runs each distinct input once, keeping the union of the activations its claims need."""

    def __init__(self, model: LoadedModel):
        self.model = model
        self.stats = ForwardStats()
        self._planned: dict[str, set[str]] = {}
        self._results: dict[str, ForwardResult] = {}
        self._tokens: dict[str, Tensor] = {}
        self._spans: dict[str, list[tuple[int, int]]] = {}
        self._derived: dict[tuple, Any] = {}

    def plan(self, spec: InputSpec, hooks: tuple[str, ...]) -> None:
        """Announce that a claim will read ``hooks`` on ``spec`` (called at collection time)."""
        for variant in spec.variants:
            self._planned.setdefault(variant.key, set()).update(hooks)

    def tokens(self, spec: InputSpec) -> Int[Tensor, "batch pos"]:
        if spec.key not in self._tokens:
            self._tokens[spec.key] = self._make_tokens(spec)
        return self._tokens[spec.key]

    def spans(self, spec: InputSpec) -> list[tuple[int, int]]:
        """(start, stop) of each row's real tokens: everything for random tokens, the prompt's own
        tokens (BOS included where prepended) for texts, after the padding or before it."""
        if spec.key not in self._spans:
            tokens = self.tokens(spec)
            if spec.repeated_random is not None:
                spans = [(0, tokens.shape[1])] * tokens.shape[0]
            else:
                lengths = [len(self.model.bridge.to_tokens(text, prepend_bos=spec.prepend_bos)[0]) for text in spec.texts]
                width = tokens.shape[1]
                spans = [(width - n, width) if spec.masked else (0, n) for n in lengths]
            self._spans[spec.key] = spans
        return self._spans[spec.key]

    def attention_mask(self, spec: InputSpec) -> Int[Tensor, "batch pos"] | None:
        """1 on real tokens, 0 on padding, for a left-padded input; None otherwise (right padding
        cannot reach a real position through causal attention, so it runs without one, as
        TransformerLens does)."""
        if not spec.masked:
            return None
        tokens = self.tokens(spec)
        mask = torch.zeros_like(tokens)
        for row, (start, stop) in enumerate(self.spans(spec)):
            mask[row, start:stop] = 1
        return mask

    def _make_tokens(self, spec: InputSpec) -> Int[Tensor, "batch pos"]:
        bridge, cfg = self.model.bridge, self.model.cfg
        if spec.repeated_random is not None:
            seq_len, batch, seed = spec.repeated_random
            if seq_len < 2 or batch < 1:
                raise ProbeInputError(f"repeated_random needs seq_len >= 2 and batch >= 1, got {spec.repeated_random}")
            if spec.token_range is not None and spec.token_range[1] > cfg.d_vocab:
                raise ProbeInputError(f"token_range {list(spec.token_range)} reaches past the vocabulary of {cfg.d_vocab} ids")
            if spec.length_range is not None:
                tokens = mixed_repeat_tokens(cfg.d_vocab, bridge.tokenizer.bos_token_id, *spec.length_range, batch, seed,
                                             spec.prepend_bos, spec.token_range)
            else:
                tokens = repeated_random_tokens(cfg.d_vocab, bridge.tokenizer.bos_token_id, seq_len, batch, seed,
                                                spec.prepend_bos, spec.token_range)
        else:
            if not spec.texts:
                raise ProbeInputError("no prompt given: an input needs `text`, `texts` or `repeated_random`")
            for text in spec.texts:
                if not isinstance(text, str) or not text:
                    raise ProbeInputError(f"empty prompt {text!r}: a prompt must be a non-empty string")
                ids = bridge.tokenizer.encode(text, add_special_tokens=False)
                if all(i == bridge.tokenizer.unk_token_id for i in ids):
                    raise ProbeInputError(f"prompt {text[:60]!r} encodes to no known tokens with this model's tokenizer "
                                          f"({type(bridge.tokenizer).__name__}, {cfg.d_vocab} ids): is the claim written "
                                          f"for a model with another vocabulary?")
            tokens = bridge.to_tokens(list(spec.texts), prepend_bos=spec.prepend_bos, truncate=False,
                                      padding_side=spec.padding)
        if tokens.shape[-1] > cfg.n_ctx:
            raise ProbeInputError(
                f"prompt of {tokens.shape[-1]} tokens (BOS included) is longer than the model's "
                f"context of {cfg.n_ctx} tokens"
            )
        return tokens.to(self.model.device)

    def run(
        self, spec: InputSpec, hooks: tuple[str, ...] = (), check_finite: bool = True
    ) -> tuple[Float[Tensor, "batch pos d_vocab"], dict[str, Tensor]]:
        needed = self._planned.setdefault(spec.key, set())
        needed.update(hooks)
        cached = self._results.get(spec.key)
        if cached is None or not needed <= cached.names:
            names = frozenset(needed)
            tokens, mask = self.tokens(spec), self.attention_mask(spec)
            masked = {} if mask is None else {"attention_mask": mask}
            logits, cache = self.timed(
                lambda: self.model.bridge.run_with_cache(tokens, names_filter=lambda n: n.endswith(tuple(names)), **masked)
            )
            cached = ForwardResult(logits, dict(cache.items()), names, all_finite(logits))
            self._results[spec.key] = cached
        if check_finite and not cached.finite:
            check_finite_logits(cached.logits, spec)
        return cached.logits, cached.cache

    def drop(self, key: str) -> None:
        """Forget the pass of the input with ``key`` (its logits, activations and derived values)."""
        self._results.pop(key, None)
        for derived_key in [k for k in self._derived if k[0] == key]:
            del self._derived[derived_key]

    @property
    def held(self) -> list[str]:
        """The keys of the inputs whose passes are cached."""
        return list(self._results)

    def derived(self, spec: InputSpec, name: str, compute: Callable[[], Any]) -> Any:
        """A quantity computed from ``spec``'s pass (every head's score, say), computed once and
        shared by every claim that reads it; dropped with the pass."""
        key = (spec.key, name)
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]

    def from_weights(self, name: str, compute: Callable[[], Any]) -> Any:
        """A quantity computed from the weights alone (a product over the vocabulary, say),
        computed once and shared by every claim on this model; freed with the model."""
        key = (None, name)
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]

    def timed(self, forward: Callable[[], Any]) -> Any:
        """Run one forward pass under ``torch.no_grad``, timing it (CUDA synchronised)."""
        synchronize(self.model.device)
        start = time.perf_counter()
        with torch.no_grad():
            result = forward()
        synchronize(self.model.device)
        self.stats.seconds += time.perf_counter() - start
        self.stats.passes += 1
        return result


def all_finite(logits: Tensor) -> bool:
    """Whether every logit is finite: one float32 sum first (NaN or inf anywhere makes it
    non-finite; finite logits cannot overflow it), the element-wise check only when it is not."""
    return bool(torch.isfinite(logits.sum(dtype=torch.float32))) or bool(torch.isfinite(logits).all())


class NonFiniteLogits(FloatingPointError):
    pass


def check_finite_logits(logits: Tensor, spec: InputSpec) -> None:
    bad = ~torch.isfinite(logits)
    if bad.any():
        positions = bad.any(dim=-1).nonzero().tolist()
        raise NonFiniteLogits(
            f"the model returned NaN or inf logits at {int(bad.sum())} entries, "
            f"(batch, position) {positions[:5]}{' ...' if len(positions) > 5 else ''}, on input {spec.key[:120]}"
        )


@dataclass
class ProbeContext:
    """What a probe sees: the model, the claim's input, and the shared forward passes."""

    model: LoadedModel
    runner: ForwardRunner
    input: InputSpec | None = None
    hooks: tuple[str, ...] = ()
    other_convention: Callable[[str], "ProbeContext"] | None = field(default=None, repr=False)

    @property
    def bridge(self):
        return self.model.bridge

    def tokens(self) -> Int[Tensor, "batch pos"]:
        return self.runner.tokens(self._require_input())

    def spans(self) -> list[tuple[int, int]]:
        """(start, stop) of each row's real tokens (see ``ForwardRunner.spans``)."""
        return self.runner.spans(self._require_input())

    def forward(self, check_finite: bool = True) -> tuple[Float[Tensor, "batch pos d_vocab"], dict[str, Tensor]]:
        return self.runner.run(self._require_input(), self.hooks, check_finite=check_finite)

    def from_weights(self, name: str, compute: Callable[[], Any]) -> Any:
        """See ``ForwardRunner.from_weights``: computed once per loaded model."""
        return self.runner.from_weights(name, compute)

    def each_input(self) -> list["ProbeContext"]:
        """One context per variant of the claim's input (its other lags): for claims that must hold on each."""
        return [
            ProbeContext(self.model, self.runner, variant, self.hooks, self.other_convention)
            for variant in self._require_input().variants
        ]

    def with_weights(self, weights: str) -> "ProbeContext":
        """The same claim on the model loaded in another weight convention ("raw"/"processed")."""
        from interp_claims.models import WEIGHT_CONVENTIONS

        if weights not in WEIGHT_CONVENTIONS:
            raise ProbeInputError(f"weights {weights!r} is not a convention. Valid: {', '.join(WEIGHT_CONVENTIONS)}.")
        if weights == self.model.convention:
            return self
        if self.other_convention is None:
            raise ProbeInputError(f"no {weights!r} variant of the model is available here")
        other = self.other_convention(weights)
        if self.input is not None:
            other.runner.plan(self.input, self.hooks)
        return ProbeContext(other.model, other.runner, self.input, self.hooks, self.other_convention)

    def _require_input(self) -> InputSpec:
        if self.input is None:
            raise ProbeInputError("this probe needs an input (text, texts or repeated_random) in its claim")
        return self.input
