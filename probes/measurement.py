"""What a probe returns: a value to check, and the evidence behind it."""

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


class ResourceUnavailable(RuntimeError):
    """The measurement needs something this machine lacks (a second device, say)."""
