"""First explanations, written with :mod:`xaihelpers.hooks` so that every step is visible.

``gradient`` (vanilla gradient, Simonyan et al. 2014) and ``grad_cam`` (Selvaraju et al.
2017) follow the book's uniform explainer call ``(model, x, target, **settings)`` and
return maps of shape (N, H, W). Chapter 0 (``notebooks/00_getting_started.ipynb``)
derives both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks
from .hooks import record
from .models import default_layer


def _model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def gradient(model: nn.Module, x: torch.Tensor, target=None, reduce: str = "absmax") -> torch.Tensor:
    r"""Vanilla gradient saliency: :math:`\max_c |\partial y_t / \partial x_{c,i,j}|`.

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits.
    x : torch.Tensor
        Normalised images, shape (N, 3, H, W).
    target : int, sequence of int or None
        Class to explain per image; ``None`` takes the predicted class.
    reduce : {"absmax", "abssum", "sum"}
        How the three colour channels' gradients become one value per pixel.

    Returns
    -------
    torch.Tensor
        Maps of shape (N, H, W) on ``x``'s device.
    """
    _checks.image_batch(x)
    if reduce not in ("absmax", "abssum", "sum"):
        raise ValueError(f"expected reduce in ('absmax', 'abssum', 'sum'), got {reduce!r}")
    x = x.detach().to(_model_device(model)).requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        t = _checks.targets(target, x.shape[0], logits)
        (grad,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), x)
    if reduce == "absmax":
        return grad.abs().amax(dim=1)
    if reduce == "abssum":
        return grad.abs().sum(dim=1)
    return grad.sum(dim=1)


def grad_cam(model: nn.Module, x: torch.Tensor, target=None, layer: str | None = None, relu: bool = True) -> torch.Tensor:
    r"""Grad-CAM: weight a layer's channels by their spatially averaged gradients.

    .. math:: L^t = \mathrm{ReLU}\Big(\sum_k \alpha^t_k A^k\Big), \quad
              \alpha^t_k = \frac{1}{hw}\sum_{i,j} \frac{\partial y_t}{\partial A^k_{ij}}

    upsampled bilinearly from the layer's (h, w) to the input's (H, W).

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits.
    x : torch.Tensor
        Normalised images, shape (N, 3, H, W).
    target : int, sequence of int or None
        Class to explain per image; ``None`` takes the predicted class.
    layer : str, optional
        Name of the layer whose activations are weighted; default
        :func:`xaihelpers.models.default_layer`.
    relu : bool
        Keep only positive evidence, as in the paper.

    Returns
    -------
    torch.Tensor
        Maps of shape (N, H, W).
    """
    _checks.image_batch(x)
    layer = layer or default_layer(model)
    x = x.detach().to(_model_device(model))
    with torch.enable_grad(), record(model, [layer], gradients=True) as rec:
        x = x.requires_grad_(True)  # makes activations require grad even with frozen weights
        logits = model(x)
        t = _checks.targets(target, x.shape[0], logits)
        logits.gather(1, t[:, None]).sum().backward()
    acts, grads = rec.activations[layer], rec.gradients[layer]
    if acts.ndim != 4:
        raise ValueError(f"Grad-CAM needs a layer with (N, C, h, w) output; {layer!r} gives {tuple(acts.shape)}")
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = (weights * acts).sum(dim=1, keepdim=True)
    if relu:
        cam = cam.clamp(min=0)
    return F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
