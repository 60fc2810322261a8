"""What a run keeps: one result record per claim and combination, and the run's information
(model, commit, device, versions, work done) that every report opens with. No pytest here."""

import platform
from importlib.metadata import version

import torch

from interp_claims.checkpoints import training_curve
from interp_claims.matrix import Combination
from interp_claims.models import built_model_info, dtype_name


def result_record(claim, combination: str, outcome: str, reason: str | None, *, passed: bool, value, threshold: str,
                  margin, details: dict, seconds: float, pictures: list[dict]) -> dict:
    """The row every report shows for one claim on one combination."""
    return {
        "id": claim.id, "combination": combination, "behaviour": claim.behaviour, "kind": claim.kind,
        "probe": claim.probe, "passed": passed, "value": value, "threshold": threshold, "margin": margin,
        "source": claim.source, "published": claim.published, "justification": claim.justification,
        "file": claim.file, "details": details, "seconds": seconds, "pictures": pictures,
        "outcome": outcome, "reason": reason,
    }


def unmeasured_record(claim, combination: str, outcome: str, reason: str) -> dict:
    """A claim that was collected but gave no verdict: it raised (``error``), failed before its
    check (``failed``: a bad input, say) or was skipped; it stays in every report."""
    return result_record(claim, combination, outcome, reason, passed=False, value=None, threshold=claim.threshold_text,
                         margin=None, details={}, seconds=0.0, pictures=[])


def group_by_combination(results: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for result in results:
        grouped.setdefault(result.get("combination", ""), []).append(result)
    return grouped


def run_info(combo: Combination, checkpoint_work: dict[str, float] | None = None) -> dict:
    """The model, where its files came from, the device, the library versions and the work done."""
    measurer = combo.measurer if combo.located else None
    passes, seconds = measurer.forward_stats if measurer else (0, 0.0)
    model = measurer.loaded.get(combo.convention) if measurer else None
    spec, source = combo.spec, combo.source
    return {
        "combination": combo.label,
        "model": spec.name,
        "family": spec.family,
        "hub_id": spec.hub_id,
        "revision": spec.revision or ("main" if spec.kind == "hub" else None),
        "commit": source.commit if source else None,
        "weights_folder": str(source.folder) if source else None,
        "weights_origin": source.origin if source else None,
        "embedded": model.info if model else (built_model_info(source.folder) if source else {}),
        "device": str(combo.run_device),
        "device_name": torch.cuda.get_device_name(combo.run_device) if combo.run_device.type == "cuda" else "cpu",
        "dtype": dtype_name(combo.dtype),
        "precision": measurer.precision if measurer else {},
        "weights": combo.convention,
        "versions": {
            "torch": torch.__version__,
            "transformer_lens": version("transformer-lens"),
            "transformers": version("transformers"),
            "huggingface_hub": version("huggingface_hub"),
            "python": platform.python_version(),
        },
        "forward_passes": passes,
        "forward_seconds": round(seconds, 3),
        "claim_seconds": round(measurer.claim_seconds if measurer else 0.0, 3),
        "model_load_seconds": round(combo.locate_seconds + (measurer.load_seconds if measurer else 0.0), 3),
        **({"checkpoint_runs": {k: round(v, 3) for k, v in checkpoint_work.items()}} if checkpoint_work is not None else {}),
        **({"training": {"loss_curve": curve}} if source and (curve := training_curve(source.folder)) else {}),
    }


def merge_worker_runs(runs: list[dict]) -> dict:
    """One run's information from its pytest-xdist workers': the first's model and versions, the work summed."""
    merged = dict(runs[0])
    for key in ("forward_passes", "forward_seconds", "claim_seconds", "model_load_seconds"):
        merged[key] = round(sum(run[key] for run in runs), 3)
    merged["xdist_workers"] = len(runs)
    return merged
