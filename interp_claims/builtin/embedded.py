"""The embedded default model: a GPT-2-small-shaped network with planted circuits.

It is synthetic. Nothing here was trained. The weights of a real Hugging Face
``GPT2LMHeadModel`` (12 layers, 12 heads, d_model 768, n_ctx 1024, GPT-2's real
tokenizer, untied unembedding) are written by hand from a seed so that its heads do
known things at GPT-2 small's published positions (the approach of tracr and
InterpBench: a model whose ground truth is known). The behaviours come from the
weights alone; no prompt or test is special-cased.

Residual stream layout (standard basis dimensions of d_model = 768)::

    ANCHOR  0..2     +R, -R at every position (from the positional embedding). Its norm
                     dominates the residual, so every LayerNorm acts as a fixed scaling;
                     LayerNorm gains undo that scaling, and the circuits below are linear.
    BOS     2..4     +1, -1 on the <|endoftext|> token: the attention sink's key.
    TOKEN   4..66    token code: a random unit vector per token id (62 dims, zero mean).
    POS     66..130  position code: cos/sin of 32 random frequencies (unit norm).
    PREV    130..192 written by previous-token heads: the token code of position i-1.
    COPY    192..254 written by induction heads: the token code they predict.
    SCRATCH 254..318 written by every MLP (random weights); read by no head. The LayerNorm
                     biases live here too, and the LayerNorm gains vary here, so a hand
                     recompute of the MLP that drops a bias or a gain is caught.
    NOISE   318..382 written by every unplanted head; read weakly by the unembedding.

Planted heads (defaults = GPT-2 small's published heads, gpt2-facts.md part B):
  previous-token (2.2, 4.11): query = position code rotated back one step,
      key = position code, so position i attends to i-1; OV copies TOKEN -> PREV.
  duplicate-token (0.1, 0.10, 3.0): query = key = token code, so a token attends to
      every occurrence of itself (its own position included); the BOS sink takes the
      attention when there is none. OV is zero: the pattern is the planted behaviour.
  induction (5.1, 5.5, 6.9, 7.2, 7.10): query = TOKEN, key = PREV, so position i
      attends to the token after an earlier occurrence of its own token; OV copies that
      TOKEN -> COPY, and the unembedding reads COPY: the model predicts it.
Every other head is a random head (random QK over TOKEN and POS: diffuse, content- and
position-dependent attention; random OV writing to NOISE, which the unembedding reads weakly):
the negative controls must reject real, non-trivial heads, not zeros.

Decoys (``PlantedLayout``'s decoy fields, for the zoo of ``interp_claims.zoo``) imitate a
behaviour without having it: a head attending a fixed distance back, an induction or
previous-token head that writes nothing, a head resting on BOS.
The unembedding adds a fixed unigram prior (logits 3.0 down to 0.3) on ten frequent
English tokens, read from ANCHOR, so the model's top-k without a repeat is defined.
"""

import hashlib
import json
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor
from transformers import GPT2Config, GPT2LMHeadModel

from interp_claims.builtin.cache import cache_root
from interp_claims.builtin.tokenizer_files import ENDOFTEXT_ID, GPT2_VOCAB_SIZE, write_gpt2_tokenizer

# Bump when the construction changes: it names the cached folder.
BUILDER_VERSION = 2

Head = tuple[int, int]

N_LAYERS, N_HEADS, D_MODEL, D_HEAD, N_CTX, D_MLP = 12, 12, 768, 64, 1024, 3072

ANCHOR = slice(0, 2)
BOS = slice(2, 4)
TOKEN = slice(4, 66)
POS = slice(66, 130)
PREV = slice(130, 192)
COPY = slice(192, 254)
SCRATCH = slice(254, 318)
NOISE = slice(318, 382)
CODE_DIM = TOKEN.stop - TOKEN.start  # 62: leaves head dim 62 for the BOS sink
N_FREQS = (POS.stop - POS.start) // 2

ANCHOR_NORM = 30.0  # R: the residual norm is sqrt(2) R, give or take ~1%
PREV_SHARPNESS = 40.0  # score at i-1; other positions score at most ~0.4 of it
INDUCTION_SHARPNESS = 32.0  # score on a match; a non-match scores ~N(0, 4^2)
INDUCTION_SINK = 18.0  # score of BOS for induction heads: wins when nothing matches
DUPLICATE_SHARPNESS = 32.0
DUPLICATE_SINK = 18.0
UNEMBED_GAIN = 24.0  # logit of the copied token when all induction heads agree
RANDOM_HEAD_QK = 1.0  # random heads: attention scores of std ~2 over TOKEN and POS
RANDOM_HEAD_OV = 0.3  # random heads: output norm ~0.3 each, into NOISE
NOISE_UNEMBED = 0.05  # the unembedding's read of NOISE: logit noise of std ~0.2
BIAS_SCALE = 0.1  # LayerNorm and MLP output biases (SCRATCH)

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
    """Where the planted heads sit, as (layer, head) pairs."""

    previous_token: tuple[Head, ...] = ((2, 2), (4, 11))
    duplicate_token: tuple[Head, ...] = ((0, 1), (0, 10), (3, 0))
    induction: tuple[Head, ...] = ((5, 1), (5, 5), (6, 9), (7, 2), (7, 10))
    # Decoys: heads that imitate a behaviour without having it.
    fixed_offset: tuple[tuple[Head, int], ...] = ()  # attend `offset` positions back whatever the tokens; no output
    silent_induction: tuple[Head, ...] = ()  # induction attention, no output
    silent_previous_token: tuple[Head, ...] = ()  # previous-token attention, no output
    bos_sink: tuple[Head, ...] = ()  # all attention on BOS, no output

    @property
    def planted(self) -> list[Head]:
        return [*self.previous_token, *self.duplicate_token, *self.induction, *(h for h, _ in self.fixed_offset),
                *self.silent_induction, *self.silent_previous_token, *self.bos_sink]

    def __post_init__(self) -> None:
        heads = self.planted
        for layer, head in heads:
            if not (0 <= layer < N_LAYERS and 0 <= head < N_HEADS):
                raise ValueError(
                    f"planted head {layer}.{head} is outside the model "
                    f"(layers 0..{N_LAYERS - 1}, heads 0..{N_HEADS - 1})"
                )
        if len(set(heads)) != len(heads):
            raise ValueError(f"a head is planted twice in {self}")
        first_induction = min((layer for layer, _ in self.induction), default=N_LAYERS)
        if any(layer >= first_induction for layer, _ in (*self.previous_token, *self.silent_previous_token)):
            raise ValueError(
                "every previous-token head must sit in a layer before the first "
                f"induction head (layer {first_induction}): {self.previous_token}"
            )


DEFAULT_LAYOUT = PlantedLayout()
DEFAULT_SEED = 0


def token_codes(seed: int) -> Float[Tensor, "d_vocab code"]:
    """A random zero-mean unit vector per token id; <|endoftext|> gets the zero vector."""
    generator = torch.Generator().manual_seed(seed)
    codes = torch.randn(GPT2_VOCAB_SIZE, CODE_DIM, generator=generator)
    codes -= codes.mean(dim=-1, keepdim=True)
    codes /= codes.norm(dim=-1, keepdim=True)
    codes[ENDOFTEXT_ID] = 0.0
    return codes


def position_frequencies(seed: int) -> Float[Tensor, " freq"]:
    """Random frequencies in (0.1, pi): no exact period, so the only peak is at zero offset."""
    generator = torch.Generator().manual_seed(seed + 1)
    return 0.1 + (math.pi - 0.1) * torch.rand(N_FREQS, generator=generator)


def position_codes(freqs: Float[Tensor, " freq"]) -> Float[Tensor, "n_ctx 2*freq"]:
    angles = torch.arange(N_CTX, dtype=torch.float32)[:, None] * freqs[None, :]
    return torch.cat([angles.cos(), angles.sin()], dim=-1) / math.sqrt(N_FREQS)


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


def _residual_norm_estimate() -> float:
    # ANCHOR (2 R^2) plus roughly unit-norm TOKEN, POS, PREV, COPY and SCRATCH parts.
    return math.sqrt(2 * ANCHOR_NORM**2 + 4.0)


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
    """Build the planted model in memory (float32, CPU, eval mode): about 2 s on 2 cores."""
    generator = torch.Generator().manual_seed(seed + 2)
    codes = token_codes(seed)
    freqs = position_frequencies(seed)
    model = GPT2LMHeadModel(planted_config()).eval()
    for parameter in model.parameters():
        parameter.zero_()
    gpt = model.transformer

    gpt.wte.weight[:, TOKEN] = codes
    gpt.wte.weight[ENDOFTEXT_ID, BOS] = torch.tensor([1.0, -1.0])
    gpt.wpe.weight[:, ANCHOR] = torch.tensor([ANCHOR_NORM, -ANCHOR_NORM])
    gpt.wpe.weight[:, POS] = position_codes(freqs)

    # Every LayerNorm divides by ~|x| / sqrt(d_model); a gain of that size makes it ~identity.
    layernorm_gain = _residual_norm_estimate() / math.sqrt(D_MODEL)
    scratch = SCRATCH.stop - SCRATCH.start
    for layernorm in [*(b.ln_1 for b in gpt.h), *(b.ln_2 for b in gpt.h), gpt.ln_f]:
        layernorm.weight.fill_(layernorm_gain)
        layernorm.weight[SCRATCH] *= torch.exp(0.2 * torch.randn(scratch, generator=generator))  # read by MLPs only
        layernorm.bias[SCRATCH] = BIAS_SCALE * torch.randn(scratch, generator=generator)

    score_scale = math.sqrt(D_HEAD)  # HF divides q.k by sqrt(d_head): undo it
    sink_query = score_scale / ANCHOR_NORM  # the query's sink coordinate, read from ANCHOR[0]
    rotation = rotate_back_one(freqs)
    eye = torch.eye(CODE_DIM)

    def head_weights(layer: int, head: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        c_attn = gpt.h[layer].attn.c_attn.weight  # [d_model, 3 * d_model]: q | k | v
        cols = slice(head * D_HEAD, (head + 1) * D_HEAD)
        q = c_attn[:, cols]
        k = c_attn[:, D_MODEL + cols.start : D_MODEL + cols.stop]
        v = c_attn[:, 2 * D_MODEL + cols.start : 2 * D_MODEL + cols.stop]
        o = gpt.h[layer].attn.c_proj.weight[cols, :]  # [d_head, d_model]
        return q, k, v, o

    def plant_sink(q: Tensor, k: Tensor, sharpness: float) -> None:
        q[ANCHOR.start, CODE_DIM] = sharpness * sink_query
        k[BOS.start, CODE_DIM] = 1.0

    def plant_offset(q: Tensor, k: Tensor, steps: int) -> None:
        q[POS, :] = PREV_SHARPNESS * score_scale * rotate_back(freqs, steps)
        k[POS, :] = torch.eye(2 * N_FREQS)

    for layer, head in (*layout.previous_token, *layout.silent_previous_token):
        q, k, v, o = head_weights(layer, head)
        plant_offset(q, k, 1)
        if (layer, head) in layout.previous_token:
            v[TOKEN, :CODE_DIM] = eye
            o[:CODE_DIM, PREV] = eye / len(layout.previous_token)

    for (layer, head), steps in layout.fixed_offset:
        q, k, _, _ = head_weights(layer, head)
        plant_offset(q, k, steps)
        plant_sink(q, k, INDUCTION_SINK)  # before `steps` positions exist, it rests on BOS

    for layer, head in layout.bos_sink:
        q, k, _, _ = head_weights(layer, head)
        plant_sink(q, k, 4 * INDUCTION_SINK)

    for layer, head in layout.duplicate_token:
        q, k, _, _ = head_weights(layer, head)
        q[TOKEN, :CODE_DIM] = DUPLICATE_SHARPNESS * score_scale * eye
        k[TOKEN, :CODE_DIM] = eye
        plant_sink(q, k, DUPLICATE_SINK)

    for layer, head in (*layout.induction, *layout.silent_induction):
        q, k, v, o = head_weights(layer, head)
        q[TOKEN, :CODE_DIM] = INDUCTION_SHARPNESS * score_scale * eye
        k[PREV, :CODE_DIM] = eye
        plant_sink(q, k, INDUCTION_SINK)
        if (layer, head) in layout.induction:
            v[TOKEN, :CODE_DIM] = eye
            o[:CODE_DIM, COPY] = eye / len(layout.induction)

    # Every other head: random, so the negative controls face real heads (see the module doc).
    planted = set(layout.planted)
    reads = torch.cat([torch.arange(TOKEN.start, TOKEN.stop), torch.arange(POS.start, POS.stop)])
    noise = NOISE.stop - NOISE.start
    for layer in range(N_LAYERS):
        for head in range(N_HEADS):
            if (layer, head) in planted:
                continue
            q, k, v, o = head_weights(layer, head)
            q[reads, :] = RANDOM_HEAD_QK * torch.randn(len(reads), D_HEAD, generator=generator) / math.sqrt(2.0)
            k[reads, :] = RANDOM_HEAD_QK * torch.randn(len(reads), D_HEAD, generator=generator) / math.sqrt(2.0)
            v[TOKEN, :] = torch.randn(CODE_DIM, D_HEAD, generator=generator) / math.sqrt(D_HEAD)
            o[:, NOISE] = RANDOM_HEAD_OV * torch.randn(D_HEAD, noise, generator=generator) / math.sqrt(noise)

    # MLPs: random, reading every signal dimension, writing only SCRATCH.
    signal = slice(BOS.start, SCRATCH.stop)
    for block in gpt.h:
        w_in = block.mlp.c_fc.weight  # [d_model, d_mlp]
        w_in[signal, :] = 0.5 * torch.randn(signal.stop - signal.start, D_MLP, generator=generator)
        block.mlp.c_fc.bias.copy_(0.5 * torch.randn(D_MLP, generator=generator))
        w_out = 0.002 * torch.randn(D_MLP, SCRATCH.stop - SCRATCH.start, generator=generator)
        block.mlp.c_proj.weight[:, SCRATCH] = w_out - w_out.mean(dim=-1, keepdim=True)
        block.mlp.c_proj.bias[SCRATCH] = BIAS_SCALE * torch.randn(scratch, generator=generator)

    model.lm_head.weight[:, COPY] = UNEMBED_GAIN * codes
    model.lm_head.weight[:, NOISE] = NOISE_UNEMBED * torch.randn(GPT2_VOCAB_SIZE, noise, generator=generator)
    for token_id, logit in UNIGRAM_PRIOR.items():
        model.lm_head.weight[token_id, ANCHOR.start] = logit / ANCHOR_NORM
    return model


def layout_description(layout: PlantedLayout, seed: int) -> dict:
    return {
        "synthetic": True,
        "builder": "interp_claims.builtin.embedded.build_planted_gpt2",
        "builder_version": BUILDER_VERSION,
        "seed": seed,
        "planted_heads": {
            name: [f"{layer}.{head}" for layer, head in heads] if name != "fixed_offset"
            else [f"{layer}.{head} (-{steps})" for (layer, head), steps in heads]
            for name, heads in asdict(layout).items()
            if heads
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
    reuses a stale folder."""
    description = json.dumps(layout_description(layout, seed), sort_keys=True)
    digest = hashlib.sha256(description.encode() + Path(__file__).read_bytes()).hexdigest()[:12]
    folder = cache_root() / f"planted-gpt2-v{BUILDER_VERSION}-{digest}"
    if (folder / "planted.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        write_planted_model(staging, layout, seed)
        staging.rename(folder)
    except OSError:
        if not (folder / "planted.json").exists():  # not a lost race with another process
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
