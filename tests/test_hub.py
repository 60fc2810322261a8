"""The Hugging Face download path, end to end and offline: the suite runs in a subprocess with
``HF_ENDPOINT`` pointing at a Hub-compatible server on 127.0.0.1 (tests/hub_server.py) that
serves real model folders, and an empty ``HF_HOME``. Nothing is mocked: huggingface_hub makes
its ordinary calls, writes its ordinary cache, and TransformerLens boots what it wrote.
"""

import json
import shutil
import sys
import time

import pytest

from tests.helpers import run_claim_tests, write_random_gpt2
from tests.hub_server import HubServer, Repo, SilentServer

pytestmark = pytest.mark.hub
REPO_ID = "interp-claims-test/tiny-gpt2"
CLAIM = "normalisation.notebook-prompt"  # a claim for any GPT-2-architecture model: one forward pass


@pytest.fixture(scope="module")
def hub_repo(tmp_path_factory, random_gpt2_folder) -> Repo:
    """main -> a random GPT-2 (seed 0) that also carries pytorch_model.bin (only one format may be
    downloaded); tag v1 -> another random GPT-2 (seed 1)."""
    import torch
    from safetensors.torch import load_file

    root = tmp_path_factory.mktemp("hub")
    main = root / "main"
    shutil.copytree(random_gpt2_folder, main)
    torch.save(load_file(main / "model.safetensors"), main / "pytorch_model.bin")
    repo = Repo(REPO_ID)
    repo.add_commit(main, "main")
    repo.add_commit(write_random_gpt2(root / "v1", seed=1), "v1")
    return repo


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    """An empty Hugging Face home for the subprocess; HF_HUB_OFFLINE unset unless a test sets it."""
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    return home


def run_on_hub(pytester, monkeypatch, endpoint: str, report, *args: str):
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    start = time.perf_counter()
    result = run_claim_tests(pytester, "--model", REPO_ID, "-k", CLAIM, "--claims-report", str(report), *args)
    run = json.loads(report.read_text())["run"] if report.exists() else None
    return result, run, time.perf_counter() - start


@pytest.mark.slow
def test_download_into_empty_cache_then_offline_from_the_cache(pytester, monkeypatch, hf_home, hub_repo, tmp_path):
    with HubServer({REPO_ID: hub_repo}) as hub:
        result, run, _ = run_on_hub(pytester, monkeypatch, hub.endpoint, tmp_path / "first.json")
        assert result.ret == 0, result.stdout.str()[-3000:] + result.stderr.str()[-3000:]
        commit = hub_repo.refs["main"]
        snapshot = hf_home / "hub" / "models--interp-claims-test--tiny-gpt2" / "snapshots" / commit
        assert (run["commit"], run["revision"], run["weights_origin"]) == (commit, "main", "hub")
        assert run["precision"]["cuda_matmul_fp32_precision"] == "ieee"  # no TF32, whatever the dtype
        assert run["weights_folder"] == str(snapshot) and (snapshot / "model.safetensors").is_file()
        downloaded = {r.split("/")[-1] for r in hub.requests if r.startswith("GET") and "/resolve/" in r}
        assert "model.safetensors" in downloaded and "pytorch_model.bin" not in downloaded  # one weights format
        result.stdout.fnmatch_lines([f"*model {REPO_ID} at {commit} (revision main)*"])

        requests_before = len(hub.requests)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the server is still up: the run must not ask it anything
        result, run, _ = run_on_hub(pytester, monkeypatch, hub.endpoint, tmp_path / "second.json")
        assert result.ret == 0, result.stdout.str()[-3000:]
        assert (run["commit"], run["weights_origin"], run["weights_folder"]) == (commit, "cache", str(snapshot))
        assert hub.requests[requests_before:] == []


@pytest.mark.slow
def test_pinned_revision_is_honoured(pytester, monkeypatch, hf_home, hub_repo, tmp_path):
    with HubServer({REPO_ID: hub_repo}) as hub:
        result, run, _ = run_on_hub(pytester, monkeypatch, hub.endpoint, tmp_path / "r.json", "--revision", "v1")
    assert result.ret == 0, result.stdout.str()[-3000:]
    tagged = hub_repo.refs["v1"]
    assert tagged != hub_repo.refs["main"]
    assert (run["revision"], run["commit"]) == ("v1", tagged)
    assert run["weights_folder"].endswith(f"/snapshots/{tagged}")
    served = hub_repo.commits[tagged] / "model.safetensors"
    assert (hf_home / "hub" / "models--interp-claims-test--tiny-gpt2" / "snapshots" / tagged / "model.safetensors").read_bytes() == served.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--model", "interp-claims-test/no-such-model"), "ERROR: model 'interp-claims-test/no-such-model': no such repository on http://127.0.0.1:*"),
        (("--revision", "v9"), f"ERROR: model '{REPO_ID}': revision 'v9' does not exist on http://127.0.0.1:*"),
    ],
    ids=["unknown-repo", "unknown-revision"],
)
def test_unknown_repository_or_revision_is_one_error(pytester, monkeypatch, hf_home, hub_repo, tmp_path, args, message):
    with HubServer({REPO_ID: hub_repo}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        result = run_claim_tests(pytester, "--model", REPO_ID, *args)
    assert result.ret == 4
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_unreachable_hub_without_a_cache_is_one_error_with_the_remedy(pytester, monkeypatch, hf_home, tmp_path):
    """A Hub that accepts connections and never answers: the metadata call's timeout ends the wait
    (10 s by default; 2 s here to keep the test quick)."""
    monkeypatch.setenv("INTERP_CLAIMS_HUB_TIMEOUT", "2")
    with SilentServer() as silent:
        result, _, seconds = run_on_hub(pytester, monkeypatch, silent.endpoint, tmp_path / "r.json")
    assert result.ret == 4
    result.stderr.fnmatch_lines([
        f"ERROR: model '{REPO_ID}' (revision 'main') is not in the local Hugging Face cache * and the Hub at "
        "http://127.0.0.1:* could not be reached (*Timeout*). Remedy: *python -m interp_claims.hub*"
    ])
    print(f"unreachable Hub answered in {seconds:.1f} s (subprocess included)")


def test_offline_without_a_cache_is_an_error_unless_skips_are_asked_for(pytester, monkeypatch, hf_home, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = run_claim_tests(pytester, "--model", "gpt2")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["ERROR: model 'openai-community/gpt2' (revision 'main') is not in the local Hugging Face cache * HF_HUB_OFFLINE is set.*"])
    skipped = run_claim_tests(pytester, "--model", "gpt2", "--skip-missing-model", "-k", "tokenization")
    assert skipped.ret == 0
    skipped.stdout.fnmatch_lines(["SKIPPED * needs the model's weights: model 'openai-community/gpt2' *", "*skipped*"])


CHECKPOINT_CLAIMS = """
[[claim]]
id = "mine.normalised-at-each-revision"
behaviour = "normalisation"
kind = "sanity"
models = ["*"]
probe = "probability_sum_deviation"
checkpoints = [{revisions}]
at = "each"
source = "a claim over a Hugging Face model's checkpoint revisions (Pythia's step1000 branches, say)"
justification = "any healthy checkpoint normalises; the point is that each revision is fetched and measured"
input = {{ text = "The cat sat on the mat" }}
expect = {{ op = "<=", value = "probability" }}
"""


@pytest.mark.slow
def test_checkpoints_of_a_hub_model_are_its_revisions(pytester, monkeypatch, hf_home, hub_repo, tmp_path):
    """A claim with ``checkpoints = ["v1", "main"]`` on a Hub id fetches each revision from the Hub
    (its commit's files) and measures each; a revision the Hub lacks ends the session naming it."""
    claims, report = tmp_path / "checkpoints.toml", tmp_path / "r.json"
    claims.write_text(CHECKPOINT_CLAIMS.format(revisions='"v1", "main"'))
    with HubServer({REPO_ID: hub_repo}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        result = run_claim_tests(pytester, "--model", REPO_ID, f"--claims={claims}", "-k", "mine.",
                                 "--claims-report", str(report))
        requested = [r for r in hub.requests if "/resolve/" in r and r.endswith("model.safetensors")]
        claims.write_text(CHECKPOINT_CLAIMS.format(revisions='"v1", "v9"'))
        missing = run_claim_tests(pytester, "--model", REPO_ID, f"--claims={claims}", "-k", "mine.")
    assert result.ret == 0, result.stdout.str()[-3000:] + result.stderr.str()[-3000:]
    (claim,) = json.loads(report.read_text())["claims"]
    assert [name for name, _ in claim["details"]["series"]] == ["v1", "main"]
    assert all(value <= 1e-4 for _, value in claim["details"]["series"])
    assert any("/v1/" in r or hub_repo.refs["v1"] in r for r in requested), requested
    assert any("/main/" in r or hub_repo.refs["main"] in r for r in requested), requested
    assert missing.ret == 4
    # a checkpoint is fetched mid-session: pytest.exit's line, on stdout
    missing.stdout.fnmatch_lines([f"*Exit: ERROR: model '{REPO_ID}': revision 'v9' does not exist on http://127.0.0.1:*"])


@pytest.mark.slow
def test_gpu_workflow_downloads_gpt2_and_checks_the_published_tables_first(pytester, monkeypatch, hf_home, tmp_path):
    """gpu.yml's download step and its first claims step, as written (on this machine's device
    instead of ``--device cuda``), against GPT-2's published twin served as
    ``openai-community/gpt2`` at a pinned commit: the download fills the cache, then the published
    tables are checked offline from it, and the twin, built from them, passes all three; then the
    benchmark step writes its JSON with the model's commit (it crashed before: issue 18)."""
    import shlex

    import yaml

    from interp_claims.builtin.embedded import planted_model_folder
    from tests.helpers import ROOT, SESSION_ARGS

    twin = tmp_path / "gpt2-twin"  # the twin's files, without planted.json: a plain Hugging Face folder
    twin.mkdir()
    for path in planted_model_folder().iterdir():
        if path.name != "planted.json":
            (twin / path.name).symlink_to(path)
    repo = Repo("openai-community/gpt2")
    commit = repo.add_commit(twin, "main")
    steps = {step.get("name"): step for step in yaml.safe_load((ROOT / ".github/workflows/gpu.yml").read_text())["jobs"]["gpu"]["steps"]}

    def command(name: str) -> list[str]:
        words = shlex.split(steps[name]["run"].replace('"$GPT2_REVISION"', commit))
        assert words[:3] == [".venv/bin/python", "-m", words[2]]
        if "--device" in words:  # the workflow's runner has CUDA; this machine may not
            del words[words.index("--device") : words.index("--device") + 2]
        return [sys.executable, *words[1:]]

    with HubServer({repo.repo_id: repo}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        download = pytester.run(*command("Download GPT-2 at the pinned revision (the only step that contacts the Hub)"), timeout=600)
        assert download.ret == 0, download.stdout.str()[-2000:] + download.stderr.str()[-2000:]
        warm = len(hub.requests)  # the same step on a warm cache: a pinned commit needs no request
        again = pytester.run(*command("Download GPT-2 at the pinned revision (the only step that contacts the Hub)"), timeout=600)
        assert again.ret == 0 and hub.requests[warm:] == [] and f"at {commit} (revision {commit}, cache)" in again.stdout.str()
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        before = len(hub.requests)
        first = command("GPT-2's published head tables first (all 432 scores under the demo's own setup)")
        assert first[3:5] == ["interp_claims/suite", "-k"]
        result = pytester.run(*first[:3], str(ROOT / first[3]), "--rootdir", str(ROOT), "-p", "no:cacheprovider",
                              *SESSION_ARGS, *first[4:], timeout=900)
        assert hub.requests[before:] == []  # offline: from the cache the download step filled
        # gpu.yml's benchmark step, as written: --benchmark-json records where the timings came from
        bench = command("Benchmarks on GPT-2")
        assert bench[3] == "tests/test_benchmarks.py" and any(w.startswith("--benchmark-json=") for w in bench)
        bench_json = tmp_path / "benchmarks.json"
        bench = [w if not w.startswith("--benchmark-json=") else f"--benchmark-json={bench_json}" for w in bench]
        timings = pytester.run(*bench[:3], str(ROOT / bench[3]), "--rootdir", str(ROOT), "-p", "no:cacheprovider",
                               *SESSION_ARGS, *bench[4:], "-k", "forward_pass", timeout=900)
        assert hub.requests[before:] == []
    assert result.ret == 0, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines([f"*model openai-community/gpt2 at {commit} (revision {commit})*",
                                 "*3/3 claims passed (behaviour 3/3 passed)*"])
    assert timings.ret == 0, timings.stdout.str()[-3000:] + timings.stderr.str()[-2000:]
    recorded = json.loads(bench_json.read_text())
    assert recorded["machine_info"]["interp_claims"]["commit"] == commit
    assert [b["name"] for b in recorded["benchmarks"]] == ["test_forward_pass"]
