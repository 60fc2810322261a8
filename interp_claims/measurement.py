"""What a probe returns: a value to check, and the evidence behind it."""

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class AttentionPicture:
    """An attention pattern to draw in the report: rows are queries, columns keys."""

    title: str
    labels: list[str]
    pattern: list[list[float]]


@dataclass
class Measurement:
    value: Any  # a number, or a discrete fact (ids, pieces, head names) to compare exactly
    details: dict[str, Any] = field(default_factory=dict)
    pictures: list[AttentionPicture] = field(default_factory=list)


class ProbeInputError(ValueError):
    """A probe was given inputs it cannot measure (empty prompt, too long, bad head...)."""


def require_in_range(name: str, value: int, low: int, high: int | None = None) -> None:
    """Raise ProbeInputError unless low <= value (<= high)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        valid = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
        raise ProbeInputError(f"{name} = {value!r} is not valid: expected {valid}")


def worst_of(values, lowest: bool) -> float:
    """The lowest (or highest) of ``values``, NaN if any is NaN: Python's ``min``/``max`` skip a NaN
    or not depending on where it stands (``min([0.5, nan, 0.6])`` is 0.5), and a value that could
    not be measured must never let a claim pass."""
    values = [float(v) for v in values]
    if not values or any(math.isnan(v) for v in values):
        return float("nan")
    return min(values) if lowest else max(values)


class ProbeOutputError(TypeError):
    """A probe returned a value the reports cannot hold (a tensor, say)."""


JSON_SCALARS = (bool, int, float, str, type(None))


def json_ready_problem(value: Any, where: str = "value") -> str | None:
    """Where ``value`` is not made of JSON's types (numbers, strings, booleans, None, lists and
    string-keyed dicts of them), what there is instead; None when it is."""
    if isinstance(value, JSON_SCALARS):
        return None
    if isinstance(value, (list, tuple)):
        return next((p for i, v in enumerate(value) if (p := json_ready_problem(v, f"{where}[{i}]"))), None)
    if isinstance(value, dict):
        for key, v in value.items():
            if not isinstance(key, str):
                return f"{where} has a key {key!r} of type {type(key).__name__}"
            if problem := json_ready_problem(v, f"{where}[{key!r}]"):
                return problem
        return None
    hint = " (call float() or .tolist() on it)" if type(value).__module__.startswith(("torch", "numpy")) else ""
    return f"{where} is a {type(value).__module__}.{type(value).__qualname__}{hint}"


class ResourceUnavailable(RuntimeError):
    """The measurement needs something this machine lacks (a second device, say)."""
