"""Meaningful perturbation (Fong & Vedaldi 2017), the "Mask" row of the GFI table.

The explanation is the smallest region whose *deletion* destroys the class score:

.. math::

    \\min_{m \\in [0,1]^{h\\times w}} \\; s_c\\big(\\Phi(x, \\uparrow m)\\big)
    + \\lambda_1 \\, \\mathrm{mean}\\,|1 - m| + \\lambda_2 \\, \\mathrm{TV}_\\beta(m),

with :math:`\\Phi(x, m) = x \\odot m + p \\odot (1 - m)` (Eq. 1 of Guided Feature
Inversion, :func:`xaihelpers.occlusion.blend`), a blurred background :math:`p`, a mask at
low resolution upsampled bilinearly (:math:`\\uparrow`), the total variation
:math:`\\mathrm{TV}_\\beta(m) = \\mathrm{mean}|\\partial_u m|^\\beta + \\mathrm{mean}|\\partial_v m|^\\beta`
with :math:`\\beta = 3`, and the input jittered by a few pixels at every step so
the mask cannot exploit single-pixel adversarial patterns. The saliency map is the
deleted part, :math:`1 - m`. No maintained library ships the method, so it is
written here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks
from .occlusion import background, blend
from .hooks import frozen_weights


def tv_norm(m: torch.Tensor, beta: float = 3.0) -> torch.Tensor:
    r"""Total variation :math:`\mathrm{mean}|\partial_u m|^\beta + \mathrm{mean}|\partial_v m|^\beta` per mask.

    Parameters
    ----------
    m : torch.Tensor
        Masks, shape (N, h, w).
    beta : float
        Exponent (Fong & Vedaldi: 3, which favours blobs over thin strokes).

    Returns
    -------
    torch.Tensor
        Shape (N,).
    """
    du = (m[:, 1:, :] - m[:, :-1, :]).abs().pow(beta).flatten(1).mean(1)
    dv = (m[:, :, 1:] - m[:, :, :-1]).abs().pow(beta).flatten(1).mean(1)
    return du + dv


def explain(
    model: nn.Module,
    x: torch.Tensor,
    target=None,
    iterations: int = 300,
    lr: float = 0.1,
    mask_size: int | None = None,
    l1: float = 0.01,
    tv: float = 0.2,
    beta: float = 3.0,
    bg: str = "blur",
    radius: float | None = None,
    jitter: int | None = None,
    probabilities: bool = True,
    seed: int = 0,
    verbose: bool = True,
) -> torch.Tensor:
    r"""Fong & Vedaldi's deletion mask, optimised for N images together.

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits, in eval mode; its weights are not changed.
    x : torch.Tensor
        Normalised images, shape (N, 3, H, W).
    target : int, sequence of int or None
        Class per image; ``None`` takes the predicted class.
    iterations, lr : int, float
        Adam steps on the mask and their learning rate.
    mask_size : int, optional
        Side of the optimised mask; default ``H // 8`` (28 at 224 px).
    l1, tv, beta : float
        Weights of the area term (mean of :math:`1 - m`) and of the total variation,
        and the TV exponent.
    bg, radius : str, float
        Background of the deleted region (see :func:`xaihelpers.occlusion.background`).
    jitter : int, optional
        Largest random shift of the perturbed image per step; default ``H // 56``
        (4 px at 224).
    probabilities : bool
        Minimise the softmax probability (default) or the logit.
    seed : int
        Seed of the jitter.
    verbose : bool
        Show a progress bar.

    Returns
    -------
    torch.Tensor
        Saliency maps :math:`1 - \uparrow m`, shape (N, H, W), in [0, 1], on ``x``'s device.
    """
    from tqdm.auto import tqdm

    _checks.image_batch(x)
    if iterations < 1:
        raise ValueError(f"expected at least one iteration, got {iterations}")
    dev, home = _checks.model_device(model), x.device
    x = x.detach().to(dev)
    n, _, h, w = x.shape
    side = mask_size or max(2, h // 8)
    shift = max(1, h // 56) if jitter is None else int(jitter)
    with torch.no_grad():
        t = _checks.targets(target, n, model(x))
    p = background(x, bg, radius)
    m = torch.ones(n, side, side, device=dev, requires_grad=True)
    opt = torch.optim.Adam([m], lr=lr)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with frozen_weights(model):
        for _ in tqdm(range(iterations), desc="Mask", disable=not verbose):
            with torch.enable_grad():
                up = F.interpolate(m[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
                xb = blend(x, up, p)
                if shift:
                    dy, dx = torch.randint(-shift, shift + 1, (2,), generator=gen).tolist()
                    xb = torch.roll(xb, (dy, dx), dims=(2, 3))
                out = model(xb)
                s = (out.softmax(1) if probabilities else out).gather(1, t[:, None])[:, 0]
                loss = s + l1 * (1 - m).abs().flatten(1).mean(1) + tv * tv_norm(m, beta)
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()
            opt.step()
            with torch.no_grad():
                m.clamp_(0, 1)
    with torch.no_grad():
        up = F.interpolate(m[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    return (1 - up.clamp(0, 1)).to(home)
