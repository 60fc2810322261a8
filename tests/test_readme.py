"""The README's walk-through works as written: its probe, claim file and pyproject.toml in a
separate repository (a temporary folder outside this one) with no conftest and no test code.
`pytest --pyargs interp_claims.suite` runs the user's claims and gives the user's probe the
conformance tests the built-in ones get; the JUnit XML carries each claim's evidence."""

import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

from tests.helpers import ROOT, subprocess_env

README = (ROOT / "README.md").read_text()


def code_block(language: str, first_line: str) -> str:
    for block in re.findall(rf"```{language}\n(.*?)```", README, flags=re.S):
        text = "\n".join(line[3:] if line.startswith("   ") else line for line in block.splitlines())
        if text.lstrip().startswith(first_line):
            return text
    raise AssertionError(f"no ```{language} block starting with {first_line!r} in README.md")


def readme_command() -> list[str]:
    line = next(line for line in code_block("bash", "pytest --pyargs").splitlines() if line.startswith("pytest"))
    return re.findall(r'"[^"]*"|\S+', line)


def test_readme_walkthrough_in_a_separate_repository(tmp_path):
    repo = tmp_path / "my-claims"
    repo.mkdir()
    (repo / "my_probes.py").write_text(code_block("python", "# my_probes.py"))
    (repo / "my_claims.toml").write_text(code_block("toml", "# my_claims.toml"))
    (repo / "pyproject.toml").write_text(code_block("toml", "# pyproject.toml"))
    command = [arg.strip('"') for arg in readme_command()]
    assert command[:3] == ["pytest", "--pyargs", "interp_claims.suite"]
    junit = tmp_path / "junit.xml"
    result = subprocess.run(
        [sys.executable, "-m", *command, "-p", "no:cacheprovider", f"--junitxml={junit}"],
        cwd=repo, capture_output=True, text=True, env=subprocess_env(), timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert f"rootdir: {repo}" in output  # the user's configuration, not this repository's
    assert "4 passed" in output, output[-2000:]  # 2 claims + 2 conformance tests of the user's probe
    cases = {case.get("name"): case for case in ElementTree.parse(junit).iter("testcase")}
    assert {"test_probe_is_deterministic_json_ready_and_read_only[attention_to_bos]",
            "test_probe_refuses_bad_input_clearly[attention_to_bos]"} <= set(cases)
    claim = cases["test_claim[sink.induction-heads[5.1]]"]
    properties = {p.get("name"): p.get("value") for p in claim.iter("property")}
    assert properties["source"] == "observed" and properties["threshold"] == "> 0.5"
    assert float(properties["value"]) > 0.5 and float(properties["margin"]) == float(properties["value"]) - 0.5
