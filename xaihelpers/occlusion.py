r"""Occlusion in one place: what hidden pixels show, and how an image and a fill are blended.

Every method of the book that hides part of an image uses this module:

- :func:`blend`, Eq. 1 of Guided Feature Inversion, :math:`x \odot m + p \odot (1 - m)`:
  GFI and Fong & Vedaldi's Mask (chapter 2), ConvAD's painted comparison (chapter 4),
  Activation Matching's explanation :math:`e = m \odot x` (chapter 5);
- the fills :math:`p`: :func:`background` (blur, noise, zeros, the image's mean; chapter 2),
  :func:`paint` with ConvAD's masking values (chapter 4), :func:`uninformative` inputs
  for APOP (chapter 3), :func:`noise_fill` and :func:`training_backgrounds` for
  Activation Matching's robustness term (chapter 5), :func:`rise_blur` for the
  insertion metric (chapter 1);
- backgrounds that carry no class evidence, for the planting test of robustness
  (chapters 4-6): :func:`solid_backgrounds`, :func:`texture_backgrounds`, and
  :func:`plant`, which pastes explanations on them.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import _checks

#: the backgrounds of Eq. 1 (:func:`background`)
BACKGROUNDS = ("blur", "noise", "constant", "mean")
#: ConvAD's painted masking values (:func:`paint`)
MASKING = ("zero", "min", "max", "mean", "blur", "noise")
#: APOP's inputs without information (:func:`uninformative`)
UNINFORMATIVE = ("zeros", "ones", "normal")
#: Activation Matching's robustness fills (:func:`noise_fill`)
NOISE_FILLS = ("zeros", "gaussian", "uniform")


# ----------------------------------------------------------------------------
# Eq. 1 and its backgrounds
# ----------------------------------------------------------------------------

def background(x: torch.Tensor, kind: str = "blur", radius: float | None = None, seed: int = 0) -> torch.Tensor:
    """The background :math:`p` of Eq. 1, same shape as ``x`` (N, 3, H, W).

    Parameters
    ----------
    x : torch.Tensor
        Normalised images.
    kind : {"blur", "noise", "constant", "mean"}
        ``"blur"``: Gaussian blur with standard deviation ``radius`` (the authors:
        radius 11 at 224 px); ``"noise"``: Gaussian noise with the image's mean and
        standard deviation; ``"constant"``: zeros (the dataset's mean pixel);
        ``"mean"``: each image's mean colour.
    radius : float, optional
        Blur standard deviation in pixels; default ``11 * H / 224``.
    seed : int
        Seed of the noise.

    Returns
    -------
    torch.Tensor
        The background, shape (N, 3, H, W).
    """
    _checks.image_batch(x)
    if kind == "blur":
        from torchvision.transforms.functional import gaussian_blur

        sigma = 11.0 * x.shape[-1] / 224 if radius is None else float(radius)
        k = 2 * int(3 * sigma) + 1
        k = min(k, 2 * ((min(x.shape[-2:]) - 1) // 2) + 1)
        return gaussian_blur(x, [k, k], [sigma, sigma])
    if kind == "noise":
        gen = torch.Generator(device="cpu").manual_seed(seed)
        noise = torch.randn(x.shape, generator=gen).to(x)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        return mean + std * noise
    if kind == "constant":
        return torch.zeros_like(x)
    if kind == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    raise ValueError(f"expected background kind in {BACKGROUNDS}, got {kind!r}")


def blend(x: torch.Tensor, mask: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    r"""Eq. 1: :math:`\Phi(x, m) = x \odot m + p \odot (1 - m)`.

    Parameters
    ----------
    x, p : torch.Tensor
        Image and background, shape (N, 3, H, W).
    mask : torch.Tensor
        Shape (N, H, W) or (N, 1, H, W), values in [0, 1].

    Returns
    -------
    torch.Tensor
        The blended input, shape (N, 3, H, W).
    """
    if mask.ndim == 3:
        mask = mask[:, None]
    if mask.shape[0] != x.shape[0] or mask.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"expected a mask of shape (N, H, W) = {(x.shape[0], *x.shape[-2:])}, got {tuple(mask.shape)}")
    return x * mask + p * (1 - mask)


def paint(x: torch.Tensor, mask: torch.Tensor, value: str = "zero", seed: int = 0) -> torch.Tensor:
    """Occlusion the usual way: paint a masking value where ``mask`` is 0.

    Parameters
    ----------
    x : torch.Tensor
        Normalised images (N, 3, H, W).
    mask : torch.Tensor
        (N, H, W) or (N, 1, H, W), 1 = visible.
    value : {"zero", "min", "max", "mean", "blur", "noise"}
        0 in normalised space (the data set's mean colour, ReX's default), each image's
        minimum, maximum or mean, a Gaussian blur of the image, or Gaussian noise with
        the image's mean and standard deviation.

    Returns
    -------
    torch.Tensor
        The occluded images, shape (N, 3, H, W).
    """
    if value not in MASKING:
        raise ValueError(f"expected a masking value in {MASKING}, got {value!r}")
    flat = x.flatten(1)
    fills = {
        "zero": lambda: torch.zeros_like(x),
        "min": lambda: flat.amin(1)[:, None, None, None].expand_as(x),
        "max": lambda: flat.amax(1)[:, None, None, None].expand_as(x),
        "mean": lambda: background(x, "mean"),
        "blur": lambda: background(x, "blur"),
        "noise": lambda: background(x, "noise", seed=seed),
    }
    m = mask if mask.ndim == 3 else mask[:, 0]
    return blend(x, m.to(x.dtype), fills[value]())


def uninformative(x: torch.Tensor, kind: str, seed: int = 0) -> torch.Tensor:
    """An input without information, shaped like ``x``: ``"zeros"``, ``"ones"`` or ``"normal"`` (N(0, 1))."""
    if kind == "zeros":
        return torch.zeros_like(x)
    if kind == "ones":
        return torch.ones_like(x)
    if kind == "normal":
        gen = torch.Generator(device="cpu").manual_seed(seed)
        return torch.randn(x.shape, generator=gen).to(x)
    raise ValueError(f"expected an input kind in {UNINFORMATIVE}, got {kind!r}")


def noise_fill(kind: str, shape, generator: torch.Generator) -> torch.Tensor:
    """One fill of Activation Matching's robustness term: ``"zeros"``, ``"gaussian"`` (N(0, 1)) or ``"uniform"`` (U(-2, 2)), in normalised space."""
    if kind == "zeros":
        return torch.zeros(shape)
    if kind == "gaussian":
        return torch.randn(shape, generator=generator)
    if kind == "uniform":
        return torch.rand(shape, generator=generator) * 4 - 2
    raise ValueError(f"expected fills from {NOISE_FILLS}, got {kind!r}")


def training_backgrounds(n: int, size: tuple[int, int], fills=NOISE_FILLS, seed: int = 0) -> torch.Tensor:
    """Backgrounds of the kinds :func:`xaihelpers.actmatch.robustness_loss` trains on: ``n`` of each fill, (n * len(fills), 3, H, W).

    Zeros (the mean colour), Gaussian and uniform noise in normalised space, drawn as
    the loss draws them; chapter 5 plants explanations on them beside fills the loss
    never saw.
    """
    g = torch.Generator(device="cpu").manual_seed(seed)
    return torch.cat([noise_fill(f, (n, 3, *size), g) for f in fills])


# ----------------------------------------------------------------------------
# RISE's blur (insertion)
# ----------------------------------------------------------------------------

RISE_BLUR_SIZE, RISE_BLUR_SIGMA, RISE_IMAGE_SIZE = 11, 5.0, 224


def _odd_kernel_side(sigma: float) -> int:
    """RISE's kernel side for ``sigma`` (11 for sigma 5): 11/5 sigma rounded to an odd integer, at least 3."""
    return max(3, 2 * int(math.floor((RISE_BLUR_SIZE / RISE_BLUR_SIGMA * sigma - 1) / 2 + 0.5)) + 1)


def rise_blur(x: torch.Tensor, sigma: float, size: int | None = None) -> torch.Tensor:
    """RISE's blur: a ``size`` x ``size`` Gaussian kernel applied per channel with zero padding.

    The kernel is built as RISE's ``gkern`` builds it: a unit impulse in the centre of
    the window filtered by scipy's Gaussian of standard deviation ``sigma`` (which
    reflects at the window's border, so the kernel sums to 1); it is separable, the
    outer product of the 1-D filter with itself.
    """
    from scipy.ndimage import gaussian_filter1d

    k = _odd_kernel_side(sigma) if size is None else int(size)
    if k < 1 or k % 2 == 0:
        raise ValueError(f"expected an odd blur kernel side, got {size}")
    impulse = np.zeros(k)
    impulse[k // 2] = 1.0
    k1 = gaussian_filter1d(impulse, sigma, mode="reflect")
    kern = torch.from_numpy(np.outer(k1, k1)).to(x)
    c = x.shape[1]
    return F.conv2d(x, kern.expand(c, 1, k, k), padding=k // 2, groups=c)


# ----------------------------------------------------------------------------
# backgrounds without class evidence, and planting explanations on them
# ----------------------------------------------------------------------------

def solid_backgrounds(n: int, size: tuple[int, int], normalize: Callable[[torch.Tensor], torch.Tensor],
                      seed: int = 0) -> torch.Tensor:
    """``n`` images of one random colour each, normalised as the model expects: (n, 3, H, W)."""
    g = torch.Generator().manual_seed(seed)
    colours = torch.rand(n, 3, 1, 1, generator=g)
    return normalize(colours.expand(n, 3, *size).contiguous())


def texture_backgrounds(n: int, size: tuple[int, int], normalize: Callable[[torch.Tensor], torch.Tensor],
                        seed: int = 0) -> torch.Tensor:
    """``n`` random crops of texture photographs (scikit-image's brick, grass, gravel), normalised.

    Other images without an object in them: backgrounds that carry no class evidence.
    Each crop covers a random 40-100 % of the texture's shorter side, resized to ``size``.

    Returns
    -------
    torch.Tensor
        Shape (n, 3, H, W).
    """
    import skimage.data

    rng = np.random.default_rng(seed)
    textures = [torch.from_numpy(getattr(skimage.data, t)().astype(np.float32) / 255.0)
                for t in ("brick", "grass", "gravel")]
    out = []
    for i in range(n):
        t = textures[i % len(textures)]
        side = int(min(t.shape) * rng.uniform(0.4, 1.0))
        r, c = (int(rng.integers(0, d - side + 1)) for d in t.shape)
        crop = t[r:r + side, c:c + side][None, None]
        out.append(F.interpolate(crop, size=size, mode="bilinear", align_corners=False)[0].expand(3, -1, -1))
    return normalize(torch.stack(out))


def plant(x: torch.Tensor, masks: object, backgrounds: torch.Tensor) -> torch.Tensor:
    """Every explanation on every background: ``m * x + (1 - m) * b``.

    Parameters
    ----------
    x : torch.Tensor
        Normalised images (N, 3, H, W).
    masks : array or tensor
        Explanations (N, H, W), 1 = part of the explanation.
    backgrounds : torch.Tensor
        Normalised backgrounds (B, 3, H, W).

    Returns
    -------
    torch.Tensor
        Shape (N, B, 3, H, W).
    """
    _checks.image_batch(x)
    _checks.image_batch(backgrounds, "backgrounds")
    m = masks.detach() if isinstance(masks, torch.Tensor) else torch.as_tensor(np.asarray(masks))
    m = m.to(x.device, x.dtype)  # on x's device, wherever the masks and backgrounds were made
    if m.shape != (x.shape[0], *x.shape[-2:]):
        raise ValueError(f"expected masks of shape {(x.shape[0], *x.shape[-2:])}, got {tuple(m.shape)}")
    if backgrounds.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"expected backgrounds of size {tuple(x.shape[-2:])}, got {tuple(backgrounds.shape[-2:])}")
    m = m[:, None, None]
    return m * x[:, None] + (1 - m) * backgrounds.to(x.device, x.dtype)[None]
