"""Activation-Deactivation (ConvAD, Chanchal, Kelly & Chockler 2025): occlude by switching activations off.

Occlusion usually paints a masking value (0, the mean, a blur) over the hidden pixels,
and the network then sees a picture it was never trained on. ConvAD instead carries
the binary input mask through the network. After every layer, each output position
gets the fraction of unmasked input in its receptive field (the *position
attribution*); positions judged occluded are *deactivated*, set to 0, so whatever
lies under the mask cannot reach the output.

:func:`wrap` turns a CNN into a :class:`ConvAD` whose forward takes ``(x, mask)``.
The choices the paper leaves open, made here and measured in chapter 4:

- **which positions are occluded** (``rule``): ``"strict"`` (any masked input in the
  receptive field; the default: the paper's deactivation taken literally, keeping no
  position that mixed in the zeros of occluded input), ``"majority"`` (fraction
  below 0.5), ``"lenient"`` (no unmasked input at all);
- **where to deactivate**: after every convolution, pooling, batch norm and
  activation, so that biases and batch-norm shifts cannot switch a deactivated
  position back on (``deactivate="all"``); ``"spatial"`` only after the layers with
  a spatial footprint, which lets batch norm re-add a constant there (the leak
  shown in the chapter);
- **the input** is the first layer of activations: occluded pixels are set to 0
  (the mean colour in normalised space) before the first layer, so that under every
  rule nothing under the mask reaches the output; the rules differ only in how far
  deactivation spreads into positions that mix visible and occluded input;
- **padding** counts as visible (it carries nothing from the image), so that an
  all-ones mask gives fraction 1 at the border too;
- **residual additions and other functional operations** keep the mask of the most
  recent tensor of the same size (the branch's, which has the larger receptive field).

With an all-ones mask every fraction is 1 and nothing is zeroed: the wrapped network
computes exactly the original logits (the paper's theorem; tested on every supported
architecture). Chapter 4 (``notebooks/04_activation_deactivation.ipynb``) uses it.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks

RULES = ("strict", "majority", "lenient")
DEACTIVATE = ("all", "spatial")
_SPATIAL = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
_POINTWISE = (nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.ELU, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Tanh, nn.Sigmoid,
              nn.Hardtanh, nn.Hardswish, nn.Dropout, nn.Identity)
_GLOBAL = (nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear)


def _is_pad(m: nn.Module) -> bool:
    return isinstance(m, (nn.ZeroPad2d, nn.ConstantPad2d)) or type(m).__name__ == "SamePad2d"


def check_supported(model: nn.Module) -> None:
    """Raise a ``ValueError`` naming the layer types ConvAD cannot carry a mask through."""
    bad = sorted({type(m).__name__ for m in model.modules() if not list(m.children())
                  and not isinstance(m, _SPATIAL + _POINTWISE + _GLOBAL) and not _is_pad(m)})
    if bad:
        raise ValueError(f"ConvAD cannot carry a mask through layers of type {', '.join(bad)} "
                         "(supported: convolutions, pooling, padding, batch norm, activations, global pooling, linear)")


def _window(m: nn.Module):
    if isinstance(m, nn.Conv2d):
        if isinstance(m.padding, str):
            raise ValueError(f"ConvAD needs numeric padding, got padding={m.padding!r} in {m}")
        return m.kernel_size, m.stride, m.padding, m.dilation
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    dil = pair(getattr(m, "dilation", 1))
    return pair(m.kernel_size), pair(m.stride or m.kernel_size), pair(m.padding), dil


def position_attribution(frac: torch.Tensor, m: nn.Module) -> torch.Tensor:
    """The fraction of unmasked input in each output position's receptive field.

    Parameters
    ----------
    frac : torch.Tensor
        Fraction (or binary mask) at the layer's input, shape (N, 1, H, W).
    m : nn.Module
        A convolution or pooling layer (its kernel, stride, padding, dilation).

    Returns
    -------
    torch.Tensor
        Shape (N, 1, H', W'): the mean of ``frac`` over each window, padding counted as
        visible; e.g. two unmasked of four inputs give 0.5.
    """
    k, s, p, d = _window(m)
    ones = torch.ones(1, 1, *k, dtype=frac.dtype, device=frac.device) / (k[0] * k[1])
    return F.conv2d(F.pad(frac, (p[1], p[1], p[0], p[0]), value=1.0), ones, stride=s, dilation=d)


def _keep(frac: torch.Tensor, rule: str) -> torch.Tensor:
    if rule == "strict":
        return (frac >= 1 - 1e-6).to(frac.dtype)
    if rule == "majority":
        return (frac >= 0.5).to(frac.dtype)
    return (frac > 1e-6).to(frac.dtype)


class ConvAD(nn.Module):
    """A CNN whose forward takes ``(x, mask)`` and deactivates the occluded positions.

    Parameters
    ----------
    model : nn.Module
        The classifier (eval mode); not modified (hooks live only during a forward).
    rule : {"strict", "majority", "lenient"}
        When a position counts as occluded (see the module notes).
    deactivate : {"all", "spatial"}
        Zero occluded positions after every supported layer, or after spatial layers only.
    """

    def __init__(self, model: nn.Module, rule: str = "strict", deactivate: str = "all") -> None:
        super().__init__()
        if rule not in RULES:
            raise ValueError(f"expected rule in {RULES}, got {rule!r}")
        if deactivate not in DEACTIVATE:
            raise ValueError(f"expected deactivate in {DEACTIVATE}, got {deactivate!r}")
        check_supported(model)
        self.model, self.rule, self.deactivate = model, rule, deactivate
        self.fractions: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the images ``x`` (N, 3, H, W) seen through ``mask``.

        ``mask`` is (N, H, W) or (N, 1, H, W) with 1 = visible, 0 = occluded; one
        image (N = 1) with M masks is broadcast to M forwards in one batch. ``None``
        is the all-ones mask.
        """
        _checks.image_batch(x)
        if mask is None:
            mask = torch.ones(x.shape[0], 1, *x.shape[-2:], dtype=x.dtype, device=x.device)
        mask = torch.as_tensor(mask, dtype=x.dtype, device=x.device)
        if mask.ndim == 3:
            mask = mask[:, None]
        if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"expected masks of shape (N, H, W) with (H, W) = {tuple(x.shape[-2:])}, got {tuple(mask.shape)}")
        if x.shape[0] == 1 and mask.shape[0] > 1:
            x = x.expand(mask.shape[0], -1, -1, -1)
        if mask.shape[0] != x.shape[0]:
            raise ValueError(f"expected one mask per image ({x.shape[0]}) or one image, got {mask.shape[0]} masks")
        state: dict[int, tuple] = {}  # id(tensor) -> (weak reference, fraction map)
        by_size: dict[tuple[int, int], torch.Tensor] = {}
        self.fractions = []

        def lookup(t: torch.Tensor) -> torch.Tensor:
            entry = state.get(id(t))
            if entry is not None and entry[0]() is t:
                return entry[1]
            f = by_size.get(tuple(t.shape[-2:]))  # a functional op (e.g. a residual sum) in between
            if f is None:
                raise ValueError(f"ConvAD lost the mask at a tensor of shape {tuple(t.shape)}")
            return f

        def remember(t: torch.Tensor, f: torch.Tensor) -> None:
            state[id(t)] = (weakref.ref(t), f)
            by_size[tuple(t.shape[-2:])] = f

        def hook(mod, inp, out):
            if isinstance(mod, _GLOBAL) or not isinstance(out, torch.Tensor) or out.ndim != 4:
                return None
            f_in = lookup(inp[0])
            if _is_pad(mod):  # padding carries nothing from the image: it counts as visible
                pads = mod.pads(*f_in.shape[-2:]) if hasattr(mod, "pads") else mod.padding
                remember(out, F.pad(f_in, pads, value=1.0))
                return None
            if isinstance(mod, _SPATIAL):
                f = position_attribution(f_in, mod)
                self.fractions.append(f)
                keep = _keep(f, self.rule)
            else:  # pointwise: the position's state does not change
                f, keep = f_in, (f_in > 0).to(f_in.dtype)
            if self.deactivate == "spatial" and not isinstance(mod, _SPATIAL):
                remember(out, f)
                return None
            out = out * keep
            remember(out, f * keep)
            return out

        handles = [m.register_forward_hook(hook) for m in self.model.modules() if not list(m.children())]
        try:
            x = x * (mask > 0).to(x.dtype)  # the input is the first activation: occluded pixels are off
            remember(x, mask)
            return self.model(x)
        finally:
            for h in handles:
                h.remove()


def wrap(model: nn.Module, rule: str = "strict", deactivate: str = "all") -> ConvAD:
    """Wrap ``model`` so that its forward takes ``(x, mask)``; see :class:`ConvAD`."""
    return ConvAD(model, rule, deactivate)


MASKING = ("zero", "min", "max", "mean", "blur", "noise")


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
    from .gfi import background, blend

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


def predict_masked(model: nn.Module, x: torch.Tensor, masks: torch.Tensor, how: str = "convad", rule: str = "strict",
                   batch_size: int = 64) -> torch.Tensor:
    """Logits of one image seen through M masks, by ConvAD or by a painted masking value.

    The query a causal explainer makes for its mutants; both kinds of occlusion go
    through the same call so that they are compared on the same footing.

    Parameters
    ----------
    model : nn.Module
        Classifier in eval mode.
    x : torch.Tensor
        One normalised image, shape (1, 3, H, W).
    masks : torch.Tensor
        (M, H, W), 1 = visible.
    how : str
        ``"convad"`` or one of :data:`MASKING`.
    rule : str
        ConvAD's rule (see :class:`ConvAD`).
    batch_size : int
        Masks per forward pass.

    Returns
    -------
    torch.Tensor
        Logits, shape (M, K).
    """
    _checks.image_batch(x)
    if x.shape[0] != 1:
        raise ValueError(f"expected one image, shape (1, 3, H, W), got {tuple(x.shape)}")
    if how != "convad" and how not in MASKING:
        raise ValueError(f"expected how='convad' or one of {MASKING}, got {how!r}")
    dev = _checks.model_device(model)
    x = x.to(dev)
    ad = ConvAD(model, rule) if how == "convad" else None
    out = []
    with torch.no_grad():
        for part in torch.as_tensor(masks).split(batch_size):
            part = part.to(dev, x.dtype)
            if ad is not None:
                out.append(ad(x, part))
            else:
                out.append(model(paint(x.expand(len(part), -1, -1, -1), part, how)))
    return torch.cat(out)
