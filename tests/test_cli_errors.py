"""What a user sees for bad options, bad claims and unusable models: one clear `ERROR:` line,
exit code 4 (pytest's usage error), no traceback, and no test run.

Runs ``python -m pytest`` from the project root without naming ``tests/``: the plugin's
options exist before pytest chooses its rootdir (entry point ``pytest11``).
"""

import fnmatch
import glob
import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT, run, run_claim_tests


def pytest_from_root(*args: str):
    return run(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args)


def assert_one_error(result, pattern: str) -> None:
    """``result``: a CompletedProcess, or pytester's RunResult."""
    if hasattr(result, "ret"):
        result = subprocess.CompletedProcess((), result.ret, result.stdout.str(), result.stderr.str())
    output = result.stdout + result.stderr
    assert result.returncode == 4, output[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, output[-3000:]
    assert fnmatch.fnmatch(errors[0], pattern), errors[0]
    assert "Traceback" not in output


def broken_copy(source, target, change) -> str:
    """A copy of a model folder (large files linked, not copied) with one thing broken."""
    target.mkdir()
    for path in source.iterdir():
        (target / path.name).symlink_to(path)
    change(target)
    return str(target)


def cut_config(folder) -> None:
    text = (folder / "config.json").read_text()
    (folder / "config.json").unlink()
    (folder / "config.json").write_text(text[: len(text) // 2])


def truncate_weights(folder) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def drop_tokenizer(folder) -> None:
    (folder / "vocab.json").unlink()


def other_architecture(folder) -> None:
    config = json.loads((folder / "config.json").read_text()) | {"model_type": "llama"}
    (folder / "config.json").unlink()
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (cut_config, "ERROR: model '*': */config.json is not valid JSON (*). Re-download or re-save the model."),
        (truncate_weights, "ERROR: model '*': the weights file */model.safetensors is unusable: it is * bytes but its header describes * (truncated).*"),
        (drop_tokenizer, "ERROR: model '*': the folder * lacks a tokenizer (tokenizer.json, or vocab.json + merges.txt).*"),
        (other_architecture, "ERROR: model '*' has architecture 'llama' (config.json model_type); *valid architectures are 'gpt2'."),
    ],
    ids=["config-cut-short", "weights-truncated", "no-tokenizer", "other-architecture"],
)
def test_unusable_model_folder_is_one_error(pytester, random_gpt2_folder, tmp_path, change, pattern):
    folder = broken_copy(random_gpt2_folder, tmp_path / "broken", change)
    assert_one_error(run_claim_tests(pytester, "--model", folder), pattern)


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (("--device", "cuda:99"), "ERROR: --device 'cuda:99': *"),
        (("--model", str(ROOT / "pyproject.toml")), "ERROR: --model '*pyproject.toml' is a file, not a folder. Give the folder that holds the model*"),
        (("--model", "gpt3"), "ERROR: --model 'gpt3' is not a known model. Valid: 'embedded' *"),
        (("--claims", "/nonexistent/claims.toml"), "ERROR: claim file /nonexistent/claims.toml does not exist"),
    ],
    ids=["no-such-cuda-device", "file-not-folder", "unknown-model", "claims-path-missing"],
)
def test_bad_option_is_one_error(args, pattern):
    assert_one_error(pytest_from_root(*args), pattern)


def test_empty_claims_file_is_one_error(tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing yet\n")
    assert_one_error(pytest_from_root(f"--claims={empty}"), glob.escape(f"ERROR: {empty}: no [[claim]] tables found"))


def test_malformed_claim_file_names_file_and_row(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[claim]]\nid = "x"\nbehaviour = "b"\nkind = "sanity"\nmodels = ["*"]\nprobe = "nope"\nsource = "s"\nexpect = { op = "==", value = 1 }\n')
    assert_one_error(pytest_from_root(f"--claims={bad}"), glob.escape(f"ERROR: {bad}: claim #1 (id 'x'): unknown probe 'nope'. Registered: ") + "*")


def test_a_model_folder_and_a_claim_file_anywhere_work_from_the_root(random_gpt2_folder, tmp_path):
    """`pytest --model /abs/folder --claims /abs/x.toml -k name` from the project root."""
    claims = tmp_path / "elsewhere" / "mine.toml"
    claims.parent.mkdir()
    claims.write_text(
        '[[claim]]\nid = "mine.quomatarus"\nbehaviour = "tokenization"\nkind = "sanity"\nmodels = ["*"]\nprobe = "token_count"\n'
        'source = "s"\nparams = { text = " Quomatarus" }\nexpect = { op = "==", value = 4 }\n'
    )
    result = pytest_from_root(f"--model={random_gpt2_folder}", f"--claims={claims}", "-k", "mine", "-v")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "1 passed" in result.stdout
    assert f"rootdir: {ROOT}" in result.stdout and "configfile: pyproject.toml" in result.stdout


def test_a_model_folder_as_a_separate_argument_is_one_error_with_the_remedy(random_gpt2_folder):
    """pytest picks its rootdir before the plugin's options exist: `--model /abs` would make the
    folder the rootdir and skip the project's configuration, so it stops and says to write `--model=`."""
    result = pytest_from_root("--model", str(random_gpt2_folder))
    assert result.returncode == 4
    assert_one_error(result, f"ERROR: pytest took * (from {random_gpt2_folder}, a --model or --claims value) for its rootdir*--model=/abs/folder*"
                             f"-c {ROOT / 'pyproject.toml'}")
    # both remedies the message gives work
    for remedy in ([f"--model={random_gpt2_folder}"], ["--model", str(random_gpt2_folder), "-c", str(ROOT / "pyproject.toml")]):
        fixed = pytest_from_root(*remedy, "-k", "normalisation.notebook-prompt", str(ROOT / "interp_claims" / "suite" / "test_claims.py"))
        assert fixed.returncode == 0 and "1 passed" in fixed.stdout, fixed.stdout[-2000:] + fixed.stderr[-2000:]


def test_bad_claim_input_fails_that_claim_with_one_line(pytester, random_gpt2_folder, tmp_path):
    claims = tmp_path / "mine.toml"
    claims.write_text(
        '[[claim]]\nid = "mine.head-out-of-range"\nbehaviour = "induction"\nkind = "behaviour"\nmodels = ["*"]\nprobe = "head_score"\n'
        'source = "s"\njustification = "j"\ninput = { repeated_random = { seq_len = 5, batch = 1, seed = 0 } }\n'
        'params = { kind = "induction", head = "12.0" }\nexpect = { op = ">", value = 0.4 }\n'
    )
    result = run_claim_tests(pytester, "--model", str(random_gpt2_folder), "--claims", str(claims), "-k", "mine")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["*claim mine.head-out-of-range (*mine.toml #1): ProbeInputError: head '12.0' is outside the model (layers 0..11, heads 0..11)"]
    )
    assert "Traceback" not in result.stdout.str()
