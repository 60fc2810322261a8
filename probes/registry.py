"""Probe name -> function. Adding a probe is one function and one decorator.

    @probe("my_score", hooks=("attn.hook_pattern",))
    def my_score(ctx: ProbeContext, *, head: str) -> Measurement: ...

``hooks`` names the activations the probe reads (suffixes of TransformerLens hook
names); every claim on the same input shares one ``run_with_cache`` pass that keeps
the union of them. ``hooks=None`` means the claim has no ``input``: the probe needs no
forward pass (tokenizer facts) or builds its own inputs (generated prompts).
"""

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

# Modules of this package that hold no probes (importing them registers nothing).
NOT_PROBE_MODULES = {"registry", "claims", "context", "embedded", "export", "measurement", "models",
                     "report", "tolerances", "tokenizer_files"}


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


def probe(name: str, hooks: tuple[str, ...] | None = ()) -> Callable[[Callable], Callable]:
    """Register ``function`` under ``name``; a second registration of a name is an error."""

    def register(function: Callable) -> Callable:
        if name in PROBES:
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


def load_builtin_probes() -> dict[str, ProbeSpec]:
    """Import every probe module of this package: a new ``probes/<name>.py`` needs no listing."""
    import probes

    for module in pkgutil.iter_modules(probes.__path__):
        if module.name not in NOT_PROBE_MODULES and not module.name.startswith("_"):
            importlib.import_module(f"probes.{module.name}")
    return PROBES


def get_probe(name: str) -> ProbeSpec:
    load_builtin_probes()
    if name not in PROBES:
        raise KeyError(f"unknown probe {name!r}. Registered: {', '.join(sorted(PROBES))}.")
    return PROBES[name]
