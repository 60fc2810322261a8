"""Write the embedded model out as a standard Hugging Face folder.

    python -m interp_claims.export DIR [--seed N]

The folder (config.json, model.safetensors, GPT-2's tokenizer files, planted.json)
loads unchanged with ``transformers.AutoModelForCausalLM.from_pretrained(DIR)`` and
``TransformerBridge.boot_transformers(DIR)``.
"""

import argparse
import sys
from pathlib import Path

from interp_claims.builtin.embedded import DEFAULT_SEED, write_planted_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interp_claims.export", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where to write the model (created; must be empty if it exists)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the token and position codes")
    args = parser.parse_args(argv)
    if args.folder.exists() and any(args.folder.iterdir()):
        parser.error(f"folder {args.folder} exists and is not empty: give a new or empty folder")
    write_planted_model(args.folder, seed=args.seed)
    print(f"wrote the embedded model to {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
