"""Timing helpers shared by the benchmark scripts: ratios measured in one run."""

from __future__ import annotations

import torch

from xaihelpers.runtime import best_time


best = best_time  # fastest of a few timed calls, after a warm-up


def reference_pass(model: torch.nn.Module, x: torch.Tensor) -> None:
    """One forward+backward pass: input and parameter gradients of the summed logits."""
    x = x.clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    model(x).sum().backward()
    model.zero_grad(set_to_none=True)
