"""Reference-equation checks: recompute a component by hand from the model's own weights.

GPT-2's MLP block is ``mlp_out = gelu_new(ln2(x) @ W_in + b_in) @ W_out + b_out`` with
``ln2(x) = (x - mean(x)) / sqrt(var(x) + eps) * w_ln2 + b_ln2`` and x the residual stream
before the block's MLP (``blocks.L.hook_resid_mid``).

The reference is computed in float64 from the residual and the weights, in another order of
operations than the model's: the LayerNorm gain is folded into W_in and its bias into b_in
before the product (``ln2(x) @ W_in = norm(x) @ (w_ln2[:, None] * W_in) + b_ln2 @ W_in``), and
GELU is written out. So the check repeats none of the bridge's own operations: a recompute that
dropped a bias, used the exact GELU instead of GPT-2's tanh approximation, or forgot the
LayerNorm gain would fail it (``tests/test_recompute.py`` shows each).

It runs in both weight conventions: raw Hugging Face weights (the LayerNorm has its own
affine) and TransformerLens's compatibility mode (the affine folded into W_in/b_in by
TransformerLens itself, the LayerNorm's own affine the identity); the parameters are read from
the loaded model either way.
"""

import math
from dataclasses import dataclass
from collections.abc import Callable

import torch
from jaxtyping import Float
from torch import Tensor

from interp_claims.context import ProbeContext
from interp_claims.measurement import Measurement, ProbeInputError
from interp_claims.registry import probe

MLP_HOOKS = ("hook_resid_mid", "mlp.hook_pre", "hook_mlp_out")


@dataclass(frozen=True)
class MlpParameters:
    """One layer's LayerNorm and MLP parameters, in float64."""

    ln_weight: Float[Tensor, " d_model"]
    ln_bias: Float[Tensor, " d_model"]
    eps: float
    w_in: Float[Tensor, "d_model d_mlp"]
    b_in: Float[Tensor, " d_mlp"]
    w_out: Float[Tensor, "d_mlp d_model"]
    b_out: Float[Tensor, " d_model"]


def mlp_parameters(bridge, layer: int) -> MlpParameters:
    block = bridge.blocks[layer]  # per-layer weights: bridge.W_in stacks every layer on each access
    layernorm = block.ln2._original_component
    return MlpParameters(
        ln_weight=layernorm.weight.detach().double(),
        ln_bias=layernorm.bias.detach().double(),
        eps=float(layernorm.eps),
        w_in=block.mlp.W_in.detach().double(),
        b_in=block.mlp.b_in.detach().double(),
        w_out=block.mlp.W_out.detach().double(),
        b_out=block.mlp.b_out.detach().double(),
    )


def gelu_new(x: Tensor) -> Tensor:
    """GPT-2's tanh approximation of GELU, written out (Hendrycks & Gimpel 2016)."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def reference_mlp(
    resid: Float[Tensor, "batch pos d_model"], params: MlpParameters, gelu: Callable[[Tensor], Tensor] = gelu_new
) -> tuple[Float[Tensor, "batch pos d_mlp"], Float[Tensor, "batch pos d_model"]]:
    """(pre-activation, output) of the MLP block, in float64, from the residual before it."""
    x = resid.double()
    centred = x - x.mean(dim=-1, keepdim=True)
    normalised = centred / torch.sqrt(centred.pow(2).mean(dim=-1, keepdim=True) + params.eps)
    w_in = params.ln_weight[:, None] * params.w_in  # the gain folded into W_in
    b_in = params.ln_bias @ params.w_in + params.b_in  # the bias folded into b_in
    pre = normalised @ w_in + b_in
    return pre, gelu(pre) @ params.w_out + params.b_out


def relative_error(manual: Tensor, cached: Tensor) -> float:
    """max |manual - cached| / max |cached|: the error on the activation's own scale (in float64)."""
    cached = cached.double()
    return float((manual.double() - cached).abs().max() / cached.abs().max().clamp_min(1e-12))


@probe("mlp_recompute_error", hooks=MLP_HOOKS)
def mlp_recompute_error(ctx: ProbeContext, *, layer: int, part: str = "out", weights: str | None = None) -> Measurement:
    """Relative error of the float64 reference MLP ``part`` ("pre" or "out") against the cache."""
    if weights is not None:
        ctx = ctx.with_weights(weights)
    n_layers = ctx.model.cfg.n_layers
    if not 0 <= layer < n_layers:
        raise ProbeInputError(f"layer {layer} is outside the model (layers 0..{n_layers - 1})")
    if part not in ("pre", "out"):
        raise ProbeInputError(f"part {part!r} is not an MLP part. Valid: 'pre', 'out'.")
    _, cache = ctx.forward()
    with torch.no_grad():  # both parts from one reference computation, shared by the layer's two claims
        pre, out = ctx.runner.derived(
            ctx.input, f"reference_mlp:{layer}",
            lambda: reference_mlp(cache[f"blocks.{layer}.hook_resid_mid"], mlp_parameters(ctx.bridge, layer)),
        )
    cached = cache[f"blocks.{layer}.mlp.hook_pre"] if part == "pre" else cache[f"blocks.{layer}.hook_mlp_out"]
    manual = pre if part == "pre" else out
    return Measurement(
        value=relative_error(manual, cached),
        details={
            "weights": ctx.model.convention,
            "reference": "float64, LayerNorm gain and bias folded into W_in/b_in by hand",
            "convention": "LayerNorm folded into W_in (compatibility mode)"
            if ctx.model.convention == "processed"
            else "raw Hugging Face weights (LayerNorm affine applied by hand)",
            "corner": [[round(v, 4) for v in row] for row in cached[0, :3, :3].float().tolist()],
            "max_abs_error": float((manual.double() - cached.double()).abs().max()),
        },
    )
