"""Numerical tolerances, per dtype, in one place.

A tolerance is the larger of two numbers, both chosen from the dtype, never from one run:

1. a **floor** per kind and dtype (the table below), the accumulated rounding of the
   arithmetic behind the value;
2. a number of **rounding steps at the magnitude of the values compared**: one step is the
   spacing of representable numbers of the dtype there (``rounding_step``: 2^-23 relative
   in float32, 2^-10 in float16, 2^-7 in bfloat16). A logit near 20 in bfloat16 sits on a
   grid of 0.125, so no tolerance below that can hold for a log-probability computed from
   it, whatever the floor says. Probes that compare such values report the magnitude
   (``details["magnitude"]``) and the claim's check uses it.

The floors:

* ``probability``: |sum of softmax - 1| over a 50257-way softmax. float32: 1e-4, the
  level TransformerLens treats as float32 noise (CPU's vectorised exp alone leaves up
  to ~4e-5 on GPT-2-sized vocabularies). bfloat16 has an 8-bit mantissa (2^-8 = 3.9e-3
  per rounding): 1e-2, TransformerLens's bfloat16 level. float16: 5e-3, because float16
  flushes probabilities below ~6e-8 to zero, and 50257 of them can lose up to
  50257 * 6e-8 = 3e-3 of the mass, on top of an ulp of 4.9e-4 just below 1. Magnitude 1.
* ``activation``: max |manual - cached| relative to the activation's largest magnitude,
  for the same arithmetic done in two orders (the float64 reference against the model's
  float32 result). float32 1e-5: a float32 dot product over the MLP's 3072 terms carries
  about sqrt(3072) * 6e-8 = 3.3e-6 relative rounding (measured: 3e-7 to 7e-7 on the embedded
  model); tighter than 1e-4 so that a recompute with the exact GELU instead of GPT-2's tanh
  approximation (1.3e-4) fails. bfloat16 2e-2 (a result rounded once or twice to bf16:
  2 ulp at 2^-8, plus accumulation order); float16 2e-3. Already relative: magnitude 1.
* ``logprob``: |difference| of log-probabilities computed two ways (batched vs single,
  device vs device). float32 1e-4 (TransformerLens's bar; 5e-5 for eager attention
  alone), bfloat16 5e-2, float16 1e-2; and at least 4 steps at the largest |logit|: each
  side's logit is rounded once (up to one step apart), and log-softmax subtracts a
  logsumexp of the same magnitude, rounded as well.
* ``loss``: two-sided agreement of a mean cross-entropy near 5 with a float32
  reference: relative 1e-4 in float32 (5e-4), 1e-2 in bfloat16 (5e-2), 2e-3 in float16; and at
  least one step at the largest |logit|: each position's loss is a logsumexp minus a logit, both
  off by up to a step, and the mean over positions does not average away a rounding that leans
  one way (float16 on the embedded model, |logit| 21.75: 9.1e-3 measured, one step 1.6e-2).
"""

import math

import torch

TOLERANCES: dict[torch.dtype, dict[str, float]] = {
    torch.float32: {"probability": 1e-4, "activation": 1e-5, "logprob": 1e-4, "loss": 5e-4},
    torch.bfloat16: {"probability": 1e-2, "activation": 2e-2, "logprob": 5e-2, "loss": 5e-2},
    torch.float16: {"probability": 5e-3, "activation": 2e-3, "logprob": 1e-2, "loss": 1e-2},
}
ROUNDING_STEPS: dict[str, int] = {"probability": 0, "activation": 0, "logprob": 4, "loss": 1}
KINDS = tuple(TOLERANCES[torch.float32])


def rounding_step(dtype: torch.dtype, magnitude: float) -> float:
    """The spacing of ``dtype``'s representable numbers at ``|magnitude|`` (one ulp):
    ``eps * 2**floor(log2 |magnitude|)``; bfloat16 at 20: 0.125, float32 at 20: 1.9e-6."""
    info = torch.finfo(dtype)
    magnitude = max(abs(float(magnitude)), info.tiny)
    return info.eps * 2.0 ** math.floor(math.log2(magnitude))


def tolerance(kind: str, dtype: torch.dtype, magnitude: float | None = None) -> float:
    """The tolerance of ``kind`` in ``dtype``; with the magnitude of the values compared,
    never below the kind's number of rounding steps there."""
    if kind not in KINDS:
        raise ValueError(f"unknown tolerance kind {kind!r}. Valid: {', '.join(KINDS)}.")
    floor = TOLERANCES[dtype][kind]
    if magnitude is None or not ROUNDING_STEPS[kind]:
        return floor
    return max(floor, ROUNDING_STEPS[kind] * rounding_step(dtype, magnitude))
