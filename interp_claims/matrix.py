"""The session's matrix: every model x dtype x device asked for, one ``Combination`` each.

    pytest --model embedded --model gpt2 --dtype float32,bfloat16 --device cpu

Each combination is located (built, found in the cache or downloaded) and checked before any
test runs, loaded when its first test runs, and freed when the next combination's tests start,
so one model is in memory at a time. No pytest here.
"""

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from interp_claims.errors import ModelConfigError
from interp_claims.models import (
    EMBEDDED,
    ModelSource,
    ModelSpec,
    _looks_like_path,
    dtype_name,
    infer_family,
    locate,
    resolve_device,
    resolve_dtype,
    resolve_model,
)
from interp_claims.measurer import Measurer


@dataclass
class Combination:
    """One model on one device in one dtype, and the ``Measurer`` that loads and measures it."""

    spec: ModelSpec
    device: torch.device
    dtype: torch.dtype
    convention: str  # weight convention: "raw" or "processed" (--weights)
    index: int
    source: ModelSource | None = None
    unavailable: str | None = None  # why its weights cannot be had (with --skip-missing-model)
    locate_seconds: float = 0.0
    placed_on: torch.device | None = None  # where it actually runs, when not `device` (an xdist worker's own GPU)
    measurer: Measurer = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.measurer = Measurer(self.spec, self.run_device, self.dtype, self.convention)

    @property
    def run_device(self) -> torch.device:
        return self.placed_on or self.device

    @property
    def label(self) -> str:
        """``model/dtype/device``, as test ids and reports name the combination."""
        name = Path(self.spec.name).name if self.spec.kind == "folder" else self.spec.name
        return f"{name}/{dtype_name(self.dtype)}/{self.device}"

    @property
    def family(self) -> str | None:
        return self.spec.family

    @property
    def located(self) -> bool:
        return self.source is not None

    def locate(self) -> None:
        """Find and check the model's files; settle its family. Raises ModelError."""
        if self.source is not None:
            return
        start = time.perf_counter()
        try:
            self.source = locate(self.spec)
        finally:
            self.locate_seconds += time.perf_counter() - start
        if self.spec.family is None:
            self.spec = replace(self.spec, family=infer_family(self.source.folder))
        self.measurer.spec, self.measurer.source = self.spec, self.source

    def plan(self, claims: list) -> None:
        """The claims this combination will measure (they decide which forward passes are kept)."""
        self.measurer.plan(claims)

    @property
    def loaded(self) -> bool:
        return self.measurer.is_loaded

    def free(self) -> None:
        """Drop the loaded models and their cached passes; they load again if needed."""
        self.measurer.close()


def reference_index(claim, combo: Combination, combos: list[Combination]) -> int | None:
    """The combination ``combo`` is compared with on a cross-combination claim's axis: the same
    model and other axis, the matrix's first value on this one; None for the reference itself or
    when the matrix has one value on the axis."""
    values = list(dict.fromkeys(getattr(c, claim.across) for c in combos))
    if len(values) < 2 or getattr(combo, claim.across) == values[0]:
        return None
    other = "device" if claim.across == "dtype" else "dtype"
    for candidate in combos:
        if (candidate.spec == combo.spec and getattr(candidate, other) == getattr(combo, other)
                and getattr(candidate, claim.across) == values[0]):
            return candidate.index
    return None


def place_on_worker_gpu(combos: list[Combination], worker_id: str) -> None:
    """Under pytest-xdist on a machine with several GPUs, worker gwN runs its ``cuda`` combinations
    on ``cuda:{N mod device count}`` (test ids keep the device as asked, so every worker collects
    the same tests)."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < 2 or not worker_id.startswith("gw"):
        return
    for combo in combos:
        if combo.device.type == "cuda" and combo.device.index is None:
            combo.placed_on = torch.device("cuda", int(worker_id[2:]) % count)
            combo.measurer.device = combo.placed_on


def hub_like(name: str) -> bool:
    return name != EMBEDDED and not _looks_like_path(name)


def split_list(value: str | None) -> list[str | None]:
    """``"float32,bfloat16"`` -> two entries; None stays one default entry."""
    if value is None:
        return [None]
    entries = [entry.strip() for entry in value.split(",")]
    if not all(entries):
        raise ModelConfigError(f"{value!r} has an empty entry: give comma-separated values, e.g. 'float32,bfloat16'")
    return entries


def build_matrix(
    models: list[str], family: str | None, revision: str | None, dtypes: str, devices: str | None, convention: str
) -> list["Combination"]:
    """Every combination asked for, in model-major order. Raises ModelConfigError naming the bad entry."""
    if revision is not None and not any(hub_like(name) for name in models):
        resolve_model(models[0], family, revision)  # raises the clear error for a non-hub model
    specs = [resolve_model(name, family, revision if hub_like(name) else None) for name in models]
    dtype_list = [resolve_dtype(name) for name in split_list(dtypes)]
    device_list = [resolve_device(name) for name in split_list(devices)]
    combos = []
    for spec in specs:
        for dtype in dtype_list:
            for device in device_list:
                combos.append(Combination(spec, device, dtype, convention, index=len(combos)))
    labels = [c.label for c in combos]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ModelConfigError(f"the matrix names {', '.join(duplicates)} twice: give each model, dtype and device once")
    return combos
