"""Shared helpers for tests that build model folders and run the suite in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_random_gpt2(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised GPT-2-architecture model (12 layers x 12 heads, d_model 96) with
    GPT-2's tokenizer: the architecture of the claims, none of the behaviours."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from interp_claims.builtin.tokenizer_files import write_gpt2_tokenizer

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=12, n_head=12, n_embd=96, n_positions=1024)
    GPT2LMHeadModel(config).eval().save_pretrained(folder)
    write_gpt2_tokenizer(folder)
    return folder


CLAIM_TESTS = ROOT / "interp_claims" / "suite" / "test_claims.py"
SESSION_ARGS: list[str] = []  # this session's --device/--dtype (set by conftest.py), passed on


def session_option(name: str, default: str) -> str:
    """This session's value of ``--dtype``/``--device`` as passed on to the claim runs it starts."""
    return SESSION_ARGS[SESSION_ARGS.index(name) + 1] if name in SESSION_ARGS else default


def combination(model: str) -> str:
    """The label of ``model`` in a claim run started with ``SESSION_ARGS``: ``model/dtype/device``."""
    import torch

    device = session_option("--device", "cuda" if torch.cuda.is_available() else "cpu")
    return f"{model}/{session_option('--dtype', 'float32')}/{device}"


def run_claim_tests(pytester, *args: str, root: Path = ROOT):
    """Run the claim tests in a fresh interpreter (jaxtyping's import hook needs one), on this
    session's device and dtype unless ``args`` say otherwise."""
    return pytester.run(
        sys.executable, "-m", "pytest", str(CLAIM_TESTS), "--rootdir", str(root),
        "-p", "no:cacheprovider", "-q", *SESSION_ARGS, *args, timeout=900,
    )


def run_suite(pytester, *args: str, report: Path) -> tuple[object, dict[str, bool]]:
    """Run the claim tests; returns pytest's result and {claim id: passed} from the JSON report."""
    result = run_claim_tests(pytester, "--claims-report", str(report), *args)
    outcomes = {}
    if report.exists():
        outcomes = {c["id"]: c["passed"] for c in json.loads(report.read_text())["claims"]}
    return result, outcomes


def subprocess_env() -> dict[str, str]:
    return dict(os.environ)


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env=subprocess_env(), cwd=ROOT, timeout=600)
