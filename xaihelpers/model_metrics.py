"""Metrics that query the model: fidelity, stability, deletion and insertion, the smallest sufficient share.

Each takes maps (N, h, w) like the map-only metrics of :mod:`xaihelpers.metrics`, and
the classifier with the images and classes they explain; each returns a NumPy array
of N per-image values. Maps at a layer's resolution are upsampled first
(:func:`xaihelpers.metrics.resize_maps`); every pixel ranking comes from
:func:`xaihelpers.metrics.rank_pixels` (exact top-k, ties in a seeded random order).
Chapter 1 (``notebooks/01_evaluating_explanations.ipynb``) explains each one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from . import _checks
from .metrics import _maps, _top_fractions, pearson, prepare, rank_pixels, resize_maps
from .occlusion import RISE_BLUR_SIGMA, RISE_IMAGE_SIZE, rise_blur

if TYPE_CHECKING:
    from .explainers import Explainer



@torch.no_grad()
def _scores(model: nn.Module, x: torch.Tensor, target: torch.Tensor, batch_size: int, prob: bool) -> torch.Tensor:
    out = []
    dev = _checks.model_device(model)
    for i in range(0, len(x), batch_size):
        logits = model(x[i : i + batch_size].to(dev))
        if prob:
            logits = logits.softmax(1)
        out.append(logits.gather(1, target[i : i + batch_size, None].to(dev))[:, 0].double().cpu())
    return torch.cat(out)


def _setup(model: nn.Module, x: torch.Tensor, maps: object, target) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    _checks.image_batch(x)
    a = _maps(maps)
    if a.shape[0] != x.shape[0]:
        raise ValueError(f"expected one map per image ({x.shape[0]}), got {a.shape[0]}")
    a = resize_maps(a, tuple(x.shape[-2:])).double()
    with torch.no_grad():
        logits = model(x.to(_checks.model_device(model))) if target is None else None
    t = _checks.targets(target, x.shape[0], logits).cpu()
    return x.detach().cpu(), a, t


def fidelity(model: nn.Module, x: torch.Tensor, maps: object, target=None, subset_size: int = 200,
             n_subsets: int = 100, baseline: float = 0.0, seed: int = 0, batch_size: int = 256) -> np.ndarray:
    r"""Fidelity, or faithfulness correlation (Bhatt et al. 2020).

    .. math:: \mu_{Fid} = \operatorname*{Corr}_{S \subset [d],\, |S| = s}
              \Big(\sum_{i \in S} \phi(x)_i,\; F(x) - F(x_{[x_S = \bar x_S]})\Big)

    For ``n_subsets`` random sets S of ``subset_size`` pixels, the pixels of S (all
    channels) are set to ``baseline`` and the drop of the target logit is compared
    with the summed attribution of S (SRD, Appendix E: 200 pixels, value 0).

    Parameters
    ----------
    model, x, target
        The classifier (logits), the normalised images (N, 3, H, W), in which the
        baseline 0 is the mean pixel, and the explained classes (``None``: the predicted
        ones), as every explainer takes them (:mod:`xaihelpers.explainers`).
    maps : tensor or array, shape (N, H, W) or (N, h, w)
        Attributions, resized bilinearly to (H, W) when smaller.
    subset_size, n_subsets : int
        Pixels per subset and number of subsets.
    baseline : float
        Value written into the removed pixels.
    seed : int
        Seed of the subset draws.
    batch_size : int
        Forward passes per batch.

    Returns
    -------
    numpy.ndarray
        Shape (N,): Pearson correlations in [-1, 1] (nan for a constant map).
    """
    x, a, t = _setup(model, x, maps, target)
    n, _, h, w = x.shape
    if not 0 < subset_size < h * w:
        raise ValueError(f"expected 0 < subset_size < {h * w} pixels, got {subset_size}")
    gen = torch.Generator().manual_seed(seed)
    full = _scores(model, x, t, batch_size, prob=False)
    out = np.empty(n)
    for i in range(n):
        idx = torch.stack([torch.randperm(h * w, generator=gen)[:subset_size] for _ in range(n_subsets)])
        keep = torch.ones(n_subsets, h * w)
        keep.scatter_(1, idx, 0.0)
        keep = keep.view(n_subsets, 1, h, w)
        xs = x[i : i + 1] * keep + baseline * (1 - keep)
        drop = full[i] - _scores(model, xs, t[i].repeat(n_subsets), batch_size, prob=False)
        attr = a[i].flatten()[idx].sum(1)
        out[i] = pearson(attr[None, None, :], drop[None, None, :])[0]
    return out


def stability(
    explainer: Explainer,
    model: nn.Module,
    x: torch.Tensor,
    target=None,
    n_samples: int = 10,
    sigma: float = 0.1,
    seed: int = 0,
    normalise: str | None = "max",
    clamp: bool = True,
    **settings,
) -> np.ndarray:
    r"""Stability, a local Lipschitz estimate (Alvarez-Melis & Jaakkola 2018).

    .. math:: \mu_{Sta} = \max_{x_j \in N_\epsilon(x_i)}
              \frac{\lVert \phi(x_i) - \phi(x_j) \rVert_2}{\lVert x_i - x_j \rVert_2}

    over ``n_samples`` neighbours :math:`x_j = x_i + \mathcal N(0, \sigma^2)`
    (SRD, Appendix E: :math:`\sigma = 0.1`), with maps upsampled to the input's
    resolution (:func:`resize_maps`, bilinear) and prepared by :func:`prepare`.
    Lower is better. The numerator is a norm over pixels, so it grows with their
    number: a map at 8x8 scored at its own resolution would look several times more
    stable than the same map upsampled; scoring every map at (H, W) makes maps of
    different methods comparable.

    Parameters
    ----------
    explainer : callable
        ``explainer(model, x, target, **settings) -> (N, H, W)`` or (N, h, w) at a
        lower resolution.
    model : nn.Module
        Classifier returning logits.
    x : torch.Tensor
        Normalised images, shape (N, 3, H, W).
    target : int, sequence or None
        Explained classes, kept fixed for the neighbours; ``None`` takes the predicted ones.
    n_samples : int
        Neighbours per image.
    sigma : float
        Standard deviation of the Gaussian noise, in the normalised input's units.
    seed : int
        Seed of the noise.
    normalise, clamp
        Passed to :func:`prepare`.
    **settings
        Passed to the explainer.

    Returns
    -------
    numpy.ndarray
        Shape (N,), non-negative.
    """
    _checks.image_batch(x)
    dev = _checks.model_device(model)
    with torch.no_grad():
        logits = model(x.to(dev)) if target is None else None
    t = _checks.targets(target, x.shape[0], logits)
    size = tuple(x.shape[-2:])

    def explain(xb: torch.Tensor) -> torch.Tensor:
        return prepare(resize_maps(_maps(explainer(model, xb, t, **settings)), size), normalise, clamp)

    phi = explain(x)
    gen = torch.Generator().manual_seed(seed)
    best = torch.zeros(x.shape[0], dtype=torch.float64)
    for _ in range(n_samples):
        noise = torch.randn(x.shape, generator=gen) * sigma
        xj = x + noise.to(x.device)
        phij = explain(xj)
        ratio = (phi - phij).flatten(1).norm(dim=1) / noise.flatten(1).double().norm(dim=1)
        best = torch.maximum(best, ratio)
    return best.numpy()


def _curve(model, x, a, t, steps, start, end, batch_size, seed) -> torch.Tensor:
    """Target probability while pixels move from ``start`` to ``end`` in map order."""
    n, _, h, w = x.shape
    order = rank_pixels(a, seed)
    fractions = torch.linspace(0, 1, steps + 1)
    curves = torch.empty(n, steps + 1, dtype=torch.float64)
    for i in range(n):
        moved = _top_fractions(order[i], fractions, h, w)
        xs = start[i : i + 1] * (1 - moved) + end[i : i + 1] * moved
        curves[i] = _scores(model, xs, t[i].repeat(len(fractions)), batch_size, prob=True)
    return curves


#: Standard deviation (pixels) of the blur that deletion fills with and insertion starts from:
#: RISE's 5 at 224 px, kept in pixels at every size. At the benchmark's 64 px RISE's blur
#: scaled with the image (about 1.4 px) leaves most images recognisable, and insertion
#: then cannot tell the object mask from its inverse (:func:`xaihelpers.validity.metric_validity`).
BLUR_SIGMA = 5.0
#: What deletion writes into the removed pixels: ``"blur"``, the blurred image insertion starts from.
DELETION_FILL = "blur"
DELETION_FILLS = ("blur", "mean")


def deletion_insertion(model: nn.Module, x: torch.Tensor, maps: object, target=None, steps: int = 32,
                       blur_sigma: float | None = BLUR_SIGMA, batch_size: int = 256, blur_size: int | None = None,
                       seed: int = 0, deletion_fill: str = DELETION_FILL) -> tuple[np.ndarray, np.ndarray]:
    r"""Deletion and insertion AUC (Petsiuk et al. 2018).

    Deletion replaces pixels, most relevant first, by a fill (``deletion_fill``);
    insertion starts from a blurred copy and restores pixels in the same order. Each
    curve is the target's softmax probability after each of ``steps`` equal fractions;
    its area (trapezoid rule over the fraction in [0, 1]) is the score. Maps are
    upsampled to the input's resolution first (:func:`resize_maps`); pixels of equal
    relevance are taken in a seeded random order (:func:`rank_pixels`).

    The blur is RISE's Gaussian kernel, zero-padded at the border, of standard
    deviation ``blur_sigma`` (default :data:`BLUR_SIGMA`, 5 px: RISE's value at 224 px)
    and side 11/5 of it rounded to an odd number (RISE's 11). Deletion's default fill is
    the same blurred image, not RISE's zero (the mean pixel): at 64 px, deleting
    scattered pixels to zero sprinkles the image with speckle the network never saw,
    which removes the class whichever pixels go, so a random map deleted as well as the
    object mask. Both defaults are the ones that pass
    :func:`xaihelpers.validity.metric_validity` on the cluttered Fashion-MNIST benchmark
    (chapter 1). ``blur_sigma=5 * H / 224, deletion_fill="mean"`` gives RISE's own curves
    at any size (with ``steps = H W / 224`` at 224 px, 224 pixels a step).

    .. math:: \mathrm{AUC} = \int_0^1 p_t\big(x^{(f)}\big)\, df

    Lower deletion and higher insertion are better.

    Parameters
    ----------
    model, x, target
        The classifier (logits), the normalised images (N, 3, H, W) and the explained
        classes (``None``: the predicted ones), as the explainers take them.
    maps : tensor or array, shape (N, H, W) or (N, h, w)
        Attributions.
    steps : int
        Number of steps of each curve.
    blur_sigma : float or None
        Standard deviation of the blur, in pixels; ``None``: RISE's scaled to the image,
        :math:`5 H / 224`.
    batch_size : int
        Forward passes per batch.
    blur_size : int, optional
        Odd side of the blur kernel; default 11/5 of the standard deviation, rounded
        to an odd number, at least 3 (RISE's 11 at 224 px).
    seed : int
        Seed of the tie-breaking between pixels of equal relevance.
    deletion_fill : {"blur", "mean"}
        What deletion writes into the removed pixels: the blurred image, or 0 in
        normalised space (the data set's mean pixel, RISE's choice).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Deletion and insertion AUCs, each of shape (N,), in [0, 1].
    """
    if deletion_fill not in DELETION_FILLS:
        raise ValueError(f"expected deletion_fill in {DELETION_FILLS}, got {deletion_fill!r}")
    x, a, t = _setup(model, x, maps, target)
    sigma = RISE_BLUR_SIGMA * x.shape[-2] / RISE_IMAGE_SIZE if blur_sigma is None else float(blur_sigma)
    if not sigma > 0:
        raise ValueError(f"expected a positive blur_sigma in pixels, got {blur_sigma}")
    blurred = rise_blur(x, sigma, blur_size)
    deletion = _curve(model, x, a, t, steps, x, blurred if deletion_fill == "blur" else torch.zeros_like(x),
                      batch_size, seed)
    insertion = _curve(model, x, a, t, steps, blurred, x, batch_size, seed)
    dx = 1.0 / steps
    auc = lambda c: ((c[:, 1:] + c[:, :-1]) / 2).sum(1).numpy() * dx  # noqa: E731
    return auc(deletion), auc(insertion)


def explanation_size(
    model: nn.Module, x: torch.Tensor, maps: object, target=None, steps: int = 50, batch_size: int = 256,
    seed: int = 0,
) -> np.ndarray:
    """Smallest fraction of most relevant pixels that, kept alone, keeps the label.

    All other pixels are set to 0 (the mean pixel); fractions are tried on a grid of
    ``steps`` values; an image whose label is never kept scores 1. Maps are upsampled
    to the input's resolution first; each fraction keeps exactly that many pixels, ties
    taken in a seeded random order (:func:`rank_pixels`).

    Parameters
    ----------
    model, x, target
        The classifier (logits), the normalised images (N, 3, H, W) and the labels to
        keep (``None``: the predicted ones).
    maps : tensor or array, shape (N, H, W) or (N, h, w)
        Attributions.
    steps : int
        Grid size over (0, 1].
    batch_size : int
        Forward passes per batch.
    seed : int
        Seed of the tie-breaking between pixels of equal relevance.

    Returns
    -------
    numpy.ndarray
        Shape (N,), in (0, 1]. Smaller is a more concise explanation.
    """
    x, a, t = _setup(model, x, maps, target)
    n, _, h, w = x.shape
    fractions = torch.arange(1, steps + 1, dtype=torch.float64) / steps
    order = rank_pixels(a, seed)
    dev = _checks.model_device(model)
    out = np.ones(n)
    for i in range(n):
        keep = _top_fractions(order[i], fractions, h, w)
        with torch.no_grad():
            preds = torch.cat([model((x[i : i + 1] * keep[j : j + batch_size]).to(dev)).argmax(1).cpu()
                               for j in range(0, len(keep), batch_size)])
        ok = (preds == t[i]).nonzero()
        if len(ok):
            out[i] = float(fractions[ok[0, 0]])
    return out


def confidence_drop(model: nn.Module, x: torch.Tensor, maps: object, target=None, batch_size: int = 256) -> np.ndarray:
    r"""Average drop in confidence (Chattopadhay et al. 2018) when only the explanation is shown.

    .. math:: \mathrm{Drop} = \frac{\max(0,\, p_t(x) - p_t(x \odot \hat\phi))}{p_t(x)}

    where :math:`\hat\phi` is the map rescaled to [0, 1] (negative parts dropped)
    and multiplies the normalised image, so 0 shows the mean pixel.

    Parameters
    ----------
    model, x, maps, target
        As in :func:`deletion_insertion`.
    batch_size : int
        Forward passes per batch.

    Returns
    -------
    numpy.ndarray
        Shape (N,), in [0, 1]; lower is better.
    """
    x, a, t = _setup(model, x, maps, target)
    weight = prepare(a, "max", clamp=True).clamp(min=0).float()[:, None]
    p = _scores(model, x, t, batch_size, prob=True)
    q = _scores(model, x * weight, t, batch_size, prob=True)
    return ((p - q).clamp(min=0) / p).numpy()
