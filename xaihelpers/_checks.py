"""Input checks shared by the package (private)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def image_batch(x: object, name: str = "x") -> torch.Tensor:
    """Return ``x`` if it is a float image batch of shape (N, 3, H, W), else raise."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected {name} to be a torch.Tensor image batch of shape (N, 3, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected an image batch of shape (N, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point image batch, got dtype {x.dtype}")
    return x


def targets(target: object, n: int, logits: torch.Tensor | None = None) -> torch.Tensor:
    """Turn ``target`` into a long tensor of shape (n,) of class indices.

    ``None`` takes the predicted class from ``logits``; an int is used for every
    image; a sequence, array or tensor must hold one class per image.
    """
    if target is None:
        if logits is None:
            raise ValueError("target=None needs the model's logits to take the predicted class")
        return logits.argmax(dim=1)
    if isinstance(target, bool):
        raise TypeError("expected a class index (int), a sequence of N ints or None, got a bool")
    if isinstance(target, (int, np.integer)):
        t = torch.full((n,), int(target), dtype=torch.long)
    elif isinstance(target, (torch.Tensor, np.ndarray, Sequence)):
        t = torch.as_tensor(np.asarray(target.cpu() if isinstance(target, torch.Tensor) else target))
        if t.ndim == 0:
            t = t.reshape(1).expand(n)
        if t.ndim != 1 or t.shape[0] != n:
            raise ValueError(f"expected one target per image, shape ({n},), got {tuple(t.shape)}")
        if t.is_floating_point():
            raise TypeError(f"expected integer class indices, got dtype {t.dtype}")
        t = t.long()
    else:
        raise TypeError(f"expected a class index (int), a sequence of N ints or None, got {type(target).__name__}")
    if logits is not None:
        k = logits.shape[1]
        if (t < 0).any() or (t >= k).any():
            raise ValueError(f"expected class indices in [0, {k}), got {t.tolist()}")
        t = t.to(logits.device)
    return t


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (the CPU for a model without parameters)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")
