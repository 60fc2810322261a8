"""Tokenization facts: how names split, vocabulary size, special ids. No forward pass."""

from interp_claims.context import ProbeContext
from interp_claims.measurement import Measurement, ProbeInputError
from interp_claims.registry import probe


def _encode(ctx: ProbeContext, text: str) -> list[int]:
    if not isinstance(text, str) or not text:
        raise ProbeInputError(f"empty text {text!r}: tokenization needs a non-empty string")
    return ctx.bridge.tokenizer.encode(text, add_special_tokens=False)


def _pieces(ctx: ProbeContext, ids: list[int]) -> list[str]:
    return [ctx.bridge.tokenizer.decode([i]) for i in ids]


@probe("token_pieces", hooks=None)
def token_pieces(ctx: ProbeContext, *, text: str) -> Measurement:
    """The pieces ``text`` splits into (no BOS), e.g. " Quomatarus" -> [' Qu','om','atar','us']."""
    ids = _encode(ctx, text)
    return Measurement(value=_pieces(ctx, ids), details={"ids": ids})


@probe("token_ids", hooks=None)
def token_ids(ctx: ProbeContext, *, text: str) -> Measurement:
    ids = _encode(ctx, text)
    return Measurement(value=ids, details={"pieces": _pieces(ctx, ids)})


@probe("token_count", hooks=None)
def token_count(ctx: ProbeContext, *, text: str) -> Measurement:
    ids = _encode(ctx, text)
    return Measurement(value=len(ids), details={"ids": ids, "pieces": _pieces(ctx, ids)})


@probe("pieces_table", hooks=None)
def pieces_table(ctx: ProbeContext, *, texts: list[str]) -> Measurement:
    """``{text: pieces}`` for many texts: a snapshot of this shows a tokenizer change as a diff."""
    if not texts:
        raise ProbeInputError("pieces_table needs a non-empty list of texts")
    return Measurement(value={text: _pieces(ctx, _encode(ctx, text)) for text in texts})


@probe("vocabulary_size", hooks=None)
def vocabulary_size(ctx: ProbeContext) -> Measurement:
    return Measurement(value=len(ctx.bridge.tokenizer), details={"d_vocab": ctx.model.cfg.d_vocab})


@probe("special_token_id", hooks=None)
def special_token_id(ctx: ProbeContext, *, token: str) -> Measurement:
    tokenizer = ctx.bridge.tokenizer
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id and token != tokenizer.unk_token:
        raise ProbeInputError(f"token {token!r} is not in the vocabulary")
    return Measurement(value=token_id, details={"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id})


@probe("first_token_id", hooks=None)
def first_token_id(ctx: ProbeContext, *, text: str) -> Measurement:
    """The first id the model is fed for ``text``: the BOS id when BOS is prepended."""
    _encode(ctx, text)  # validates the text
    tokens = ctx.bridge.to_tokens(text)  # the library default, as a user calls it
    return Measurement(value=int(tokens[0, 0]), details={"bos_token_id": ctx.bridge.tokenizer.bos_token_id})
