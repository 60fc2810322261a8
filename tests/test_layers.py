"""The package's layers, enforced: every module imports only from the layers below its own.

Every import counts, at module level or inside a function (a late import is still a dependency).
A new module must be given a layer here, so the shape cannot decay unnoticed; the README's
Layout section draws the same picture.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "interp_claims"

# Lowest first. A module may import from any layer below its own, never from its own or above:
# so the import graph has no cycle, and the engine cannot reach up into the measurements.
LAYERS: list[tuple[str, set[str]]] = [
    ("leaves", {"errors", "measurement", "tolerances", "resources", "registry", "report",
                "builtin", "builtin.cache", "builtin.tokenizer_files"}),
    ("published tables and hub access", {"published", "hub"}),
    ("models built here", {"builtin.embedded", "builtin.trained"}),
    ("models", {"models"}),
    ("inputs and checkpoints", {"inputs", "checkpoints"}),
    ("claims and forward passes", {"claims", "context"}),
    ("probe modules", {"probes.*"}),
    ("probes", {"probes"}),  # the package's __init__ imports every probe module (importlib: not in the graph)
    ("measurer", {"measurer"}),
    ("matrix", {"matrix"}),
    ("records, comparison, checkpoint sweeps", {"records", "compare", "sweep"}),
    ("engine", {"run"}),
    ("adapters and tools", {"plugin", "zoo", "export", "__init__"}),
    ("pytest suite", {"suite", "suite.*"}),
]
# What a probe may use: the measurements sit on the context and its inputs, nothing of the run.
PROBE_DEPENDENCIES = {"context", "inputs", "measurement", "registry", "resources", "published", "probes"}
# The only modules that know pytest: the adapter and the tests it parametrizes.
PYTEST_MODULES = {"plugin", "suite", "suite.test_claims", "suite.test_probe_conformance"}


def source_files() -> dict[str, Path]:
    """Module name (relative to the package: ``run``, ``builtin.cache``, ``probes.heads``) -> file."""
    files = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = path.relative_to(ROOT / PACKAGE).with_suffix("").parts
        files[".".join(parts[:-1]) if parts[-1] == "__init__" and len(parts) > 1 else ".".join(parts)] = path
    for path in sorted((ROOT / "probes").glob("*.py")):  # installed as interp_claims.probes
        files["probes" if path.stem == "__init__" else f"probes.{path.stem}"] = path
    return files


def imports_of(path: Path) -> set[str]:
    """Every module of the package ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name == PACKAGE:
                found.add("__init__")
            elif name.startswith(PACKAGE + "."):
                found.add(name.removeprefix(PACKAGE + "."))
    return found


def imports_pytest(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(alias.name.split(".")[0] in ("pytest", "_pytest") for alias in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("pytest", "_pytest", "syrupy"):
            return True
    return False


def layer_of(module: str) -> int | None:
    for index, (_, members) in enumerate(LAYERS):
        if module in members or any(m.endswith(".*") and module.startswith(m[:-1]) for m in members):
            return index
    return None


FILES = source_files()
GRAPH = {module: {m for m in imports_of(path) if m in FILES} for module, path in FILES.items()}


def test_every_module_has_a_layer():
    assert [m for m in FILES if layer_of(m) is None] == []


def upward(module: str, dependencies: set[str]) -> dict[str, str]:
    """The dependencies of ``module`` in its own layer or above (probe modules may share helpers)."""
    own = layer_of(module)
    return {dependency: LAYERS[layer_of(dependency)][0] for dependency in dependencies
            if layer_of(dependency) >= own and not (module.startswith("probes.") and dependency.startswith("probes"))}


@pytest.mark.parametrize("module", sorted(FILES))
def test_a_module_imports_only_from_layers_below_its_own(module):
    assert upward(module, GRAPH[module]) == {}, f"{module} ({LAYERS[layer_of(module)][0]}) imports from its own layer or above"


@pytest.mark.parametrize("module", sorted(m for m in FILES if m.startswith("probes.")))
def test_probes_use_only_the_context_and_its_inputs(module):
    outside = {d for d in GRAPH[module] if d.split(".")[0] not in PROBE_DEPENDENCIES}
    assert outside == set(), f"{module} reaches past the probe API into {sorted(outside)}"


def test_only_the_adapter_and_the_suite_import_pytest():
    assert sorted(m for m, path in FILES.items() if imports_pytest(path)) == sorted(PYTEST_MODULES - {"suite"})


def test_a_late_upward_import_is_caught(tmp_path):
    """An import inside a function counts: the measurer reaching up into the engine is flagged."""
    planted = tmp_path / "measurer.py"
    planted.write_text("import torch\n\ndef f():\n    from interp_claims.run import ClaimRun\n    return ClaimRun\n")
    assert imports_of(planted) == {"run", "run.ClaimRun"}
    assert upward("measurer", imports_of(planted) & set(FILES)) == {"run": "engine"}
    assert upward("run", {"measurer"}) == {}


def loaded_after(statement: str, watched: tuple[str, ...]) -> list[str]:
    """The watched modules a fresh interpreter has imported after ``statement``."""
    code = f"import sys\n{statement}\nprint(' '.join(m for m in {watched!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()


def test_the_layers_hold_at_run_time():
    """Reading claim files loads no model code; the engine loads neither pytest nor the probes
    (the run imports them through the entry point, once, when it starts)."""
    heavy = ("interp_claims.context", "interp_claims.measurer", "interp_claims.probes", "transformer_lens", "transformers", "pytest")
    assert loaded_after("import interp_claims.claims", heavy) == []
    assert loaded_after("import interp_claims.run", ("pytest", "interp_claims.probes", "transformer_lens")) == []


def test_the_readme_layout_names_every_module_and_only_those():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    layout = layout[: layout.index("```", layout.index("```") + 3)]
    named = {word.rstrip(",:()") for word in layout.replace("(", " ").replace(")", " ").split() if word.rstrip(",:()").endswith(".py")}
    modules = {path.name for path in (ROOT / PACKAGE).glob("*.py") if path.name != "__init__.py"}
    modules |= {path.name for path in (ROOT / "probes").glob("*.py") if path.name != "__init__.py"}
    modules |= {"conftest.py", "cache.py"}
    assert named - modules == set(), "the Layout names files that do not exist"
    assert modules - named == set(), "the Layout leaves out these modules"
