"""Probe name -> function. Adding a probe is one function and one decorator.

    @probe("my_score", hooks=("attn.hook_pattern",))
    def my_score(ctx: ProbeContext, *, head: str) -> Measurement: ...

``hooks`` names the activations the probe reads (suffixes of TransformerLens hook
names); every claim on the same input shares one ``run_with_cache`` pass that keeps
the union of them. ``hooks=None`` means the claim has no ``input``: the probe needs no
forward pass (tokenizer facts) or builds its own inputs (generated prompts).

Where probes come from (all found before any claim file is read):

* modules named by installed packages under the entry-point group ``interp_claims.probes``
  (``[project.entry-points."interp_claims.probes"] mine = "my_package.my_probes"``); the built-in
  probes come this way too (``builtin = "interp_claims.probes"``, whose ``__init__`` imports every
  module of the package, so a new ``probes/<name>.py`` needs no listing);
* modules named in the ``claims_probes`` setting of the pytest configuration
  (``[tool.pytest.ini_options] claims_probes = ["my_probes"]``), imported with the
  project's root directory on ``sys.path``.

A leaf: this module imports nothing of the package (the probes import it, not the reverse).
"""

import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "interp_claims.probes"


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    function: Callable
    hooks: tuple[str, ...] | None
    params: tuple[str, ...]  # keyword parameters the function accepts
    required: tuple[str, ...]  # those without a default

    @property
    def needs_forward(self) -> bool:
        return self.hooks is not None


PROBES: dict[str, ProbeSpec] = {}
_ENTRY_POINTS_LOADED = False


class ProbeModuleError(ImportError):
    """A probe module named by the user cannot be imported; the message names it and where it was named."""


def probe(name: str, hooks: tuple[str, ...] | None = ()) -> Callable[[Callable], Callable]:
    """Register ``function`` under ``name``; a second registration of a name is an error."""

    def register(function: Callable) -> Callable:
        known = PROBES.get(name)
        if known and (known.function.__module__, known.function.__qualname__) != (function.__module__, function.__qualname__):
            raise ValueError(
                f"probe {name!r} is registered twice: {PROBES[name].function.__module__} and {function.__module__}"
            )
        signature = inspect.signature(function)
        keywords = [p for p in signature.parameters.values() if p.kind == p.KEYWORD_ONLY]
        PROBES[name] = ProbeSpec(
            name=name,
            function=function,
            hooks=tuple(hooks) if hooks is not None else None,
            params=tuple(p.name for p in keywords),
            required=tuple(p.name for p in keywords if p.default is p.empty),
        )
        return function

    return register


def load_probes() -> dict[str, ProbeSpec]:
    """The probes of every installed package's entry point (the built-in ones among them), imported once."""
    if not _ENTRY_POINTS_LOADED:
        load_entry_point_probes()
    return PROBES


def load_probe_modules(names: Iterable[str], where: str) -> None:
    """Import the user's probe modules; ``where`` says where they were named, for the error."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ProbeModuleError(
                f"probe module {name!r} (named in {where}) cannot be imported: {error}. Give an importable "
                "module name: a module in the project's root directory, or one of an installed package."
            ) from error


def load_entry_point_probes() -> None:
    """Import the probe modules that installed packages declare under ``interp_claims.probes``."""
    global _ENTRY_POINTS_LOADED
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        load_probe_modules([entry.value], f"the {ENTRY_POINT_GROUP!r} entry point {entry.name!r}")
    _ENTRY_POINTS_LOADED = True


def get_probe(name: str) -> ProbeSpec:
    load_probes()
    if name not in PROBES:
        raise KeyError(f"unknown probe {name!r}. Registered: {', '.join(sorted(PROBES))}.")
    return PROBES[name]
