"""The plugin as a user installs it (issue 18), each in a separate repository (a temporary folder):

* the wheel and the sdist carry the built-in claims, prompts and probes (as this project's own
  names: ``interp_claims.probes``, ``interp_claims/fixtures``); the wheel, installed into a fresh
  virtual environment that cannot see this source tree, runs the README's walk-through from an
  empty folder, next to a package of the user's own named ``probes``;
* a user's snapshot claim writes its snapshot into the user's repository (``--snapshot-update``),
  never into the installed package, and the next run reads it from there.
"""

import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT, subprocess_env
from tests.test_readme import code_block, readme_command

pytestmark = pytest.mark.slow

PACKAGE_SNAPSHOTS = ROOT / "interp_claims" / "suite" / "__snapshots__" / "test_claims.ambr"


def write_walkthrough(repo: Path) -> None:
    repo.mkdir()
    (repo / "my_probes.py").write_text(code_block("python", "# my_probes.py"))
    (repo / "my_claims.toml").write_text(code_block("toml", "# my_claims.toml"))
    (repo / "pyproject.toml").write_text(code_block("toml", "# pyproject.toml"))


def test_the_wheel_carries_its_claims_and_runs_the_walkthrough_from_an_empty_folder(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(ROOT)],
                   check=True, capture_output=True, env=subprocess_env(), timeout=600)
    subprocess.run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(dist)!r})"],
                   check=True, capture_output=True, cwd=ROOT, env=subprocess_env(), timeout=600)
    wheel = next(dist.glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    builtin_claims = sorted(p.name for p in (ROOT / "fixtures" / "claims").glob("*.toml"))
    assert {f"interp_claims/fixtures/claims/{name}" for name in builtin_claims} <= names
    assert {"interp_claims/fixtures/prompts.toml", "interp_claims/fixtures/ioi.toml", "interp_claims/probes/heads.py",
            "interp_claims/suite/__snapshots__/test_claims.ambr", "interp_claims/builtin/gpt2-published-heads.json"} <= names
    assert not any(name.startswith("probes/") for name in names)  # no top-level `probes` to clash with a user's
    sdist = subprocess.run(["tar", "tzf", str(next(dist.glob("*.tar.gz")))], capture_output=True, text=True, check=True).stdout
    assert all(f"fixtures/claims/{name}" in sdist for name in builtin_claims) and "probes/heads.py" in sdist

    venv = tmp_path / "venv"  # a fresh environment: the wheel and its dependencies, nothing of this tree
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True, timeout=600)
    python = str(venv / "bin" / "python")
    torch_spec = f"torch=={__import__('torch').__version__.split('+')[0]}"  # this machine's CPU build, as setup.sh installs
    install = subprocess.run([python, "-m", "pip", "install", "-q", str(wheel), torch_spec],
                             capture_output=True, text=True, env=subprocess_env(), timeout=1200)
    assert install.returncode == 0, install.stderr[-3000:]

    repo = tmp_path / "my-claims"
    write_walkthrough(repo)
    (repo / "probes").mkdir()  # a package of the user's own named `probes` hides nothing
    (repo / "probes" / "__init__.py").write_text("USERS_OWN = True\n")
    env = {k: v for k, v in subprocess_env().items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run([python, "-c", "import interp_claims; print(interp_claims.__file__)"],
                           cwd=repo, capture_output=True, text=True, env=env, timeout=120)
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
    command = [arg.strip('"') for arg in readme_command()]
    result = subprocess.run([python, "-m", *command, "-p", "no:cacheprovider"], cwd=repo, capture_output=True, text=True,
                            env=env, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    builtin = re.search(r"interp-claims: (\d+) built-in claims \((.*)\), 2 of yours", output)  # sink.induction-heads x 2 heads
    assert builtin and int(builtin.group(1)) > 100 and builtin.group(2).startswith(str(venv)), output[:3000]
    assert "4 passed" in output, output[-2000:]


SNAPSHOT_CLAIM = """
[[claim]]
id = "mine.top-tokens"
behaviour = "mine"
kind = "sanity"
models = ["embedded"]
probe = "top_next_tokens"
source = "observed on the embedded model"
input = { text = "Hello world" }
params = { k = 3 }
expect = { op = "snapshot" }
"""


def test_a_users_snapshot_lives_in_the_users_repository(tmp_path):
    repo = tmp_path / "repo"
    (repo / "claims").mkdir(parents=True)
    (repo / "claims" / "mine.toml").write_text(SNAPSHOT_CLAIM)
    (repo / "pyproject.toml").write_text('[tool.pytest.ini_options]\nclaims_files = ["claims/mine.toml"]\n')
    before = hashlib.sha256(PACKAGE_SNAPSHOTS.read_bytes()).hexdigest()

    def run(*extra: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "--pyargs", "interp_claims.suite.test_claims", "-k", "mine", "-p", "no:cacheprovider", *extra],
            cwd=repo, capture_output=True, text=True, env=subprocess_env(), timeout=600,
        )
        return f"exit {result.returncode}\n{result.stdout}{result.stderr}"

    missing = run()
    assert missing.startswith("exit 1") and "does not exist" in missing, missing[-2000:]
    assert run("--snapshot-update").startswith("exit 0")
    written = repo / "claims" / "__snapshots__" / "test_claims.ambr"
    assert "mine.top-tokens" in written.read_text()
    assert run().startswith("exit 0")
    assert hashlib.sha256(PACKAGE_SNAPSHOTS.read_bytes()).hexdigest() == before  # the package's file untouched
