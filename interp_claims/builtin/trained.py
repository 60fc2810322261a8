"""The ``trained`` model: a small GPT-2 trained here, whose circuits nobody placed.

Unlike the embedded model, no weight is written by hand. A Hugging Face ``GPT2LMHeadModel``
(2 layers, 4 heads, d_model 128, attention-only: its MLP weights are zero and frozen) is
trained from a seed on sequences the project generates: ``[BOS]`` followed by segments
``R, R`` with R of 8 to 63 tokens, until 128 tokens. A repeated segment can only be predicted
by finding the earlier occurrence in the context: in-context copying, the task on which
Olsson et al. 2022 ("In-context Learning and Induction Heads") watch induction heads form.
Within R a token repeats the token two before it at rate 0.3 (``A B A``), so a head that reads
the previous token pays off early, as bigram statistics make it pay off in text; the loss is
the mean over every token plus the mean over the second copies. The vocabulary is small (512
tokens, ``<|endoftext|>`` = 0 as BOS) so that it trains on 2 CPU cores; its tokenizer is a
word-level one written next to the weights (the pieces are ``t1`` .. ``t511``; any other word
encodes as ``<|endoftext|>``, so English prompts mean nothing to it: the claims written for
GPT-2's tokenizer do not list this family).

Which mechanism the model finds is measured, not assumed (``fixtures/claims/trained.toml``):
with this recipe its layer-1 heads copy by attending to the token *two* after the earlier
occurrence, reading the answer there through layer 0's previous-token heads. Recipes tried
on the way and what their models did are in the project's issue notes.

Training is deterministic: one torch generator for the data, ``torch.manual_seed`` for the
initialisation, ``torch.use_deterministic_algorithms``. It keeps checkpoints
(``checkpoints/step-NNNNN``, each a Hugging Face folder) and the loss curve (``trained.json``),
so claims can range over training.

    python -m interp_claims.builtin.trained OUT   # train and write the folder (or use --model trained)
"""

import json
import math
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Int
from torch import Tensor
from transformers import GPT2Config, GPT2LMHeadModel

from interp_claims.builtin.cache import CHECKPOINTS_DIR, announce, build_once, cache_root, source_digest

# Bump when the recipe changes: it names the cached folder (with a hash of this file).
TRAINER_VERSION = 1
BOS_ID = 0
DESCRIPTION_FILE = "trained.json"


@dataclass(frozen=True)
class Recipe:
    seed: int = 0
    vocab: int = 512
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 128
    n_ctx: int = 256  # positions the model has; training fills `context` of them
    context: int = 128  # tokens per training sequence after BOS
    min_lag: int = 8
    max_lag: int = 63
    aba_rate: float = 0.3  # within a segment, a token repeats the token two before it at this rate
    batch: int = 32
    steps: int = 1500
    lr: float = 2e-3
    warmup: int = 50
    weight_decay: float = 0.01
    checkpoint_steps: tuple[int, ...] = (0, 250, 500, 750, 1000, 1250, 1500)
    loss_every: int = 25


RECIPE = Recipe()


def segment_batch(recipe: Recipe, generator: torch.Generator) -> tuple[Int[Tensor, "batch pos"], Bool[Tensor, "batch pos"]]:
    """``[BOS, R1, R1, R2, R2, ...]`` cut at ``context`` tokens, R uniform over the vocabulary but
    BOS (with ``A B A`` repeats at ``aba_rate``); and which tokens are second copies."""
    rows, repeats = [], []
    for _ in range(recipe.batch):
        row, repeat = [BOS_ID], [False]
        while len(row) < recipe.context + 1:
            lag = int(torch.randint(recipe.min_lag, recipe.max_lag + 1, (1,), generator=generator))
            segment = torch.randint(1, recipe.vocab, (lag,), generator=generator).tolist()
            aba = (torch.rand(lag, generator=generator) < recipe.aba_rate).tolist()
            for t in range(2, lag):
                if aba[t]:
                    segment[t] = segment[t - 2]
            row += segment + segment
            repeat += [False] * lag + [True] * lag
        rows.append(row[: recipe.context + 1])
        repeats.append(repeat[: recipe.context + 1])
    return torch.tensor(rows), torch.tensor(repeats)


def untrained_model(recipe: Recipe) -> GPT2LMHeadModel:
    """The initialisation (step 0): GPT-2's own init from the recipe's seed, MLPs zeroed and frozen."""
    torch.manual_seed(recipe.seed)
    config = GPT2Config(
        vocab_size=recipe.vocab, n_positions=recipe.n_ctx, n_embd=recipe.d_model, n_layer=recipe.n_layer,
        n_head=recipe.n_head, bos_token_id=BOS_ID, eos_token_id=BOS_ID, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, tie_word_embeddings=True, attn_implementation="eager",
    )
    model = GPT2LMHeadModel(config)
    for block in model.transformer.h:  # attention-only: the MLP adds exactly zero
        for parameter in block.mlp.parameters():
            parameter.data.zero_()
            parameter.requires_grad_(False)
    return model


class ZeroMLP(torch.nn.Module):
    """Stands in for a block's frozen all-zero MLP during training: c_proj(gelu(c_fc(x))) with every
    weight and bias zero is exactly zero, so this computes the same function at half the cost."""

    def forward(self, hidden: Tensor) -> Tensor:
        return torch.zeros_like(hidden)


@contextmanager
def zero_mlps_skipped(model: GPT2LMHeadModel):
    """Within the block, each block's all-zero MLP is replaced by ``ZeroMLP`` (same output, no work)."""
    mlps = [block.mlp for block in model.transformer.h]
    assert all(not p.any() for mlp in mlps for p in mlp.parameters()), "only an all-zero MLP may be skipped"
    for block in model.transformer.h:
        block.mlp = ZeroMLP()
    try:
        yield
    finally:
        for block, mlp in zip(model.transformer.h, mlps, strict=True):
            block.mlp = mlp


def learning_rate(recipe: Recipe, step: int) -> float:
    """Linear warm-up, then cosine decay to a tenth."""
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    return recipe.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


PROGRESS_EVERY = 100  # steps between progress lines (about 30 s on 2 cores)


def train(recipe: Recipe = RECIPE, on_checkpoint=None, steps: int | None = None,
          progress: Callable[[str], None] | None = None) -> tuple[GPT2LMHeadModel, list[dict]]:
    """Train from the recipe's seed; ``on_checkpoint(step, model)`` at each checkpoint step;
    ``progress(line)`` every ``PROGRESS_EVERY`` steps. Returns the model and the loss curve (mean
    loss of every ``loss_every`` steps)."""
    steps = recipe.steps if steps is None else steps
    torch.use_deterministic_algorithms(True)
    model = untrained_model(recipe).train()
    generator = torch.Generator().manual_seed(recipe.seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=recipe.lr, weight_decay=recipe.weight_decay, betas=(0.9, 0.98))
    curve, window, started = [], [], time.perf_counter()
    for step in range(steps + 1):
        if on_checkpoint is not None and step in recipe.checkpoint_steps:
            on_checkpoint(step, model)
        if step == steps:
            break
        tokens, repeats = segment_batch(recipe, generator)
        with zero_mlps_skipped(model):
            logits = model(tokens).logits
        losses = F.cross_entropy(logits[:, :-1].reshape(-1, recipe.vocab), tokens[:, 1:].reshape(-1), reduction="none")
        # the loss on the predictable tokens (second copies): the unpredictable ones only add noise
        # every token (the A B A statistics) plus the second copies (in-context copying) again
        loss = losses.mean() + losses[repeats[:, 1:].reshape(-1)].mean()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(recipe, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        window.append(float(loss.detach()))
        if len(window) == recipe.loss_every:
            curve.append({"step": step + 1, "loss": round(sum(window) / len(window), 4)})
            window = []
        if progress is not None and (step + 1) % PROGRESS_EVERY == 0:
            progress(f"training step {step + 1}/{steps}, loss {curve[-1]['loss'] if curve else float('nan'):.3f}, "
                     f"{time.perf_counter() - started:.0f} s")
    return model.eval(), curve


def write_tokenizer(folder: Path, vocab: int) -> None:
    """A word-level tokenizer of the model's own vocabulary: ``<|endoftext|>`` (0, BOS) and ``t1`` .. ``t{vocab-1}``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {"<|endoftext|>": BOS_ID, **{f"t{i}": i for i in range(1, vocab)}}
    tokenizer = Tokenizer(models.WordLevel(vocab=words, unk_token="<|endoftext|>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece(prefix="##")  # joins pieces with spaces
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
        unk_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=2048,
    )
    fast.save_pretrained(folder)


def description(recipe: Recipe, curve: list[dict], seconds: float) -> dict:
    return {
        "trained": True,
        "builder": "interp_claims.builtin.trained.train",
        "trainer_version": TRAINER_VERSION,
        "recipe": asdict(recipe),
        "checkpoints": [f"step-{step:05d}" for step in recipe.checkpoint_steps],
        "loss_curve": curve,
        "training_seconds": round(seconds, 1),
        "torch": torch.__version__,
    }


def write_trained_model(folder: Path, recipe: Recipe = RECIPE) -> Path:
    """Train and write the final model, its checkpoints and its loss curve as Hugging Face folders."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def save(model: GPT2LMHeadModel, target: Path) -> None:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # eight saves: no progress bar each
        try:
            model.save_pretrained(target)
        finally:
            transformers_logging.enable_progress_bar()
        write_tokenizer(target, recipe.vocab)

    def on_checkpoint(step: int, model: GPT2LMHeadModel) -> None:
        save(model, folder / CHECKPOINTS_DIR / f"step-{step:05d}")

    start = time.perf_counter()
    threads = torch.get_num_threads()
    try:
        model, curve = train(recipe, on_checkpoint, progress=announce)
    finally:
        torch.use_deterministic_algorithms(False)
        torch.set_num_threads(threads)
    save(model, folder)
    (folder / DESCRIPTION_FILE).write_text(json.dumps(description(recipe, curve, time.perf_counter() - start), indent=2))
    return folder


def trained_model_folder(recipe: Recipe = RECIPE) -> Path:
    """The cached folder of this recipe, trained on first use (atomic rename). Its name hashes
    the recipe and this file's source, so a changed trainer never reuses a stale folder."""
    digest = source_digest(json.dumps(asdict(recipe), sort_keys=True), __file__)
    folder = cache_root() / f"trained-gpt2-v{TRAINER_VERSION}-{digest}"

    def build(staging: Path) -> None:
        announce(f"training the 'trained' model once ({recipe.steps} steps, a line every {PROGRESS_EVERY}; cached in {folder})")
        write_trained_model(staging, recipe)

    return build_once(folder, DESCRIPTION_FILE, build)

if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else trained_model_folder()
    if len(sys.argv) > 1:
        write_trained_model(out)
    print(out)
