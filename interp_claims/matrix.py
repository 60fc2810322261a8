"""The session's matrix: every model x dtype x device asked for, one ``Combination`` each.

    pytest --model embedded --model gpt2 --dtype float32,bfloat16 --device cpu

Each combination is located (built, found in the cache or downloaded) and checked before any
test runs, loaded when its first test runs, and freed when the next combination's tests start,
so one model is in memory at a time. No pytest here.
"""

import gc
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
    infer_family,
    locate,
    resolve_device,
    resolve_dtype,
    resolve_model,
)
from interp_claims.session import ModelSession


@dataclass
class Combination:
    """One model on one device in one dtype."""

    spec: ModelSpec
    device: torch.device
    dtype: torch.dtype
    weights: str
    index: int
    source: ModelSource | None = None
    models: ModelSession | None = None
    unavailable: str | None = None  # why its weights cannot be had (with --skip-missing-model)
    locate_seconds: float = 0.0
    planned: list = field(default_factory=list)
    placed_on: torch.device | None = None  # where it actually runs, when not `device` (an xdist worker's own GPU)

    @property
    def run_device(self) -> torch.device:
        return self.placed_on or self.device

    @property
    def label(self) -> str:
        """``model/dtype/device``, as test ids and reports name the combination."""
        name = Path(self.spec.name).name if self.spec.kind == "folder" else self.spec.name
        return f"{name}/{str(self.dtype).removeprefix('torch.')}/{self.device}"

    @property
    def family(self) -> str | None:
        return self.spec.family

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
        self.models = ModelSession(self.spec, self.run_device, self.dtype, self.weights, self.source)
        self.models.plan(self.planned)

    def plan(self, claims: list) -> None:
        self.planned = list(claims)
        if self.models is not None:
            self.models.plan(self.planned)

    @property
    def loaded(self) -> bool:
        return self.models is not None and bool(self.models.models)

    def free(self) -> None:
        """Drop the loaded models and their cached passes; they load again if needed."""
        if self.models is None or not self.models.models:
            return
        self.models.close()
        gc.collect()
        if self.run_device.type == "cuda":
            torch.cuda.empty_cache()


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
    models: list[str], family: str | None, revision: str | None, dtypes: str, devices: str | None, weights: str
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
                combos.append(Combination(spec, device, dtype, weights, index=len(combos)))
    labels = [c.label for c in combos]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ModelConfigError(f"the matrix names {', '.join(duplicates)} twice: give each model, dtype and device once")
    return combos
