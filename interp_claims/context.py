"""Inputs, and the shared forward passes that every claim on the same input reuses."""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp_claims.measurement import ProbeInputError
from interp_claims.models import LoadedModel


@dataclass(frozen=True)
class InputSpec:
    """What to feed the model: prompts (BOS prepended), or seeded repeated random tokens.

    Repeated random tokens come in two forms. ``seq_len = { low = 16, high = 63 }`` gives every
    row its own repeat length, drawn without replacement from low..high with the claim's seed:
    ``[BOS, R_i, R_i, F_i]`` (F_i fresh random tokens filling the row to ``1 + 2 * high``), so no
    fixed offset, nor any attention that depends on positions alone, lands on a content-defined
    target in more than a few rows (``probes/heads.py`` reports the best any positional head can
    score). ``seq_len = 50`` or a list gives one length per input; ``alternatives`` are the same
    input at the other lengths of the list, each measured on its own."""

    texts: tuple[str, ...] = ()
    repeated_random: tuple[int, int, int] | None = None  # (seq_len, batch, seed); seq_len = high for mixed lengths
    alternatives: tuple["InputSpec", ...] = ()
    prepend_bos: bool = True  # false: texts as the tokenizer encodes them; random tokens as [R, R]
    token_range: tuple[int, int] | None = None  # repeated_random: ids drawn from [low, high) (default: all but BOS)
    length_range: tuple[int, int] | None = None  # repeated_random: each row's repeat length from low..high (mixed)
    padding: str = "right"  # texts of different lengths: "left" pads before each prompt and runs with a mask

    @property
    def masked(self) -> bool:
        """Left padding: the pass needs an attention mask (and positions derived from it)."""
        return self.padding == "left"

    @property
    def key(self) -> str:  # the alternatives are inputs of their own, with their own passes
        extra = {"token_range": list(self.token_range)} if self.token_range else {}
        if self.length_range:
            extra["lengths"] = list(self.length_range)
        if self.masked:
            extra["padding"] = "left"
        return json.dumps({"texts": self.texts, "repeated_random": self.repeated_random, "bos": self.prepend_bos, **extra})

    @property
    def variants(self) -> tuple["InputSpec", ...]:
        """This input and its alternatives."""
        return (self, *self.alternatives)

    @property
    def label(self) -> str:
        """How reports name a repeated-random input: "seq_len 50" or "lengths 16-63 (24 rows)"."""
        if self.repeated_random is None:
            return self.key[:80]
        if self.length_range:
            return f"lengths {self.length_range[0]}-{self.length_range[1]} ({self.repeated_random[1]} rows)"
        return f"seq_len {self.repeated_random[0]}"

    def row_lengths(self) -> list[int]:
        """The repeat length of each row (all ``seq_len`` unless the lengths are mixed)."""
        if self.repeated_random is None:
            raise ProbeInputError("only `repeated_random` inputs have repeat lengths")
        seq_len, batch, seed = self.repeated_random
        if self.length_range is None:
            return [seq_len] * batch
        return mixed_lengths(*self.length_range, batch, seed)

    @staticmethod
    def from_table(table: dict[str, Any]) -> "InputSpec":
        """From a claim's ``input`` table: ``text``, ``texts`` or ``repeated_random`` (``seq_len``,
        ``batch``, ``seed``; optional ``bos = false`` for [R, R] and ``token_range = [low, high]``,
        TransformerLens's Exploratory demo draws ``torch.randint(100, 20000)``)."""
        if "repeated_random" in table:
            rr = table["repeated_random"]
            unknown = set(rr) - {"seq_len", "batch", "seed", "bos", "token_range"}
            if unknown:
                raise ValueError(f"repeated_random takes seq_len, batch, seed, bos, token_range; not {', '.join(sorted(unknown))}")
            bos = rr.get("bos", True)
            if not isinstance(bos, bool):
                raise ValueError(f"bos must be true or false, got {bos!r}")
            token_range = rr.get("token_range")
            if token_range is not None:
                if (not isinstance(token_range, list) or len(token_range) != 2
                        or not all(isinstance(v, int) and not isinstance(v, bool) for v in token_range)
                        or not 0 <= token_range[0] < token_range[1]):
                    raise ValueError(f"token_range must be [low, high] with 0 <= low < high (ids low..high-1), got {token_range!r}")
                token_range = tuple(token_range)
            batch, seed = int(rr["batch"]), int(rr["seed"])
            if isinstance(rr["seq_len"], dict):
                low, high = mixed_length_range(rr["seq_len"], batch)
                return InputSpec(repeated_random=(high, batch, seed), prepend_bos=bos, token_range=token_range,
                                 length_range=(low, high))
            lengths = rr["seq_len"] if isinstance(rr["seq_len"], list) else [rr["seq_len"]]
            if not lengths or len(set(lengths)) != len(lengths):
                raise ValueError(f"seq_len must be a number, a list of distinct numbers or {{ low, high }}, got {rr['seq_len']!r}")
            specs = [InputSpec(repeated_random=(int(n), batch, seed), prepend_bos=bos, token_range=token_range)
                     for n in lengths]
            return replace(specs[0], alternatives=tuple(specs[1:]))
        prepend_bos = table.get("prepend_bos", True)
        if not isinstance(prepend_bos, bool):
            raise ValueError(f"prepend_bos must be true or false, got {prepend_bos!r}")
        padding = table.get("padding", "right")
        if padding not in PADDING_SIDES:
            raise ValueError(f"padding must be one of {', '.join(map(repr, PADDING_SIDES))}, got {padding!r}")
        if "text" in table:
            if not isinstance(table["text"], str):
                raise ValueError(f"text must be a string (one prompt), got {table['text']!r}")
            return InputSpec(texts=(table["text"],), prepend_bos=prepend_bos, padding=padding)
        texts = table["texts"]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"texts must be a list of strings (one prompt each), got {texts!r}; one prompt is `text = \"...\"`")
        return InputSpec(texts=tuple(texts), prepend_bos=prepend_bos, padding=padding)


PADDING_SIDES = ("right", "left")


def mixed_length_range(table: Any, batch: int) -> tuple[int, int]:
    """``seq_len = { low, high }``, checked: enough distinct lengths for every row."""
    if set(table) != {"low", "high"} or not all(isinstance(table[k], int) and not isinstance(table[k], bool) for k in table):
        raise ValueError(f"mixed lengths are seq_len = {{ low = 16, high = 63 }} (two whole numbers), got {table!r}")
    low, high = table["low"], table["high"]
    if not 2 <= low <= high:
        raise ValueError(f"seq_len {{ low = {low}, high = {high} }}: need 2 <= low <= high")
    if high - low + 1 < batch:
        raise ValueError(
            f"seq_len {{ low = {low}, high = {high} }} has {high - low + 1} lengths for {batch} rows: every row needs its own "
            f"length (raise high or lower batch)"
        )
    return low, high


def mixed_lengths(low: int, high: int, batch: int, seed: int) -> list[int]:
    """``batch`` distinct repeat lengths from low..high, the first draw of a generator seeded ``seed``."""
    return draw_lengths(low, high, batch, torch.Generator().manual_seed(seed))


def draw_lengths(low: int, high: int, batch: int, generator: torch.Generator) -> list[int]:
    return (low + torch.randperm(high - low + 1, generator=generator)[:batch]).tolist()


def mixed_repeat_tokens(
    d_vocab: int, bos_id: int, low: int, high: int, batch: int, seed: int,
    prepend_bos: bool = True, token_range: tuple[int, int] | None = None,
) -> Int[Tensor, "batch pos"]:
    """Row i is ``[BOS, R_i, R_i, F_i]``: R_i of length ``mixed_lengths(...)[i]``, F_i fresh tokens up to
    ``2 * high`` after BOS; every id drawn like ``repeated_random_tokens``'s (one generator, seeded)."""
    generator = torch.Generator().manual_seed(seed)
    lengths = draw_lengths(low, high, batch, generator)  # first, as mixed_lengths draws them; the ids after
    ids = draw_ids(d_vocab, bos_id, (batch, 2 * high), generator, token_range)
    for row, length in enumerate(lengths):
        ids[row, length : 2 * length] = ids[row, :length]
    if not prepend_bos:
        return ids
    return torch.cat([torch.full((batch, 1), bos_id, dtype=torch.long), ids], dim=1)


def draw_ids(d_vocab: int, bos_id: int, shape: tuple[int, int], generator: torch.Generator,
             token_range: tuple[int, int] | None) -> Int[Tensor, "batch pos"]:
    """Uniform ids from ``token_range`` (``torch.randint(low, high)``), else from the vocabulary but BOS."""
    if token_range is not None:
        return torch.randint(token_range[0], token_range[1], shape, generator=generator)
    ids = torch.randint(0, d_vocab - 1, shape, generator=generator)
    ids[ids >= bos_id] += 1  # skip the BOS id, keep the draw uniform over the rest
    return ids


def repeated_random_tokens(
    d_vocab: int, bos_id: int, seq_len: int, batch: int, seed: int,
    prepend_bos: bool = True, token_range: tuple[int, int] | None = None,
) -> Int[Tensor, "batch pos"]:
    """``[BOS, R, R]`` with R uniform over the vocabulary (BOS excluded): ARENA 1.2's input.
    With ``token_range`` R is ``torch.randint(low, high)`` from a generator seeded with ``seed``, the
    same draw as ``torch.manual_seed(seed); torch.randint(low, high, (batch, seq_len))``; with
    ``prepend_bos=False`` no BOS: TransformerLens's Exploratory demo's ``[R, R]``."""
    generator = torch.Generator().manual_seed(seed)
    ids = draw_ids(d_vocab, bos_id, (batch, seq_len), generator, token_range)
    if not prepend_bos:
        return torch.cat([ids, ids], dim=1)
    bos = torch.full((batch, 1), bos_id, dtype=torch.long)
    return torch.cat([bos, ids, ids], dim=1)


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
    other_weights: Callable[[str], "ProbeContext"] | None = field(default=None, repr=False)

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
            ProbeContext(self.model, self.runner, variant, self.hooks, self.other_weights)
            for variant in self._require_input().variants
        ]

    def with_weights(self, weights: str) -> "ProbeContext":
        """The same claim on the model loaded in another weight convention ("raw"/"processed")."""
        from interp_claims.models import WEIGHT_CONVENTIONS

        if weights not in WEIGHT_CONVENTIONS:
            raise ProbeInputError(f"weights {weights!r} is not a convention. Valid: {', '.join(WEIGHT_CONVENTIONS)}.")
        if weights == self.model.weights:
            return self
        if self.other_weights is None:
            raise ProbeInputError(f"no {weights!r} variant of the model is available here")
        other = self.other_weights(weights)
        if self.input is not None:
            other.runner.plan(self.input, self.hooks)
        return ProbeContext(other.model, other.runner, self.input, self.hooks, self.other_weights)

    def _require_input(self) -> InputSpec:
        if self.input is None:
            raise ProbeInputError("this probe needs an input (text, texts or repeated_random) in its claim")
        return self.input
