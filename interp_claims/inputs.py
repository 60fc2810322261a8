"""Inputs as data: prompts, or seeded repeated random tokens (plain or of mixed lengths), and the
token ids they become. No model here: a claim file's ``input`` table parses to an ``InputSpec``."""

import json
from dataclasses import dataclass, replace
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from interp_claims.measurement import ProbeInputError


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
