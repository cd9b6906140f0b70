"""Input checks shared by the package (private)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

_TO_BATCH = "turn pictures into a batch with xaihelpers.data.to_batch(images, preprocess)"


def image_batch(x: object, name: str = "x") -> torch.Tensor:
    """Return ``x`` if it is a float image batch of shape (N, 3, H, W), else raise.

    The explainers take model inputs: preprocessed, normalised and batched. What a
    reader may hold instead (a picture as an array, PIL image or uint8 tensor, a
    single (3, H, W) image, a channel-last tensor) is refused with a message that
    says what came and how to make the batch.
    """
    if not isinstance(x, torch.Tensor):
        what = type(x).__name__
        if isinstance(x, np.ndarray):
            what = f"a NumPy array of shape {x.shape} and dtype {x.dtype}"
        elif isinstance(x, str):
            what = f"the string {x[:60]!r}"
        elif isinstance(x, Image.Image):
            what = f"a PIL image of mode {x.mode!r} and size {x.size}"
        raise TypeError(f"expected {name} to be a torch.Tensor image batch of shape (N, 3, H, W), got {what}; "
                        f"{_TO_BATCH}")
    shape = tuple(x.shape)
    subject = "an image batch" if name == "x" else f"{name} to be an image batch"
    if x.ndim != 4 or x.shape[1] != 3:
        if x.ndim == 3 and x.shape[0] == 3:
            hint = f"; that is a single image: add the batch axis with {name}.unsqueeze(0)"
        elif x.ndim in (3, 4) and x.shape[-1] == 3:
            hint = (f"; it looks channel-last ({'H, W, 3' if x.ndim == 3 else 'N, H, W, 3'}): the explainers take "
                    "channel-first batches, "
                    f"e.g. {name}.permute({'2, 0, 1).unsqueeze(0' if x.ndim == 3 else '0, 3, 1, 2'}), or {_TO_BATCH}")
        elif x.ndim == 4 and x.shape[1] in (1, 4):
            channels = "one channel (gray)" if x.shape[1] == 1 else "four channels (RGBA?)"
            hint = f"; {channels}: make the pictures RGB first, e.g. {_TO_BATCH}"
        else:
            hint = ""
        raise ValueError(f"expected {subject} of shape (N, 3, H, W), got {shape}{hint}")
    if not x.is_floating_point():
        raise TypeError(f"expected {subject} of a floating-point dtype, got dtype {x.dtype}; pixels must be "
                        f"scaled and normalised as the model expects: {_TO_BATCH}")
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
