"""Guided Feature Inversion (Du et al. 2018), equation by equation.

The explanation is a mask :math:`m` that keeps just enough of the image for the
network's representation, and then its class score, to survive:

- Eq. 1, :func:`blend`: :math:`\\Phi(x, m) = x \\odot m + p \\odot (1 - m)`, with a
  background :math:`p` (:func:`background`: blurred input by default);
- Eq. 2, :func:`inversion_loss`: :math:`\\lVert f^l(\\Phi) - f^l(x)\\rVert^2 / \\lVert f^l(x)\\rVert^2`
  plus a penalty on the weights;
- Eq. 3, :func:`target_loss`: :math:`-f^L_c(\\Phi) + \\lambda f^L_c(\\Phi_{bg})` plus a penalty;
- Eq. 4, :func:`mask_from_weights`: :math:`m = \\sum_i \\omega_i f^{l_1}_i(x)`, upsampled
  and normalised, so the optimisation runs over channel weights, not pixels.

:func:`explain` runs the authors' two-stage schedule (settings from their public code,
see the book's notes): Adam with learning rate 1e-2 halved every 10 iterations, 80
iterations, the first 10 on the inversion loss, the rest on the class-discriminative
loss computed on softmax probabilities (the free-mask ablation has its own learning
rate, :data:`FREE_MASK_LR`: see :func:`optimise`). Two details of their code differ from these
defaults and are one setting away (:data:`AUTHORS_CODE`): their stage 1 runs 11 steps, and
their mask is normalised as
(m - min) / max instead of m / max. Their blur is computed on the photo at its
source resolution before resizing; ours blurs the network's input. Chapter 2
(``notebooks/02_guided_feature_inversion.ipynb``) derives and tests it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks
from .occlusion import BACKGROUNDS, background, blend  # noqa: F401  (Eq. 1 and its backgrounds)
from .hooks import frozen_weights, record
from .models import default_layer

NORMALISATIONS = ("max", "minmax")
# The authors' public code where it differs from :func:`explain`'s defaults: 11 steps of
# stage 1 and the mask normalised as (m - min) / max. ``explain(..., **AUTHORS_CODE)``.
AUTHORS_CODE = {"stage1_iterations": 11, "normalise": "minmax"}
#: Adam's learning rate for Eq. 4's channel weights (the authors' code).
LR = 1e-2
#: Adam's learning rate for the free pixel mask's logits (see :func:`optimise`).
FREE_MASK_LR = 0.2
#: The free pixel mask's starting logit: a mask of sigmoid(-2) = 0.12 everywhere.
FREE_MASK_START = -2.0


def travel(lr: float, iterations: int = 80, halve_every: int = 10) -> float:
    r"""The furthest Adam can move one parameter under :func:`optimise`'s schedule.

    Adam's step on a parameter is at most about its learning rate, whatever the scale
    of the gradient (it divides by the gradient's running magnitude), so with the
    learning rate halved every ``halve_every`` iterations a parameter moves at most
    :math:`\sum_t lr \cdot 2^{-\lfloor t / h \rfloor}` (about :math:`2 h \cdot lr`: 0.2
    at the authors' 1e-2, 10 and 80).

    Returns
    -------
    float
        The sum of the step sizes.
    """
    if lr <= 0 or iterations < 0 or halve_every < 1:
        raise ValueError(f"expected lr > 0, iterations >= 0 and halve_every >= 1, got {lr}, {iterations}, {halve_every}")
    return float(sum(lr * 0.5 ** (t // halve_every) for t in range(iterations)))


def mask_from_weights(weights: torch.Tensor, basis: torch.Tensor, size: tuple[int, int],
                      normalise: str = "max") -> torch.Tensor:
    r"""Eq. 4: :math:`m = \sum_i \omega_i f^{l_1}_i(x)`, upsampled bilinearly and normalised.

    ``normalise="max"``: negative values are cut at 0 and each mask is divided by its
    maximum, so it lies in [0, 1] and reaches 1; it reaches 0 only where the weighted
    sum is 0, so the removed image :math:`\Phi(x, 1 - m)` keeps a share of every pixel
    the channels respond to. ``normalise="minmax"``: the authors' code,
    :math:`(m - \min m) / \max m`, which reaches 0 at the weakest pixel (and stays below
    1 unless the minimum is 0). Both normalise after upsampling, as the authors do.

    Either way the mask does not change when all weights of an image are scaled by
    the same factor :math:`s > 0` (:math:`m(s\omega) = m(\omega)`), while the penalty
    :math:`\lVert s\omega\rVert^2 = s^2\lVert\omega\rVert^2` does: the penalty alone
    cannot make the mask smaller, only shrink all weights together, down to the point
    where every weight is 0 and the mask is undefined (0 / 0). That is why
    :func:`explain` undoes a step that would zero an image's weights.

    Parameters
    ----------
    weights : torch.Tensor
        Channel weights :math:`\omega`, shape (N, C).
    basis : torch.Tensor
        The activations :math:`f^{l_1}(x)`, shape (N, C, h, w).
    size : (int, int)
        The input's (H, W).

    Returns
    -------
    torch.Tensor
        Masks of shape (N, H, W) in [0, 1].
    """
    if weights.shape != basis.shape[:2]:
        raise ValueError(f"expected one weight per channel, shape {tuple(basis.shape[:2])}, got {tuple(weights.shape)}")
    m = torch.bmm(weights[:, None], basis.flatten(2)).view(basis.shape[0], 1, *basis.shape[2:])
    m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)[:, 0]
    if normalise == "max":
        m = m.clamp(min=0)
        return m / (m.flatten(1).amax(1)[:, None, None] + 1e-12)
    if normalise == "minmax":
        low, high = m.flatten(1).amin(1)[:, None, None], m.flatten(1).amax(1)[:, None, None]
        return (m - low) / (high + 1e-12)
    raise ValueError(f"expected normalise in {NORMALISATIONS}, got {normalise!r}")


def _penalty(weights: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "l2":
        return (weights**2).sum(1)
    if norm == "l1":
        return weights.abs().sum(1)
    raise ValueError(f"expected penalty 'l1' or 'l2', got {norm!r}")


def inversion_loss(features: torch.Tensor, reference: torch.Tensor, weights: torch.Tensor, gamma: float = 5.0,
                   penalty: str = "l2") -> torch.Tensor:
    r"""Eq. 2, per image: :math:`\lVert f^l(\Phi) - f^l(x)\rVert^2 / \lVert f^l(x)\rVert^2 + \gamma \lVert\omega\rVert`.

    The relative error makes :math:`\gamma` comparable across layers (the authors' code);
    the penalty is the squared L2 norm by default (their code) or L1 (the poster).

    Returns
    -------
    torch.Tensor
        Shape (N,).
    """
    err = (features - reference).flatten(1).pow(2).sum(1) / reference.flatten(1).pow(2).sum(1).clamp(min=1e-12)
    return err + gamma * _penalty(weights, penalty)


def target_loss(score_kept: torch.Tensor, score_removed: torch.Tensor, weights: torch.Tensor, lam: float = 1.0,
                delta: float = 2.0, penalty: str = "l2") -> torch.Tensor:
    r"""Eq. 3, per image: :math:`-s_c(\Phi) + \lambda s_c(\Phi_{bg}) + \delta \lVert\omega\rVert`.

    :math:`s_c` is the target's softmax probability (the authors' code) or logit, for
    the image with the mask kept (:math:`\Phi`) and with it removed
    (:math:`\Phi_{bg} = x \odot (1 - m) + p \odot m`).

    Returns
    -------
    torch.Tensor
        Shape (N,).
    """
    return -score_kept + lam * score_removed + delta * _penalty(weights, penalty)


@dataclass
class GFIResult:
    """What :func:`optimise` returns: the masks and how the optimisation got there.

    Attributes
    ----------
    mask : torch.Tensor
        Final masks (N, H, W) in [0, 1].
    stage1_mask : torch.Tensor
        Masks after the inversion stage alone, (N, H, W).
    weights : torch.Tensor
        Final channel weights (N, C) (or the free pixel mask's logits, (N, H, W)).
    losses : list of float
        Mean loss per iteration.
    """

    mask: torch.Tensor
    stage1_mask: torch.Tensor
    weights: torch.Tensor
    losses: list[float]


def explain(model: nn.Module, x: torch.Tensor, target=None, **settings) -> torch.Tensor:
    """Guided Feature Inversion's masks, (N, H, W) in [0, 1] on ``x``'s device: :func:`optimise`'s ``mask``.

    ``settings`` are :func:`optimise`'s (``layer``, ``iterations``, ``bg``, ...); the
    optimisation's history comes from :func:`optimise` itself.
    """
    return optimise(model, x, target, **settings).mask.to(x.device)


def optimise(
    model: nn.Module,
    x: torch.Tensor,
    target=None,
    layer: str | None = None,
    mask_layer: str | None = None,
    iterations: int = 80,
    stage1_iterations: int = 10,
    lr: float | None = None,
    halve_every: int = 10,
    init: float = 0.1,
    max_weight: float = 1e5,
    bg: str = "blur",
    radius: float | None = None,
    gamma: float = 5.0,
    delta: float = 2.0,
    lam: float = 1.0,
    penalty: str = "l2",
    probabilities: bool = True,
    free_mask: bool = False,
    normalise: str = "max",
    verbose: bool = True,
) -> GFIResult:
    r"""Guided Feature Inversion: optimise channel weights so the mask keeps the class.

    Stage 1 (``stage1_iterations``) minimises the inversion loss (Eq. 2) at ``layer``;
    stage 2 minimises the class-discriminative loss (Eq. 3). When the background
    alone keeps the class (a blurred image the network still recognises), Eq. 3
    only rewards shrinking the weights; a step that would send all of an image's
    weights to 0, leaving the mask undefined, is undone for that image. The mask is Eq. 4 over
    the channels of ``mask_layer``; ``free_mask=True`` optimises a pixel mask
    instead (the ablation of Eq. 4). All N images are optimised together; Adam acts
    on each weight separately, so the result equals optimising them one by one.

    The free pixel mask is :math:`m = \sigma(z)`, with per-pixel logits :math:`z`
    starting at -2 (:data:`FREE_MASK_START`, a mask of 0.12). Its learning rate is its
    own, :data:`FREE_MASK_LR` = 0.2, not Eq. 4's 1e-2 (:data:`LR`): Adam moves a
    parameter by at most about its learning rate per step whatever the gradient, so the
    schedule bounds how far a parameter can go (:func:`travel`: about 20 times the
    learning rate). Eq. 4's mask depends only on the ratios of the weights, which start
    at 0.1, so a travel of 0.2 can triple or zero any of them; a logit that moves by 0.2
    from -2 leaves the mask between 0.10 and 0.14, near uniform. At 0.2 the travel is
    about 4, enough to take a pixel from -2 to +2 (a mask of 0.88) or down to about 0.

    Without Eq. 4 the mask itself plays the part of :math:`\omega`, so
    the penalty of Eq. 2 and Eq. 3 acts on the mask, not on the logits:
    :math:`\mathcal{R}(m) = \frac{1}{HW}\sum_{ij} m_{ij}^2` (``penalty="l2"``) or
    :math:`\frac{1}{HW}\sum_{ij} m_{ij}`, the mask's area as a share of the image
    (``penalty="l1"``), weighted by the same :math:`\gamma` and :math:`\delta`. The
    mean over the :math:`H \times W` pixels keeps the penalty on the scale of the class
    score for any image size. (A penalty on the logits, :math:`\lVert z\rVert^2`, would
    pull every logit to 0 and leave a uniform mask of 0.5.)

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits, in eval mode; its weights are not changed.
    x : torch.Tensor
        Normalised images, shape (N, 3, H, W).
    target : int, sequence of int or None
        Class to explain per image; ``None`` takes the predicted class.
    layer, mask_layer : str, optional
        Inversion layer :math:`l` and mask-basis layer :math:`l_1`; both default to
        ``default_layer(model, "encoder")`` (:func:`xaihelpers.models.default_layer`; one
        layer serves both in the authors' code).
    iterations, stage1_iterations : int
        Total iterations and those of stage 1 (authors: 80 and 10).
    lr, halve_every : float or None, int
        Adam's learning rate, halved every ``halve_every`` iterations; ``None`` takes
        :data:`LR` (1e-2, the authors') for Eq. 4 and :data:`FREE_MASK_LR` (0.2) for the
        free mask (see above); ``halve_every`` 10.
    init, max_weight : float
        Initial weight and the clamp's upper end (0.1, 1e5).
    bg : {"blur", "noise", "constant", "mean"}
        The background :math:`p` (see :func:`background`); ``radius`` its blur.
    gamma, delta, lam : float
        Penalty weights of Eq. 2 and Eq. 3 and the removal term's :math:`\lambda` (5, 2, 1).
    penalty : {"l2", "l1"}
        Penalty on the weights (the authors' code: squared L2).
    probabilities : bool
        Eq. 3 on softmax probabilities (authors) or on logits.
    free_mask : bool
        Optimise a free pixel mask (sigmoid of per-pixel logits) instead of Eq. 4, the
        penalty acting on the mask's mean (squared) value (see above).
    normalise : {"max", "minmax"}
        How Eq. 4's mask is normalised (:func:`mask_from_weights`); the authors' code
        uses ``"minmax"`` and 11 steps of stage 1 (:data:`AUTHORS_CODE`).
    verbose : bool
        Show a progress bar over the iterations.

    Returns
    -------
    GFIResult
        The masks (N, H, W) in [0, 1] on the model's device, the stage-1 masks, the
        weights and the losses.
    """
    from tqdm.auto import tqdm

    _checks.image_batch(x)
    lr = (FREE_MASK_LR if free_mask else LR) if lr is None else lr
    if not lr >= 0:  # 0 keeps the weights where they start (the tests' known masks)
        raise ValueError(f"expected a learning rate lr >= 0, got {lr}")
    if not 0 <= stage1_iterations <= iterations:
        raise ValueError(f"expected 0 <= stage1_iterations <= iterations, got {stage1_iterations} and {iterations}")
    if normalise not in NORMALISATIONS:
        raise ValueError(f"expected normalise in {NORMALISATIONS}, got {normalise!r}")
    dev = _checks.model_device(model)
    x = x.detach().to(dev)
    layer = layer or default_layer(model, "encoder")
    mask_layer = mask_layer or layer
    size = tuple(x.shape[-2:])
    with torch.no_grad(), record(model, sorted({layer, mask_layer})) as rec:
        logits = model(x)
    t = _checks.targets(target, x.shape[0], logits)
    reference, basis = rec.activations[layer], rec.activations[mask_layer]
    p = background(x, bg, radius)
    n = x.shape[0]
    if free_mask:
        weights = torch.full((n, *size), FREE_MASK_START, device=dev, dtype=x.dtype, requires_grad=True)
        # the penalty acts on the mask, averaged over its H * W pixels (see the docstring)
        gamma, delta = gamma / (size[0] * size[1]), delta / (size[0] * size[1])
    else:
        weights = torch.full(basis.shape[:2], init, device=dev, dtype=basis.dtype, requires_grad=True)
    # the fused update is one kernel instead of a dozen: same algorithm, less per-step overhead
    opt = torch.optim.Adam([weights], lr=lr, fused=dev.type in ("cpu", "cuda"))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=halve_every, gamma=0.5)
    losses: list[torch.Tensor] = []
    stage1_mask = None
    # stage 2 passes the kept and the removed image in one batch: Eq. 1 with m and with 1 - m
    x2, p2, t2 = torch.cat([x, x]), torch.cat([p, p]), torch.cat([t, t])[:, None]
    basis_flat = basis.flatten(2)
    with frozen_weights(model):
        for it in tqdm(range(iterations), desc="GFI", disable=not verbose):
            with torch.enable_grad():
                mask = torch.sigmoid(weights) if free_mask else mask_from_weights(weights, basis, size, normalise)
                reg = mask.flatten(1) if free_mask else weights  # what the penalty acts on
                if it < stage1_iterations:
                    with record(model, [layer], detach=False) as r:
                        model(blend(x, mask, p))
                    loss = inversion_loss(r.activations[layer], reference, reg, gamma, penalty)
                else:
                    out = model(blend(x2, torch.cat([mask, 1 - mask]), p2))
                    score = out.softmax(1) if probabilities else out
                    s = score.gather(1, t2)[:, 0]
                    loss = target_loss(s[:n], s[n:], reg, lam, delta, penalty)
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()
            previous = None if free_mask else weights.detach().clone()
            opt.step()
            sched.step()
            if previous is not None:
                with torch.no_grad():
                    weights.clamp_(0, max_weight)
                    # A step that sends every weight of an image to 0 leaves the mask
                    # undefined (0 / 0); that image keeps its previous weights. torch.where,
                    # not boolean indexing, so a GPU never waits for the host.
                    dead = torch.bmm(weights[:, None], basis_flat).amax((1, 2)) <= 0
                    weights.copy_(torch.where(dead[:, None], previous, weights))
            losses.append(loss.detach().mean())
            if it + 1 == stage1_iterations:
                stage1_mask = _current(weights, basis, size, free_mask, normalise)
    final = _current(weights, basis, size, free_mask, normalise)
    losses = torch.stack(losses).tolist() if losses else []  # one transfer at the end, not one per step
    return GFIResult(final, final if stage1_mask is None else stage1_mask, weights.detach(), losses)


def _current(weights, basis, size, free_mask, normalise="max") -> torch.Tensor:
    with torch.no_grad():
        return torch.sigmoid(weights) if free_mask else mask_from_weights(weights, basis, size, normalise)
