"""Reference-equation checks: recompute a component by hand from the model's own weights.

The MLP of GPT-2 is ``mlp_out = gelu_new(ln2(x) @ W_in + b_in) @ W_out + b_out`` with
``ln2(x) = normalized(x) * w_ln2 + b_ln2``. TransformerLens 4 exposes the normalised
input as ``blocks.L.ln2.hook_normalized`` (before the LayerNorm's affine weights) in
both conventions:

* raw (the default ``boot_transformers``): Hugging Face weights, the LayerNorm keeps its
  own weight and bias;
* processed (``enable_compatibility_mode()``): the LayerNorm weight and bias are folded
  into ``W_in``/``b_in`` and the LayerNorm's own affine becomes the identity.

The recomputation reads the LayerNorm's affine parameters from the loaded model, so
the same equation holds in both, and says which convention it ran in.
"""

import math

import torch
from jaxtyping import Float
from torch import Tensor

from interp_claims.context import ProbeContext
from interp_claims.measurement import Measurement, ProbeInputError
from interp_claims.registry import probe

MLP_HOOKS = ("ln2.hook_normalized", "mlp.hook_pre", "hook_mlp_out")


def relative_error(manual: Tensor, cached: Tensor) -> float:
    """max |manual - cached| / max |cached|: the error on the activation's own scale."""
    scale = cached.float().abs().max().clamp_min(1e-12)
    return float((manual.float() - cached.float()).abs().max() / scale)


def gelu_new(x: Tensor) -> Tensor:
    """GPT-2's tanh approximation of GELU, written out (Hendrycks & Gimpel 2016)."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def manual_mlp(
    bridge, layer: int, normalized: Float[Tensor, "batch pos d_model"]
) -> tuple[Float[Tensor, "batch pos d_mlp"], Float[Tensor, "batch pos d_model"]]:
    block = bridge.blocks[layer]  # per-layer weights: bridge.W_in stacks every layer on each access
    layernorm = block.ln2._original_component
    # In bfloat16/float16 the bridge reports the normalised input in float32; the Linear runs in
    # the model's dtype, so cast there as the model does.
    x = (normalized * layernorm.weight + layernorm.bias).to(block.mlp.W_in.dtype)
    pre = x @ block.mlp.W_in + block.mlp.b_in
    out = gelu_new(pre) @ block.mlp.W_out + block.mlp.b_out
    return pre, out


@probe("mlp_recompute_error", hooks=MLP_HOOKS)
def mlp_recompute_error(ctx: ProbeContext, *, layer: int, part: str = "out", weights: str | None = None) -> Measurement:
    """Relative error of the hand-computed MLP ``part`` ("pre" or "out") against the cache."""
    if weights is not None:
        ctx = ctx.with_weights(weights)
    n_layers = ctx.model.cfg.n_layers
    if not 0 <= layer < n_layers:
        raise ProbeInputError(f"layer {layer} is outside the model (layers 0..{n_layers - 1})")
    if part not in ("pre", "out"):
        raise ProbeInputError(f"part {part!r} is not an MLP part. Valid: 'pre', 'out'.")
    _, cache = ctx.forward()
    with torch.no_grad():
        pre, out = manual_mlp(ctx.bridge, layer, cache[f"blocks.{layer}.ln2.hook_normalized"])
    cached = cache[f"blocks.{layer}.mlp.hook_pre"] if part == "pre" else cache[f"blocks.{layer}.hook_mlp_out"]
    manual = pre if part == "pre" else out
    return Measurement(
        value=relative_error(manual, cached),
        details={
            "weights": ctx.model.weights,
            "convention": "LayerNorm folded into W_in (compatibility mode)"
            if ctx.model.weights == "processed"
            else "raw Hugging Face weights (LayerNorm affine applied by hand)",
            "corner": [[round(v, 4) for v in row] for row in cached[0, :3, :3].float().tolist()],
            "max_abs_error": float((manual.float() - cached.float()).abs().max()),
        },
    )
