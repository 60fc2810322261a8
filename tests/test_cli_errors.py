"""What a user sees for bad options and bad claims: one clear line, no traceback from torch."""

from tests.helpers import run_claim_tests as run_pytest


def test_unusable_device_stops_the_session_at_once(pytester):
    result = run_pytest(pytester, "--device", "cuda:99")
    assert result.ret == 4  # pytest's usage error: no test ran
    result.stderr.fnmatch_lines(["ERROR: --device 'cuda:99': *"])


def test_malformed_claim_file_names_file_and_row(pytester, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[claim]]\nid = "x"\nbehaviour = "b"\nmodels = ["*"]\nprobe = "nope"\nsource = "s"\nexpect = { op = "==", value = 1 }\n')
    result = run_pytest(pytester, "--claims", str(bad))
    assert result.ret == 4
    result.stderr.fnmatch_lines([f"ERROR: {bad}: claim #1 (id 'x'): unknown probe 'nope'. Registered: *"])


def test_bad_claim_input_fails_that_claim_with_one_line(pytester, tmp_path):
    claims = tmp_path / "mine.toml"
    claims.write_text(
        '[[claim]]\nid = "mine.head-out-of-range"\nbehaviour = "induction"\nmodels = ["*"]\nprobe = "head_score"\n'
        'source = "s"\njustification = "j"\ninput = { repeated_random = { seq_len = 5, batch = 1, seed = 0 } }\n'
        'params = { kind = "induction", head = "12.0" }\nexpect = { op = ">", value = 0.4 }\n'
    )
    result = run_pytest(pytester, "--claims", str(claims), "-k", "mine")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["*claim mine.head-out-of-range (*mine.toml #1): ProbeInputError: head '12.0' is outside the model (layers 0..11, heads 0..11)"]
    )
    assert "Traceback" not in result.stdout.str()
