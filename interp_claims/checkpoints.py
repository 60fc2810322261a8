"""Claims across training checkpoints: where a model's checkpoints are, and what a claim over
them checks. No pytest here.

A claim with ``checkpoints`` runs its probe on each named checkpoint, one model in memory at a
time, and ``at`` says which value is checked::

    checkpoints = "all"            # or a list of names: ["step-00000", "step-02000"]
    at = "last"                    # "first", "last", "change" (last - first), or "each" (must hold at every one)

Where the checkpoints of a model are:

* a model folder (the ``trained`` model, or any folder): ``<folder>/checkpoints/<name>/``, each a
  Hugging Face folder; ``"all"`` is every one, in name order;
* a Hugging Face id: the names are revisions of the repository (branches or tags, such as
  Pythia's ``step1000``), fetched like ``--revision``; list them (``"all"`` cannot be known offline).
"""

from dataclasses import replace
from pathlib import Path

from interp_claims.builtin.cache import CHECKPOINTS_DIR
from interp_claims.errors import ModelConfigError, ModelLoadError
from interp_claims.models import ModelSource, ModelSpec, check_folder

AT = ("first", "last", "change", "each")


def checkpoint_names(spec: ModelSpec, source: ModelSource, requested: str | list[str]) -> list[str]:
    """The checkpoints a claim ranges over, in order. Raises ModelConfigError naming what exists."""
    if spec.kind == "hub":
        if requested == "all":
            raise ModelConfigError(f"model {spec.name!r} is a Hugging Face id: list its checkpoint revisions "
                                   "(checkpoints = ['step1000', 'step143000']); 'all' cannot be known offline")
        return list(requested)
    folder = source.folder / CHECKPOINTS_DIR
    found = sorted(path.name for path in folder.iterdir() if path.is_dir()) if folder.is_dir() else []
    if requested == "all":
        if not found:
            raise ModelConfigError(f"model {spec.name!r} has no checkpoints: {folder} holds no checkpoint folders")
        return found
    missing = [name for name in requested if name not in found]
    if missing:
        raise ModelConfigError(f"model {spec.name!r} has no checkpoint {', '.join(map(repr, missing))} in {folder}; "
                               f"found: {', '.join(found) or 'none'}")
    return list(requested)


def checkpoint_model(spec: ModelSpec, source: ModelSource, name: str) -> tuple[ModelSpec, ModelSource]:
    """The spec and checked files of one checkpoint. Raises ModelError."""
    label = f"{spec.name}@{name}"
    if spec.kind == "hub":
        from interp_claims.hub import fetch

        snapshot = fetch(spec.hub_id, name)
        checkpoint = ModelSource(snapshot.folder, commit=snapshot.commit, origin=snapshot.origin)
    else:
        checkpoint = ModelSource(source.folder / CHECKPOINTS_DIR / name, origin=source.origin)
    if not checkpoint.folder.is_dir():
        raise ModelLoadError(f"model {spec.name!r}: checkpoint folder {checkpoint.folder} does not exist")
    check_folder(checkpoint.folder, label)
    return replace(spec, name=label, revision=name if spec.kind == "hub" else None), checkpoint


def at_checkpoints(values: list, at: str, op: str):
    """The value a claim checks, from its values at each checkpoint (in order)."""
    if at == "first":
        return values[0]
    if at == "last":
        return values[-1]
    if at == "change":
        return float(values[-1]) - float(values[0])
    # "each": the checkpoint closest to failing a one-sided bound (NaN anywhere: NaN, which fails)
    from interp_claims.measurement import worst_of

    return worst_of(values, lowest=op in (">", ">="))


def training_curve(folder: Path) -> list[dict]:
    """The loss curve a model built here recorded (trained.json), else empty."""
    import json

    path = folder / "trained.json"
    return json.loads(path.read_text()).get("loss_curve", []) if path.is_file() else []
