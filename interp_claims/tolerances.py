"""Numerical tolerances, per dtype, in one place.

Each number is an absolute tolerance on the quantity named, chosen from the dtype's
precision, never from one run:

* ``probability``: |sum of softmax - 1| over a 50257-way softmax. float32: 1e-4, the
  level TransformerLens treats as float32 noise (CPU's vectorised exp alone leaves up
  to ~4e-5 on GPT-2-sized vocabularies). bfloat16 has an 8-bit mantissa (2^-8 = 3.9e-3
  per rounding): 1e-2, TransformerLens's bfloat16 level. float16: 5e-3, because float16
  flushes probabilities below ~6e-8 to zero, and 50257 of them can lose up to
  50257 * 6e-8 = 3e-3 of the mass, on top of an ulp of 4.9e-4 just below 1.
* ``activation``: max |manual - cached| relative to the activation's largest magnitude,
  for the same arithmetic done in two orders (the float64 reference against the model's
  float32 result). float32 1e-5: a float32 dot product over the MLP's 3072 terms carries
  about sqrt(3072) * 6e-8 = 3.3e-6 relative rounding (measured: 3e-7 to 7e-7 on the embedded
  model); tighter than 1e-4 so that a recompute with the exact GELU instead of GPT-2's tanh
  approximation (1.3e-4) fails. bfloat16 2e-2 (a result rounded once or twice to bf16:
  2 ulp at 2^-8, plus accumulation order); float16 2e-3.
* ``logprob``: |difference| of log-probabilities computed two ways (batched vs single,
  device vs device). float32 1e-4 (TransformerLens's bar; 5e-5 for eager attention
  alone), bfloat16 5e-2 (logits near 20 carry ~0.06 rounding per bf16 ulp), float16 1e-2.
* ``loss``: two-sided agreement of a mean cross-entropy near 5 with a float32
  reference: relative 1e-4 in float32 (5e-4), 1e-2 in bfloat16 (5e-2), 2e-3 in float16.
"""

import torch

TOLERANCES: dict[torch.dtype, dict[str, float]] = {
    torch.float32: {"probability": 1e-4, "activation": 1e-5, "logprob": 1e-4, "loss": 5e-4},
    torch.bfloat16: {"probability": 1e-2, "activation": 2e-2, "logprob": 5e-2, "loss": 5e-2},
    torch.float16: {"probability": 5e-3, "activation": 2e-3, "logprob": 1e-2, "loss": 1e-2},
}
KINDS = tuple(TOLERANCES[torch.float32])


def tolerance(kind: str, dtype: torch.dtype) -> float:
    if kind not in KINDS:
        raise ValueError(f"unknown tolerance kind {kind!r}. Valid: {', '.join(KINDS)}.")
    return TOLERANCES[dtype][kind]
