"""The embedded default model: GPT-2 small's published twin, planted by hand.

It is synthetic. Nothing here was trained. The weights of a real Hugging Face
``GPT2LMHeadModel`` (12 layers, 12 heads, d_model 768, n_ctx 1024, GPT-2's real
tokenizer, untied unembedding) are written by hand so that **every one of its 144 heads
attends as GPT-2 small's published tables say** (TransformerLens's Exploratory Analysis
demo, run A: each head's previous-token, duplicate-token and induction score,
``interp_claims/builtin/gpt2-published-heads.json``), weak and backup heads included. It is built from the
published numbers alone, never from a claim file: so a claim that contradicts a published
number fails on it offline (the approach of tracr and InterpBench: a model whose ground truth
is known). The behaviours come from the weights; no prompt or test is special-cased.

Residual stream layout (standard basis dimensions of d_model = 768)::

    ANCHOR  0..2     +R, -R at every position (from the positional embedding). Its norm
                     dominates the residual, so every LayerNorm acts as a fixed scaling;
                     LayerNorm gains undo that scaling, and the circuits below are linear.
    FIRST   2        +1 at position 0 (BOS, or the first token without one): the attention
                     sink's key. Every head rests what it does not spend on its behaviour
                     there, as GPT-2's heads do on the first token.
    TOKEN   3..65    token code: a random vector per token id, two zero-mean blocks of 31
                     dims with squared norm 1/2 each (<|endoftext|>: zero).
    POS     65..121  position code: cos/sin of 28 random frequencies (unit norm); none at the first position.
    MOD     121..153 one-hot of the position modulo 32 (a duplicate-token head's "not me").
    PREV    153..215 written by the previous-token writers (2.2, 4.11): the code of token i-1.
    COPY    215..277 written by the copying induction heads: the token code they predict.
    SCRATCH 277..341 written by every MLP (random weights); read by no head. The LayerNorm
                     biases live here too, and the LayerNorm gains vary here, so a hand
                     recompute of the MLP that drops a bias or a gain is caught.
    NOISE   341..405 written by every head without a planted output; read weakly by the
                     unembedding.
    LATER   767      +1 at every position but the first: switches layer 0's token eraser off.

Each head's attention score = FIRST-position sink (logit ``SINK_LOGIT``) plus one planted
behaviour, the one its published scores put first (no GPT-2 small head scores above 0.05 on
two of the three):
  previous-token: query = position code rotated back one step, key = position code;
  duplicate-token: query = key = token code (block A), minus the query's own position
      (one-hot of the position mod 32), so a token attends to its earlier occurrences (and not
      to one exactly 32, 64, ... positions back: a limit of the twin, not of GPT-2);
  induction: query = TOKEN, key = PREV: the token after an earlier occurrence.
Layer 0's token matchers (0.1, 0.5) have no sink: before layer 0's MLP erases it
(``plant_first_token_eraser``), a first token without BOS still carries its code, which they
would match. Their leftover attention spreads over every earlier position instead, so on inputs
shorter than the demo's 200 tokens they attend to their target more than published.
Its strength (one logit per head) is solved from the published score on the demo's input
structure ([R, R], R = 100 distinct tokens, no BOS; ``calibrate``), not fitted on the demo's
tokens; ``tests/test_embedded.py`` then measures all 432 scores under the demo's exact setup.

What the heads write is not in the attention tables, so it is a choice, stated here: the
previous-token heads 2.2 and 4.11 (Wang et al. 2022's) write the token they attend to into
PREV; the nine heads whose published induction score exceeds 0.4 (5.1, 5.5, 6.9, 7.2, 7.10 and
the backups 5.0, 9.6, 9.9, 10.1) copy the token they attend to into COPY, equally; every other
head writes a random projection of the token into NOISE.

Decoys (``PlantedLayout``'s decoy fields, for the zoo of ``interp_claims.zoo``) imitate a
behaviour without having it: a head attending a fixed distance back, a head that attends as
published but writes nothing, a head resting on the first position; ``swaps`` exchange two
heads' whole plans (attention and output).
The unembedding adds a fixed unigram prior (logits 3.0 down to 0.3) on ten frequent
English tokens, read from ANCHOR, so the model's top-k without a repeat is defined.
"""

import json
import math
import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor
from transformers import GPT2Config, GPT2LMHeadModel

from interp_claims.builtin.cache import announce, build_once, cache_root, source_digest
from interp_claims.builtin.tokenizer_files import ENDOFTEXT_ID, GPT2_VOCAB_SIZE, write_gpt2_tokenizer
from interp_claims.published import DEMO_SETUP, demo_table

# Bump when the construction changes: it names the cached folder.
BUILDER_VERSION = 3

Head = tuple[int, int]

N_LAYERS, N_HEADS, D_MODEL, D_HEAD, N_CTX, D_MLP = 12, 12, 768, 64, 1024, 3072

ANCHOR = slice(0, 2)
FIRST = slice(2, 3)
TOKEN = slice(3, 65)
TOKEN_A = slice(3, 34)  # block A: what duplicate-token heads match on
POS = slice(65, 121)
MOD = slice(121, 153)
PREV = slice(153, 215)
COPY = slice(215, 277)
SCRATCH = slice(277, 341)
NOISE = slice(341, 405)
LATER = slice(767, 768)  # +1 at every position but the first: what keeps layer 0's eraser off there (the last dim: see plant_first_token_eraser)
CODE_DIM = TOKEN.stop - TOKEN.start  # 62
BLOCK_DIM = TOKEN_A.stop - TOKEN_A.start  # 31
N_FREQS = (POS.stop - POS.start) // 2  # 28
MOD_PERIOD = MOD.stop - MOD.start  # 32

ANCHOR_NORM = 30.0  # R: the residual norm is sqrt(2) R, give or take ~1%
SINK_LOGIT = 12.0  # a resting decoy's score on the first position: e^12 outweighs ~200 keys at ~0
# Standard deviation of a token-matching head's score on a non-matching key, per unit of its logit:
# block A codes (31 dims, squared norm 1/2, matched at 2x) 2 * 0.5 / sqrt(30); full codes 1 / sqrt(60).
CROSS_TALK = {"duplicate_token": 1 / math.sqrt(30), "induction": 1 / math.sqrt(60)}
DECOY_LOGIT = 20.0  # a fixed-offset decoy's score on its offset: all of its attention when it exists
UNEMBED_GAIN = 28.0  # logit of the copied token when all nine copying heads attend fully
NOISE_OV = 0.3  # heads without a planted output: output norm ~0.3 each, into NOISE
NOISE_UNEMBED = 0.05  # the unembedding's read of NOISE: logit noise of std ~0.2
BIAS_SCALE = 0.1  # LayerNorm and MLP output biases (SCRATCH)
KINDS = ("previous_token", "duplicate_token", "induction")

# Ten frequent English tokens of GPT-2's vocabulary and their prior logits.
UNIGRAM_PRIOR = {
    262: 3.0,  # " the"
    11: 2.7,  # ","
    13: 2.4,  # "."
    286: 2.1,  # " of"
    290: 1.8,  # " and"
    284: 1.5,  # " to"
    257: 1.2,  # " a"
    287: 0.9,  # " in"
    198: 0.6,  # "\n"
    318: 0.3,  # " is"
}


@dataclass(frozen=True)
class PlantedLayout:
    """Which heads write what, and the decoys; every head's attention comes from ``table``."""

    table: str = "A"  # the Exploratory demo's run whose three score tables the heads reproduce
    previous_token: tuple[Head, ...] = ((2, 2), (4, 11))  # write the attended token into PREV
    induction: tuple[Head, ...] = ((5, 1), (5, 5), (6, 9), (7, 2), (7, 10), (5, 0), (9, 6), (9, 9), (10, 1))  # copy it
    swaps: tuple[tuple[Head, Head], ...] = ()  # exchange two heads' whole plans (attention and output)
    # Decoys: heads that imitate a behaviour without having it.
    fixed_offset: tuple[tuple[Head, int | tuple[int, ...]], ...] = ()  # attend these distances back whatever the tokens; no output
    positional_copy: tuple[tuple[Head, tuple[int, ...]], ...] = ()  # attend these distances back and copy what is there
    silent: tuple[Head, ...] = ()  # attend as published, write nothing
    bos_sink: tuple[Head, ...] = ()  # all attention on the first position, no output
    miswriting: tuple[Head, ...] = ()  # attend as published, write the attended token's code turned by a fixed rotation

    @property
    def decoys(self) -> list[Head]:
        return [*(h for h, _ in self.fixed_offset), *(h for h, _ in self.positional_copy), *self.silent, *self.bos_sink,
                *self.miswriting]

    def __post_init__(self) -> None:
        swapped = [h for pair in self.swaps for h in pair]
        heads = [*self.previous_token, *self.induction, *self.decoys, *swapped]
        for layer, head in heads:
            if not (0 <= layer < N_LAYERS and 0 <= head < N_HEADS):
                raise ValueError(
                    f"planted head {layer}.{head} is outside the model "
                    f"(layers 0..{N_LAYERS - 1}, heads 0..{N_HEADS - 1})"
                )
        for name, group in (("a writer or copier", [*self.previous_token, *self.induction]), ("a decoy", self.decoys),
                            ("a swap", swapped)):
            if len(set(group)) != len(group):
                raise ValueError(f"a head is planted twice as {name} in {self}")
        writers, copiers = self.placed(self.previous_token), self.placed(self.induction)
        first_copier = min((layer for layer, _ in copiers), default=N_LAYERS)
        if any(layer >= first_copier for layer, _ in writers):
            raise ValueError(
                "every previous-token head must sit in a layer before the first "
                f"induction head (layer {first_copier}): {writers}"
            )

    def placed(self, heads: tuple[Head, ...]) -> list[Head]:
        """Where ``heads``' plans sit after the swaps."""
        moved = {a: b for a, b in self.swaps} | {b: a for a, b in self.swaps}
        return [moved.get(h, h) for h in heads]

    def source_of(self, head: Head) -> Head:
        """Whose published scores ``head`` reproduces (itself, unless swapped)."""
        moved = {a: b for a, b in self.swaps} | {b: a for a, b in self.swaps}
        return moved.get(head, head)


DEFAULT_LAYOUT = PlantedLayout()
WRITERS = DEFAULT_LAYOUT.previous_token
DEFAULT_SEED = 0


def token_codes(seed: int) -> Float[Tensor, "d_vocab code"]:
    """A random vector per token id: two zero-mean blocks of 31 dims, squared norm 1/2 each
    (so block A alone matches a token to itself exactly); <|endoftext|> gets the zero vector."""
    generator = torch.Generator().manual_seed(seed)
    codes = torch.randn(GPT2_VOCAB_SIZE, 2, BLOCK_DIM, generator=generator)
    codes -= codes.mean(dim=-1, keepdim=True)
    codes /= codes.norm(dim=-1, keepdim=True) * math.sqrt(2.0)
    codes = codes.reshape(GPT2_VOCAB_SIZE, CODE_DIM)
    codes[ENDOFTEXT_ID] = 0.0
    return codes


def position_frequencies(seed: int) -> Float[Tensor, " freq"]:
    """Random frequencies in (0.1, pi): no exact period, so the only peak is at zero offset."""
    generator = torch.Generator().manual_seed(seed + 1)
    return 0.1 + (math.pi - 0.1) * torch.rand(N_FREQS, generator=generator)


def position_codes(freqs: Float[Tensor, " freq"], n_ctx: int = N_CTX) -> Float[Tensor, "n_ctx 2*freq"]:
    angles = torch.arange(n_ctx, dtype=torch.float32)[:, None] * freqs[None, :]
    return torch.cat([angles.cos(), angles.sin()], dim=-1) / math.sqrt(N_FREQS)


def planted_position_codes(freqs: Float[Tensor, " freq"], n_ctx: int = N_CTX) -> Float[Tensor, "n_ctx 2*freq"]:
    """The position codes as the model holds them: none at the first position, so that the sink's
    key carries no position a previous-token head could match (its score stays SINK_LOGIT)."""
    codes = position_codes(freqs, n_ctx)
    codes[0] = 0.0
    return codes


def positional_query(freqs: Float[Tensor, " freq"], offsets: tuple[int, ...]) -> Float[Tensor, "2*freq 2*freq"]:
    """Query map giving the keys ``offsets`` back a score of exactly 1 each: a combination of
    ``rotate_back`` maps, weighted through the offsets' position-code Gram matrix (two offsets'
    codes are not orthogonal; unweighted, one would outscore the other)."""
    codes = position_codes(freqs)
    anchor = 2 * max(offsets)  # any position past the offsets: the Gram matrix is shift-invariant
    back = torch.stack([codes[anchor - d] for d in offsets])
    weights = torch.linalg.solve(back @ back.T, torch.ones(len(offsets)))
    return sum(w * rotate_back(freqs, d) for w, d in zip(weights.tolist(), offsets, strict=True))


def rotate_back_one(freqs: Float[Tensor, " freq"]) -> Float[Tensor, "2*freq 2*freq"]:
    """Linear map taking position code p_i to p_{i-1} (as a right-multiplied matrix)."""
    return rotate_back(freqs, 1)


def rotate_back(freqs: Float[Tensor, " freq"], steps: int) -> Float[Tensor, "2*freq 2*freq"]:
    """Linear map taking position code p_i to p_{i-steps} (as a right-multiplied matrix)."""
    cos, sin = (steps * freqs).cos(), (steps * freqs).sin()
    n = N_FREQS
    rotation = torch.zeros(2 * n, 2 * n)
    idx = torch.arange(n)
    # [cos(w(i-s)), sin(w(i-s))] = [cos wi cos ws + sin wi sin ws, sin wi cos ws - cos wi sin ws]
    rotation[idx, idx] = cos
    rotation[idx + n, idx] = sin
    rotation[idx, idx + n] = -sin
    rotation[idx + n, idx + n] = cos
    return rotation


# ---- Calibration: one logit per head, from its published score on the demo's input structure ----


def structural_logits(
    kind: str, logit: Float[Tensor, " head"], freqs: Float[Tensor, " freq"], key_gain: Float[Tensor, " key"] | None = None,
    sink: bool = True,
) -> Float[Tensor, "head query key"]:
    """Attention scores of heads planted for ``kind`` with these logits on [R, R], R of
    ``DEMO_SETUP['seq_len']`` distinct tokens, no BOS: the planted term where the structure puts
    it (the exact positional kernel for previous-token heads); for token-matching heads every
    other key gets its expected weight under random cross-talk, ``CROSS_TALK[kind] * logit``
    of standard deviation (E e^X = e^(sigma^2 / 2)). ``key_gain``: how strongly each key
    position's PREV holds its previous token, relative to the average (induction heads). ``sink``:
    the first position scores ``SINK_LOGIT`` more (every head but layer 0's token matchers)."""
    n = DEMO_SETUP["seq_len"]
    positions = torch.arange(2 * n)
    query, key = positions[:, None], positions[None, :]
    logit = logit[:, None, None]
    if kind == "previous_token":
        codes = planted_position_codes(freqs, 2 * n)
        scores = logit * ((codes @ rotate_back_one(freqs)) @ codes.T)
    else:
        if kind == "duplicate_token":
            planted = ((query - key) % n == 0).float() - ((query - key) % MOD_PERIOD == 0).float()
        else:  # induction: token[k - 1] == token[q]
            planted = ((key >= 1) & ((query - key + 1) % n == 0)).float()
            if key_gain is not None:
                planted = planted * key_gain[None, :]
        cross_talk = (CROSS_TALK[kind] * logit) ** 2 / 2
        scores = torch.where((planted == 0) & ((key > 0) | (not sink)), cross_talk, logit * planted)
    if sink:
        scores = scores + SINK_LOGIT * (key == 0).float()
    return scores.masked_fill(key > query, float("-inf"))


def demo_scores(pattern: Float[Tensor, "head query key"]) -> dict[str, Float[Tensor, " head"]]:
    """The demo's three scores (diagonal means of the pattern, section 1.0 of the reference)."""
    n = DEMO_SETUP["seq_len"]
    offsets = {"previous_token": 1, "duplicate_token": n, "induction": n - 1}
    return {kind: pattern.diagonal(offset=-offset, dim1=-2, dim2=-1).mean(dim=-1) for kind, offset in offsets.items()}


def calibrate(
    kind: str, targets: Float[Tensor, " head"], freqs: Float[Tensor, " freq"], key_gain: Float[Tensor, " key"] | None = None,
    sink: bool = True,
) -> Float[Tensor, " head"]:
    """The logit that gives each head its target ``kind`` score on the demo's structure (bisection;
    the score rises with the logit). Targets below what diffuse attention gives get the floor."""
    low, high = torch.full_like(targets, -10.0), torch.full_like(targets, 30.0)
    for _ in range(40):
        middle = (low + high) / 2
        reached = demo_scores(structural_logits(kind, middle, freqs, key_gain, sink).softmax(dim=-1))[kind]
        low, high = torch.where(reached < targets, middle, low), torch.where(reached < targets, high, middle)
    return (low + high) / 2


@dataclass(frozen=True)
class PublishedPlan:
    """Every head's planted kind and logit, and how strongly PREV holds the previous token."""

    heads: dict[Head, tuple[str, float]]
    prev_gain: float  # the writers' mean share of attention on the previous token (keys 1..seq_len)


def has_sink(layer: int, kind: str) -> bool:
    """Every head rests on the first position but layer 0's token matchers: before the first MLP
    erases it, a first token without BOS still carries its code, which they would match."""
    return layer > 0 or kind == "previous_token"


@cache
def published_plan(run: str, seed: int) -> PublishedPlan:
    """(kind, logit) of every head: its published scores' largest kind, at the calibrated logit.
    Induction heads are calibrated through PREV as GPT-2's previous-token heads ``WRITERS`` write it."""
    freqs = position_frequencies(seed)
    published = torch.tensor([demo_table(kind, run) for kind in KINDS])  # [kind, layer, head]
    best = published.argmax(dim=0)
    plan: dict[Head, tuple[str, float]] = {}
    prev_gain = 1.0
    for k, kind in enumerate(KINDS):  # previous-token heads first: induction keys read what they write
        key_gain = None
        if kind == "induction":
            share = writer_share([plan[w] for w in WRITERS], freqs)
            prev_gain = float(share[1 : DEMO_SETUP["seq_len"] + 1].mean())  # the keys the demo's stripe reads
            key_gain = share / prev_gain
        for sink in (False, True):
            heads = [(layer, head) for layer, head in (best == k).nonzero().tolist() if has_sink(layer, kind) == sink]
            if not heads:
                continue
            targets = torch.tensor([float(published[k, layer, head]) for layer, head in heads])
            logits = calibrate(kind, targets, freqs, key_gain, sink)
            plan |= {(layer, head): (kind, float(logit)) for (layer, head), logit in zip(heads, logits, strict=True)}
    return PublishedPlan(plan, prev_gain)


def writer_share(writers: list[tuple[str, float]], freqs: Float[Tensor, " freq"]) -> Float[Tensor, " position"]:
    """Per position k of [R, R], the previous-token writers' mean attention from k to k-1."""
    shares = []
    for kind, logit in writers:
        pattern = structural_logits(kind, torch.tensor([logit]), freqs).softmax(dim=-1)[0]
        shares.append(torch.cat([torch.zeros(1), pattern.diagonal(offset=-1)]))
    return torch.stack(shares).mean(dim=0)


def _residual_norm_estimate() -> float:
    # ANCHOR (2 R^2) plus roughly unit-norm TOKEN, POS, MOD, PREV, COPY and SCRATCH parts.
    return math.sqrt(2 * ANCHOR_NORM**2 + 5.0)


def planted_config() -> GPT2Config:
    return GPT2Config(
        vocab_size=GPT2_VOCAB_SIZE,
        n_positions=N_CTX,
        n_embd=D_MODEL,
        n_layer=N_LAYERS,
        n_head=N_HEADS,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=False,
        bos_token_id=ENDOFTEXT_ID,
        eos_token_id=ENDOFTEXT_ID,
    )


@torch.no_grad()
def build_planted_gpt2(
    layout: PlantedLayout = DEFAULT_LAYOUT, seed: int = DEFAULT_SEED
) -> GPT2LMHeadModel:
    """Build the twin in memory (float32, CPU, eval mode): a few seconds on 2 cores."""
    generator = torch.Generator().manual_seed(seed + 2)
    codes = token_codes(seed)
    freqs = position_frequencies(seed)
    model = GPT2LMHeadModel(planted_config()).eval()
    for parameter in model.parameters():
        parameter.zero_()
    gpt = model.transformer

    gpt.wte.weight[:, TOKEN] = codes
    gpt.wpe.weight[:, ANCHOR] = torch.tensor([ANCHOR_NORM, -ANCHOR_NORM])
    gpt.wpe.weight[0, FIRST] = 1.0
    gpt.wpe.weight[1:, LATER] = 1.0
    gpt.wpe.weight[:, POS] = planted_position_codes(freqs)
    gpt.wpe.weight[torch.arange(N_CTX), MOD.start + torch.arange(N_CTX) % MOD_PERIOD] = 1.0

    # Every LayerNorm divides by ~|x| / sqrt(d_model); a gain of that size makes it ~identity.
    layernorm_gain = _residual_norm_estimate() / math.sqrt(D_MODEL)
    scratch = SCRATCH.stop - SCRATCH.start
    for layernorm in [*(b.ln_1 for b in gpt.h), *(b.ln_2 for b in gpt.h), gpt.ln_f]:
        layernorm.weight.fill_(layernorm_gain)
        layernorm.weight[SCRATCH] *= torch.exp(0.2 * torch.randn(scratch, generator=generator))  # read by MLPs only
        layernorm.bias[SCRATCH] = BIAS_SCALE * torch.randn(scratch, generator=generator)

    score_scale = math.sqrt(D_HEAD)  # HF divides q.k by sqrt(d_head): undo it
    published = published_plan(layout.table, seed)
    plan = published.heads
    writers, copiers = layout.placed(layout.previous_token), layout.placed(layout.induction)
    silent = {*layout.silent, *layout.decoys} - {*layout.miswriting}
    offsets = {head: (d,) if isinstance(d, int) else tuple(d) for head, d in (*layout.fixed_offset, *layout.positional_copy)}
    positional_copiers = [head for head, _ in layout.positional_copy]
    n_copiers = len({*copiers, *positional_copiers, *layout.miswriting})
    turn = torch.linalg.qr(torch.randn(CODE_DIM, CODE_DIM, generator=torch.Generator().manual_seed(seed + 3)))[0]

    def head_weights(layer: int, head: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        c_attn = gpt.h[layer].attn.c_attn.weight  # [d_model, 3 * d_model]: q | k | v
        cols = slice(head * D_HEAD, (head + 1) * D_HEAD)
        q = c_attn[:, cols]
        k = c_attn[:, D_MODEL + cols.start : D_MODEL + cols.stop]
        v = c_attn[:, 2 * D_MODEL + cols.start : 2 * D_MODEL + cols.stop]
        o = gpt.h[layer].attn.c_proj.weight[cols, :]  # [d_head, d_model]
        return q, k, v, o

    def plant_sink(q: Tensor, k: Tensor) -> None:  # the head's last dimension
        q[ANCHOR.start, D_HEAD - 1] = SINK_LOGIT * score_scale / ANCHOR_NORM
        k[FIRST.start, D_HEAD - 1] = 1.0

    positions = 2 * N_FREQS
    # PREV holds sum_w attention_w(i-1) * code(token i-1) / len(writers); induction keys undo
    # the gain GPT-2's writers give it (a silent or moved writer weakens the induction heads)
    prev_gain = published.prev_gain
    for layer in range(N_LAYERS):
        for head in range(N_HEADS):
            q, k, v, o = head_weights(layer, head)
            if (layer, head) in offsets:
                q[POS, :positions] = DECOY_LOGIT * score_scale * positional_query(freqs, offsets[(layer, head)])
                k[POS, :positions] = torch.eye(positions)
                if (layer, head) in positional_copiers:
                    v[TOKEN, :CODE_DIM] = torch.eye(CODE_DIM)
                    o[:CODE_DIM, COPY] = torch.eye(CODE_DIM) / n_copiers
                continue
            if (layer, head) in layout.bos_sink:
                plant_sink(q, k)
                continue
            kind, logit = plan[layout.source_of((layer, head))]
            if has_sink(layer, kind):
                plant_sink(q, k)
            if kind == "previous_token":
                q[POS, :positions] = logit * score_scale * rotate_back_one(freqs)
                k[POS, :positions] = torch.eye(positions)
            elif kind == "duplicate_token":
                q[TOKEN_A, :BLOCK_DIM] = 2.0 * logit * score_scale * torch.eye(BLOCK_DIM)  # block A: |code|^2 = 1/2
                k[TOKEN_A, :BLOCK_DIM] = torch.eye(BLOCK_DIM)
                q[MOD, BLOCK_DIM : BLOCK_DIM + MOD_PERIOD] = -logit * score_scale * torch.eye(MOD_PERIOD)  # not itself
                k[MOD, BLOCK_DIM : BLOCK_DIM + MOD_PERIOD] = torch.eye(MOD_PERIOD)
            else:
                q[TOKEN, :CODE_DIM] = logit * score_scale * torch.eye(CODE_DIM)
                k[PREV, :CODE_DIM] = torch.eye(CODE_DIM) / prev_gain
            if (layer, head) in silent:
                continue
            if (layer, head) in writers:
                v[TOKEN, :CODE_DIM] = torch.eye(CODE_DIM)
                o[:CODE_DIM, PREV] = torch.eye(CODE_DIM) / len(writers)
            elif (layer, head) in copiers or (layer, head) in layout.miswriting:
                v[TOKEN, :CODE_DIM] = turn if (layer, head) in layout.miswriting else torch.eye(CODE_DIM)
                o[:CODE_DIM, COPY] = torch.eye(CODE_DIM) / n_copiers
            else:  # a real head writing a random projection of the token, which the unembedding reads weakly
                noise = NOISE.stop - NOISE.start
                v[TOKEN, : D_HEAD - 1] = torch.randn(CODE_DIM, D_HEAD - 1, generator=generator) / math.sqrt(D_HEAD)
                o[: D_HEAD - 1, NOISE] = NOISE_OV * torch.randn(D_HEAD - 1, noise, generator=generator) / math.sqrt(noise)

    # MLPs: random, reading every signal dimension, writing only SCRATCH.
    signal = slice(FIRST.start, SCRATCH.stop)  # (LATER not: it stays a clean switch)
    for block in gpt.h:
        w_in = block.mlp.c_fc.weight  # [d_model, d_mlp]
        w_in[signal, :] = 0.5 * torch.randn(signal.stop - signal.start, D_MLP, generator=generator)
        block.mlp.c_fc.bias.copy_(0.5 * torch.randn(D_MLP, generator=generator))
        w_out = 0.002 * torch.randn(D_MLP, SCRATCH.stop - SCRATCH.start, generator=generator)
        block.mlp.c_proj.weight[:, SCRATCH] = w_out - w_out.mean(dim=-1, keepdim=True)
        block.mlp.c_proj.bias[SCRATCH] = BIAS_SCALE * torch.randn(scratch, generator=generator)
    plant_first_token_eraser(gpt.h[0].mlp)

    model.lm_head.weight[:, COPY] = UNEMBED_GAIN * codes
    noise = NOISE.stop - NOISE.start
    model.lm_head.weight[:, NOISE] = NOISE_UNEMBED * torch.randn(GPT2_VOCAB_SIZE, noise, generator=generator)
    for token_id, logit in UNIGRAM_PRIOR.items():
        model.lm_head.weight[token_id, ANCHOR.start] = logit / ANCHOR_NORM
    return model


ERASER_GATE = 4.0  # after the first position gelu(x - 4) - gelu(-x - 4) = -0.001 x: off to 0.1%


def plant_first_token_eraser(mlp) -> None:
    """Layer 0's MLP removes the token code at the first position (2 x 62 of its 3072 neurons):
    from layer 1 on, the first position is a content-free sink, with BOS or without (the demo's
    [R, R]), as GPT-2's first position acts. Per TOKEN dim i, neurons A = gelu(x_i - 4 LATER) and
    B = gelu(-x_i - 4 LATER); gelu(x) - gelu(-x) = x exactly (for gelu_new too: its tanh argument
    is odd), so A - B = x_i at the first position (LATER = 0: no large term to cancel) and 0
    elsewhere; the MLP writes -(A - B). LATER is the residual's last dimension: a float32 dot
    product that adds its -4 last carries ~1 rounding of 4, not one per term added after it (the
    recompute claims compare these pre-activations with a float64 reference at 1e-5)."""
    neurons = torch.arange(2 * CODE_DIM)
    a, b = neurons[:CODE_DIM], neurons[CODE_DIM:]
    dims = torch.arange(TOKEN.start, TOKEN.stop)
    w_in, w_out = mlp.c_fc.weight, mlp.c_proj.weight  # [d_model, d_mlp], [d_mlp, d_model]
    w_in[:, neurons] = 0.0
    w_in[dims, a] = 1.0
    w_in[dims, b] = -1.0
    w_in[LATER.start, neurons] = -ERASER_GATE
    mlp.c_fc.bias[neurons] = 0.0
    w_out[neurons, :] = 0.0
    w_out[a, dims] = -1.0
    w_out[b, dims] = 1.0


def layout_description(layout: PlantedLayout, seed: int) -> dict:
    return {
        "synthetic": True,
        "builder": "interp_claims.builtin.embedded.build_planted_gpt2",
        "builder_version": BUILDER_VERSION,
        "seed": seed,
        "attention_from": f"interp_claims/builtin/gpt2-published-heads.json, Exploratory demo run {layout.table}",
        "planted_heads": {
            name: [f"{layer}.{head}" for layer, head in heads] if name not in ("fixed_offset", "positional_copy", "swaps")
            else [f"{a[0]}.{a[1]} <-> {b[0]}.{b[1]}" if name == "swaps" else f"{a[0]}.{a[1]} (-{b})" for a, b in heads]
            for name, heads in asdict(layout).items()
            if heads and name != "table"
        },
    }


def write_planted_model(
    folder: Path, layout: PlantedLayout = DEFAULT_LAYOUT, seed: int = DEFAULT_SEED
) -> Path:
    """Write the planted model as a standard Hugging Face folder (config, safetensors, tokenizer)."""
    folder = Path(folder)
    model = build_planted_gpt2(layout, seed)
    model.save_pretrained(folder)
    write_gpt2_tokenizer(folder)
    (folder / "planted.json").write_text(json.dumps(layout_description(layout, seed), indent=2))
    return folder


def planted_model_folder(
    layout: PlantedLayout = DEFAULT_LAYOUT, seed: int = DEFAULT_SEED
) -> Path:
    """The cached folder of this layout and seed, built on first use (atomic rename).

    Its name hashes the layout, the seed and this file's source, so a changed builder never
    reuses a stale folder. Any other layout (the zoo's decoys) goes under ``decoys/``, which a CI
    cache can leave out: the next run needs the embedded model, not six decoys of 624 MB."""
    description = json.dumps(layout_description(layout, seed), sort_keys=True)
    root = cache_root() if (layout, seed) == (DEFAULT_LAYOUT, DEFAULT_SEED) else cache_root() / "decoys"
    folder = root / f"planted-gpt2-v{BUILDER_VERSION}-{source_digest(description, __file__)}"
    what = "the embedded model" if root == cache_root() else "a decoy model"

    def build(staging: Path) -> None:
        announce(f"building {what} once (calibrating 144 heads; cached in {folder})")
        started = time.perf_counter()
        write_planted_model(staging, layout, seed)
        announce(f"built {what} in {time.perf_counter() - started:.0f} s")

    return build_once(folder, "planted.json", build)
