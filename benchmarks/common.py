"""Timing helpers shared by the benchmark scripts: ratios measured in one run."""

from __future__ import annotations

import time

import torch


def best(fn, repeat: int, warm_up: bool = True) -> float:
    """Fastest of ``repeat`` timed calls of ``fn`` (seconds), after one untimed call."""
    if warm_up:
        fn()
    times = []
    for _ in range(max(1, repeat)):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return min(times)


def reference_pass(model: torch.nn.Module, x: torch.Tensor) -> None:
    """One forward+backward pass: input and parameter gradients of the summed logits."""
    x = x.clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    model(x).sum().backward()
    model.zero_grad(set_to_none=True)
