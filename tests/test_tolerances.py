"""Tolerances from the dtype: floors per kind, and never below the rounding step at the magnitude compared."""

import pytest
import torch

from interp_claims.claims import Claim, check
from interp_claims.tolerances import rounding_step, tolerance


@pytest.mark.parametrize(
    ("dtype", "magnitude", "step"),
    [(torch.bfloat16, 20.0, 0.125), (torch.bfloat16, 1.0, 2**-7), (torch.float16, 20.0, 2**-6),
     (torch.float32, 20.0, 2**-19), (torch.float32, 0.75, 2**-24)],
)
def test_rounding_step_is_the_spacing_of_the_dtype_at_that_magnitude(dtype, magnitude, step):
    assert rounding_step(dtype, magnitude) == step
    value = torch.tensor(magnitude, dtype=dtype)
    assert float(torch.nextafter(value, value + 1) - value) == step  # what the dtype itself says


def test_logprob_tolerance_is_never_below_the_rounding_of_the_logits():
    assert tolerance("logprob", torch.bfloat16) == 5e-2  # the floor, no magnitude given
    assert tolerance("logprob", torch.bfloat16, magnitude=20.0) == 4 * 0.125  # issue 8: 5e-2 < one step at 20
    assert tolerance("logprob", torch.float32, magnitude=20.0) == 1e-4  # float32's floor is already above
    assert tolerance("probability", torch.bfloat16, magnitude=1e6) == 1e-2  # sums compared at 1, whatever the logits


def numeric_claim(expect: dict) -> Claim:
    return Claim(id="c", behaviour="b", kind="sanity", models=("*",), probe="p", source="s", expect=expect,
                 file="f", row=1)


def test_rounding_steps_widen_a_printed_float32_bound_for_reduced_precision_only():
    claim = numeric_claim({"op": "<=", "value": 2e-4, "rounding_steps": 2})
    assert not check(claim, 3e-4, torch.float32, magnitude=2.7).passed  # float32: 2e-4 + 2 * 2.4e-7
    assert check(claim, 2.6e-2, torch.bfloat16, magnitude=2.7).passed  # bfloat16: 2e-4 + 2 * 2^-6
    assert not check(claim, 4e-2, torch.bfloat16, magnitude=2.7).passed
    with pytest.raises(ValueError, match="rounding_steps needs a probe that reports"):
        check(claim, 1e-4, torch.float32)


def test_rounding_steps_widen_a_lower_bound_downwards():
    """Issue 15: `> 0.4` with 4 steps in bfloat16 at magnitude 1 was checked as `> 0.43125`
    (stricter); widening moves a lower bound down, to 0.36875."""
    claim = numeric_claim({"op": ">", "value": 0.4, "rounding_steps": 4})
    verdict = check(claim, 0.38, torch.bfloat16, magnitude=1.0)
    assert verdict.passed and verdict.threshold == "> 0.36875"
    assert not check(claim, 0.36, torch.bfloat16, magnitude=1.0).passed


def test_a_nan_at_any_checkpoint_or_lag_fails_the_claim():
    """Issue 15: Python's min/max let a NaN through ([0.5, nan, 0.6] -> 0.5, a pass)."""
    import math

    from interp_claims.checkpoints import at_checkpoints
    from interp_claims.measurement import worst_of

    assert math.isnan(at_checkpoints([0.5, float("nan"), 0.6], "each", ">"))
    assert math.isnan(at_checkpoints([0.5, float("nan"), 0.6], "each", "<"))
    assert math.isnan(worst_of([0.9, float("nan")], lowest=True)) and math.isnan(worst_of([float("nan"), 0.9], lowest=False))
    assert worst_of([0.9, 0.2], lowest=True) == 0.2 and worst_of([0.9, 0.2], lowest=False) == 0.9
    claim = numeric_claim({"op": ">", "value": 0.4})
    assert not check(claim, at_checkpoints([0.5, float("nan"), 0.6], "each", ">"), torch.float32).passed
