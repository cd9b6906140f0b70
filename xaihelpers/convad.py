r"""Activation-Deactivation (ConvAD, Chanchal, Kelly & Chockler 2025): occlude by switching activations off.

Occlusion usually paints a masking value (0, the mean, a blur) over the hidden pixels,
and the network then sees a picture it was never trained on. ConvAD instead carries
the binary input mask through the network. After every layer with a spatial footprint,
each output position gets the mean of the previous layer's position attribution over
its window (the *position attribution* :math:`\Phi`, with the binary mask at the
input): unrolled to the pixels, a share of visible input in which each pixel of the
receptive field counts by the number of paths that lead from it to the position, not
the plain share of the receptive field that is visible. Positions judged occluded are
*deactivated*, set to 0, so whatever lies under the mask cannot reach the output.

:func:`wrap` turns a CNN into a :class:`ConvAD` whose forward takes ``(x, mask)``.
The choices the paper leaves open, made here and measured in chapter 4:

- **which positions are occluded** (``rule``): ``"lenient"`` (no visible input in the
  window, :math:`\Phi = 0`; the default), ``"majority"`` (:math:`\Phi < 1/2`) or
  ``"strict"`` (any hidden input, :math:`\Phi < 1`). Strict is the paper's
  deactivation taken literally, but in a network whose receptive field covers the
  image it switches every deep position off for almost any mask (a 4x4 hidden patch
  leaves none of the benchmark CNN's last layer active): the logits become the
  classifier's bias whatever the rest of the image shows. Lenient keeps every
  position that saw visible input, so the visible part of the image keeps working;
  chapter 4 measures the share of active positions per depth for each rule. A
  ``UserWarning`` says so when strict meets a receptive field larger than the image;
- **the position attribution** follows the chapter's formula: :math:`\Phi_i(p)` is the
  mean of :math:`\Phi_{i-1}` over the window of :math:`p` (with :math:`\Phi_0` the
  binary mask), the share of visible input weighted by the paths that reach
  :math:`p` (two stacked 2 x 2 convolutions on a 3 x 3 image: the middle pixel
  lies on 4 of the 16 paths, so hiding it gives 0.75, where the plain visible share
  of the receptive field is 8/9). It is 0 exactly when no visible pixel reaches
  :math:`p` and 1 when no hidden one does, so the lenient and strict rules see the
  same positions under either share, and only the majority rule depends on the
  weighting; it is computed in float64 from kernels of ones, independent of TF32;
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
  recent tensor of the same size (the branch's, which has the larger receptive field);
- **concatenations** (DenseNet, Inception) carry each input's mask on its own
  channels; a convolution then averages over the channels it reads (its group);
- **global average pooling** is the network's own (``pool="all"``: switched-off
  positions count as zeros) or, with ``pool="active"``, the mean over active
  positions only.

With an all-ones mask every fraction is 1 and nothing is zeroed: the wrapped network
computes exactly the original logits (the paper's theorem; tested on every supported
architecture). Chapter 4 (``notebooks/04_activation_deactivation.ipynb``) uses it.
"""

from __future__ import annotations

import warnings
import weakref

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from . import _checks
from .hooks import ACTIVATION_TYPES
from .occlusion import MASKING, paint

RULES = ("lenient", "majority", "strict")
DEFAULT_RULE = "lenient"
"""The library's default rule; chapter 4 measures why (strict switches deep networks off)."""
DEACTIVATE = ("all", "spatial")
POOLS = ("all", "active")
_SPATIAL = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
_POINTWISE = (nn.BatchNorm2d, nn.Dropout, nn.Identity) + ACTIVATION_TYPES
_GLOBAL = (nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear)
_TOL = 1e-9  # fractions are float64 and exact up to a few ulps; thresholds allow for that


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
    r"""The position attribution :math:`\Phi_i`: the mean of :math:`\Phi_{i-1}` over each output position's window.

    Applied layer after layer from the binary mask :math:`\Phi_0`, this gives each
    position the path-weighted share of visible pixels in its receptive field (a pixel
    counts by the number of paths from it to the position), not the plain visible share.

    Computed in float64 with a kernel of ones and one division, whatever the input's
    dtype and device, so that it does not depend on TF32/cuDNN settings: an all-ones
    window gives exactly 1 (a float32 kernel of 1/9 under TF32 sums to less than
    1 - 1e-6, which would switch everything off under the strict rule).

    Parameters
    ----------
    frac : torch.Tensor
        :math:`\Phi_{i-1}` at the layer's input (or the binary input mask), shape (N, 1, H, W),
        or (N, C, H, W) with one map per channel (after a concatenation).
    m : nn.Module
        A convolution or pooling layer (its kernel, stride, padding, dilation, groups).

    Returns
    -------
    torch.Tensor
        float64, shape (N, 1, H', W') (or (N, C', H', W') per channel): the mean of
        ``frac`` over each window, padding counted as visible; e.g. two unmasked of four
        inputs give 0.5. A convolution mixes the channels of its group, a pooling layer
        keeps each channel's map.
    """
    frac = frac.to(torch.float64)
    k, s, p, d = _window(m)
    n, c, h, w = frac.shape
    groups, repeat = 1, 1
    if c > 1:
        if isinstance(m, nn.Conv2d):
            if c != m.in_channels:
                frac, c = frac.mean(1, keepdim=True), 1
            else:
                groups, repeat = m.groups, m.out_channels // m.groups
                frac = frac.reshape(n, groups, c // groups, h, w).mean(2)
        else:
            groups = c
    ones = torch.ones(groups, 1, *k, dtype=torch.float64, device=frac.device)
    out = F.conv2d(F.pad(frac, (p[1], p[1], p[0], p[0]), value=1.0), ones, stride=s, dilation=d, groups=groups)
    out = out / (k[0] * k[1])
    if out.shape[1] > 1 and torch.equal(out, out[:, :1].expand_as(out)):
        return out[:, :1]  # every channel alike: one map
    return out.repeat_interleave(repeat, 1) if repeat > 1 else out


def keep(frac: torch.Tensor, rule: str = DEFAULT_RULE) -> torch.Tensor:
    r"""Which positions stay active (bool), given their position attribution :math:`\Phi`.

    ``"strict"``: :math:`\Phi = 1` (no hidden input at all); ``"majority"``:
    :math:`\Phi \geq 1/2`; ``"lenient"``: :math:`\Phi > 0` (some visible input). The
    thresholds allow 1e-9 for float64 rounding; lenient's is exact (a sum of zeros is 0).
    """
    if rule not in RULES:
        raise ValueError(f"expected rule in {RULES}, got {rule!r}")
    if rule == "strict":
        return frac >= 1 - _TOL
    if rule == "majority":
        return frac >= 0.5 - _TOL
    return frac > 0


class _Carry(TorchFunctionMode):
    """Carries masks through functional operations: concatenation (per channel) and global pooling."""

    def __init__(self, ad: "ConvAD", lookup, remember) -> None:
        super().__init__()
        self.ad, self.lookup, self.remember = ad, lookup, remember

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.cat:
            out = func(*args, **kwargs)
            tensors = list(args[0])
            dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
            if out.ndim == 4 and dim in (1, -3) and all(isinstance(t, torch.Tensor) for t in tensors):
                found = [self.lookup(t) for t in tensors]
                fs, geom = [f for f, _ in found], max(g for _, g in found)
                if all(f.shape[1] == 1 for f in fs) and all(torch.equal(f, fs[0]) for f in fs[1:]):
                    self.remember(out, fs[0], geom)
                else:  # each input brings its own mask for its own channels
                    self.remember(out, torch.cat([f.expand(-1, t.shape[1], -1, -1) for f, t in zip(fs, tensors)], 1), geom)
            return out
        if func is F.adaptive_avg_pool2d and self.ad.pool == "active":
            x = args[0]
            size = args[1] if len(args) > 1 else kwargs.get("output_size")
            if isinstance(x, torch.Tensor) and x.ndim == 4 and size in (1, (1, 1), [1, 1]):
                on = keep(self.lookup(x)[0], self.ad.rule).to(x.dtype).expand_as(x)
                return (x * on).sum((2, 3), keepdim=True) / on.sum((2, 3), keepdim=True).clamp_min(1)
        return func(*args, **kwargs)


class ConvAD(nn.Module):
    r"""A CNN whose forward takes ``(x, mask)`` and deactivates the occluded positions.

    Parameters
    ----------
    model : nn.Module
        The classifier (eval mode); not modified (hooks live only during a forward).
    rule : {"lenient", "majority", "strict"}
        When a position counts as occluded (see :func:`keep` and the module notes).
    deactivate : {"all", "spatial"}
        Zero occluded positions after every supported layer, or after spatial layers only.
    pool : {"all", "active"}
        Global average pooling over every position (the network's own), or over the
        active positions only (deactivated zeros do not dilute the mean).

    After a forward, ``fractions`` holds :math:`\Phi` of every spatial layer in order
    (float64) and ``receptive_field`` the largest receptive field (pixels) met.
    """

    def __init__(self, model: nn.Module, rule: str = DEFAULT_RULE, deactivate: str = "all", pool: str = "all") -> None:
        super().__init__()
        if rule not in RULES:
            raise ValueError(f"expected rule in {RULES}, got {rule!r}")
        if deactivate not in DEACTIVATE:
            raise ValueError(f"expected deactivate in {DEACTIVATE}, got {deactivate!r}")
        if pool not in POOLS:
            raise ValueError(f"expected pool in {POOLS}, got {pool!r}")
        check_supported(model)
        self.model, self.rule, self.deactivate, self.pool = model, rule, deactivate, pool
        self.fractions: list[torch.Tensor] = []
        self.receptive_field = 1
        self._warned = False

    def active_shares(self) -> list[float]:
        """Share of active positions at each spatial layer of the last forward (over all masks)."""
        return [keep(f, self.rule).double().mean().item() for f in self.fractions]

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
        # id(tensor) -> (weak reference, (fraction map, (receptive field, jump))); by size for functional ops
        state: dict[int, tuple] = {}
        by_size: dict[tuple[int, int], tuple] = {}
        self.fractions, self.receptive_field = [], 1

        def lookup(t: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
            entry = state.get(id(t))
            if entry is not None and entry[0]() is t:
                f, geom = entry[1]
            else:  # a functional op (e.g. a residual sum) in between: the latest map of the same size
                if tuple(t.shape[-2:]) not in by_size:
                    raise ValueError(f"ConvAD lost the mask at a tensor of shape {tuple(t.shape)}")
                f, geom = by_size[tuple(t.shape[-2:])]
            if t.ndim == 4 and f.shape[1] not in (1, t.shape[1]):
                f = f.mean(1, keepdim=True)
            return f, geom

        def remember(t: torch.Tensor, f: torch.Tensor, geom: tuple[int, int]) -> None:
            state[id(t)] = (weakref.ref(t), (f, geom))
            by_size[tuple(t.shape[-2:])] = (f, geom)
            self.receptive_field = max(self.receptive_field, geom[0])

        def hook(mod, inp, out):
            if isinstance(mod, _GLOBAL) or not isinstance(out, torch.Tensor) or out.ndim != 4:
                return None
            f_in, (rf, jump) = lookup(inp[0])
            if _is_pad(mod):  # padding carries nothing from the image: it counts as visible
                pads = mod.pads(*f_in.shape[-2:]) if hasattr(mod, "pads") else mod.padding
                remember(out, F.pad(f_in, pads, value=1.0), (rf, jump))
                return None
            if isinstance(mod, _SPATIAL):
                f = position_attribution(f_in, mod)
                k, s, _, d = _window(mod)
                rf, jump = rf + (max(k) - 1) * max(d) * jump, jump * max(s)
                self.fractions.append(f)
            else:  # pointwise: the position's state does not change
                f = f_in
            if self.deactivate == "spatial" and not isinstance(mod, _SPATIAL):
                remember(out, f, (rf, jump))
                return None
            out = out * keep(f, self.rule).to(out.dtype)
            remember(out, f, (rf, jump))
            return out

        handles = [m.register_forward_hook(hook, prepend=True) for m in self.model.modules() if not list(m.children())]
        try:
            x = x * (mask > 0).to(x.dtype)  # the input is the first activation: occluded pixels are off
            remember(x, (mask > 0).to(torch.float64), (1, 1))
            with _Carry(self, lookup, remember):
                out = self.model(x)
        finally:
            for h in handles:
                h.remove()
        if self.rule == "strict" and not self._warned and self.receptive_field > min(x.shape[-2:]):
            self._warned = True
            warnings.warn(f"ConvAD: the receptive field of the deepest layers ({self.receptive_field} px) exceeds the "
                          f"image ({x.shape[-2]}x{x.shape[-1]}); under rule='strict' one hidden pixel switches off "
                          "every position whose field reaches it, so most masks leave the network's logits at its "
                          "bias. rule='lenient' (the default) or 'majority' keep the visible part working.",
                          stacklevel=4)
        return out


def wrap(model: nn.Module, rule: str = DEFAULT_RULE, deactivate: str = "all", pool: str = "all") -> ConvAD:
    """Wrap ``model`` so that its forward takes ``(x, mask)``; see :class:`ConvAD`."""
    return ConvAD(model, rule, deactivate, pool)


def active_share_by_depth(model: nn.Module, x: torch.Tensor, sides, rules=RULES) -> "pandas.DataFrame":  # noqa: F821
    """Share of active positions at every spatial layer, for a hidden square in the middle of the image.

    The measurement behind the default rule (chapter 4): under strict, a position is
    switched off as soon as its receptive field reaches hidden input, so in a network
    whose receptive field covers the image one small hidden square switches the deep
    layers off entirely.

    Parameters
    ----------
    model : nn.Module
        Classifier in eval mode.
    x : torch.Tensor
        One normalised image (1, 3, H, W); only its size matters for the shares.
    sides : sequence of int
        Sides of the hidden central squares, in pixels.
    rules : sequence of str
        ConvAD rules.

    Returns
    -------
    pandas.DataFrame
        One row per (side, rule, layer): ``side``, ``hidden`` (share of the image
        hidden), ``rule``, ``layer`` (index of the spatial layer), ``depth``
        ((layer + 1) / number of spatial layers), ``active`` (share of positions
        active), ``receptive_field`` (pixels, the deepest layer's).
    """
    import pandas as pd

    _checks.image_batch(x)
    h, w = x.shape[-2:]
    rows = []
    for side in sides:
        if not 0 < side <= min(h, w):
            raise ValueError(f"expected sides in 1..{min(h, w)}, got {side}")
        mask = torch.ones(1, h, w, dtype=x.dtype, device=x.device)
        r0, c0 = (h - side) // 2, (w - side) // 2
        mask[:, r0:r0 + side, c0:c0 + side] = 0
        for rule in rules:
            ad = ConvAD(model, rule)
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                ad(x[:1], mask)
            shares = ad.active_shares()
            rows += [{"side": side, "hidden": side * side / (h * w), "rule": rule, "layer": i,
                      "depth": (i + 1) / len(shares), "active": a, "receptive_field": ad.receptive_field}
                     for i, a in enumerate(shares)]
    return pd.DataFrame(rows)




def predict_masked(model: nn.Module, x: torch.Tensor, masks: torch.Tensor, how: str = "convad", rule: str = DEFAULT_RULE,
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
