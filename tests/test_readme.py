"""The README's walk-through works: its probe and claim, pasted into a copy of the project, pass."""

import re
import shutil

from tests.helpers import ROOT, run_claim_tests

README = (ROOT / "README.md").read_text()


def code_block(language: str, first_line: str) -> str:
    for block in re.findall(rf"```{language}\n(.*?)```", README, flags=re.S):
        text = "\n".join(line[3:] if line.startswith("   ") else line for line in block.splitlines())
        if text.lstrip().startswith(first_line):
            return text
    raise AssertionError(f"no ```{language} block starting with {first_line!r} in README.md")


def test_readme_probe_and_claim_work_in_a_copy(pytester, tmp_path):
    copy = tmp_path / "project"
    for name in ("probes", "fixtures", "tests"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy(ROOT / name, copy / name)
    probe = code_block("python", "# probes/attention_to_bos.py")
    (copy / "probes" / "attention_to_bos.py").write_text(probe)
    (copy / "my_claims.toml").write_text(code_block("toml", "[[claim]]\nid = \"sink."))
    result = run_claim_tests(pytester, "--claims", str(copy / "my_claims.toml"), "-k", "sink", root=copy)
    assert result.ret == 0, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["*2 passed*"])
