"""Every explanation method of the book behind one name and one call (chapters 1-6).

Each method module's ``explain(model, x, target=None, **settings)`` returns maps: a
float tensor of shape (N, h, w) on ``x``'s device, nothing else (richer results come
from a sibling with its own name: :func:`xaihelpers.gfi.optimise`,
:func:`xaihelpers.causal.search`, :func:`xaihelpers.actmatch.train`). This module
names them all, the papers' methods and the baselines, and returns the callable::

    fn = xh.explainers.get("srd_input")
    maps = fn(model, x, target)            # (N, H, W) on x's device

    xh.explainers.get("gfi", iterations=40)(model, x, target)
    xh.explainers.get("causal", rule="majority", iters=5)(model, x)

:func:`names` lists every name, :func:`describe` says which chapter explains it.
Settings given to :func:`get` are fixed; settings given to the call are added (and win).
Methods with an optimisation or a search run quietly unless ``verbose=True`` is given:
the loops that score them (:mod:`xaihelpers.metrics`, :mod:`xaihelpers.compare`) show
their own progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from . import _checks, actmatch, baselines, causal, gfi, perturbation, srd
from .models import default_layer

#: an explainer: ``(model, x, target=None, **settings) -> maps`` of shape (N, h, w), on ``x``'s device
Explainer = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class Entry:
    """One method of the book: its function, the chapter that explains it, a title, and its settings."""

    fn: Callable[..., torch.Tensor]
    chapter: str
    title: str
    defaults: tuple = ()  # (name, value) pairs fixed for this entry
    uses_target: bool = True  # False: the map does not depend on the class (the amortised mask network)
    quiet: bool = False  # the function takes ``verbose``; the registry passes verbose=False unless told


def _srd(resolution: str) -> Callable[..., torch.Tensor]:
    def run(model: nn.Module, x: torch.Tensor, target=None, **settings) -> torch.Tensor:
        # SRD-input: pixels; SRD-high: the middle layer; SRD-low: the encoder's output (layer=None)
        layer = default_layer(model, "middle") if resolution == "high" else ("input" if resolution == "input" else None)
        return srd.explain(model, x, target, **{"layer": layer, **settings})

    return run


def _baseline(method: str) -> Callable[..., torch.Tensor]:
    def run(model: nn.Module, x: torch.Tensor, target=None, **settings) -> torch.Tensor:
        return baselines.explain(model, x, target, method, **settings)

    return run


_BASELINE_CHAPTER = "01_evaluating_explanations"
REGISTRY: dict[str, Entry] = {
    **{m: Entry(_baseline(m), _BASELINE_CHAPTER, m) for m in baselines.METHODS},
    **{m: Entry(_baseline(m), "00_getting_started", m) for m in baselines.OWN_METHODS if m not in baselines.METHODS},
    "gfi": Entry(gfi.explain, "02_guided_feature_inversion", "GFI", quiet=True),
    "mask": Entry(perturbation.explain, "02_guided_feature_inversion", "Mask (Fong & Vedaldi)", quiet=True),
    "srd_input": Entry(_srd("input"), "03_sharing_ratio_decomposition", "SRD-input"),
    "srd_high": Entry(_srd("high"), "03_sharing_ratio_decomposition", "SRD-high"),
    "srd_low": Entry(_srd("low"), "03_sharing_ratio_decomposition", "SRD-low"),
    "causal": Entry(causal.explain, "04_activation_deactivation", "causal (ConvAD)", quiet=True),
    "actmatch": Entry(actmatch.explain, "05_activation_matching", "Activation Matching", quiet=True),
    "actmatch_amortised": Entry(actmatch.amortised_explain, "05_activation_matching",
                                "Activation Matching (amortised)", uses_target=False),
}


def names() -> list[str]:
    """Every registered method's name, baselines first, then the papers' methods in chapter order."""
    return list(REGISTRY)


def describe(name: str) -> str:
    """One line: the method's title and the chapter that explains it."""
    e = _entry(name)
    return f"{e.title} (notebooks/{e.chapter}.ipynb)"


def _entry(name: str) -> Entry:
    if name not in REGISTRY:
        raise ValueError(f"expected a method name from xh.explainers.names(), e.g. {names()[:4]}, got {name!r}")
    return REGISTRY[name]


def get(name: str, **settings) -> Explainer:
    """The method ``name`` as an :data:`Explainer` with ``settings`` fixed.

    Parameters
    ----------
    name : str
        One of :func:`names`.
    **settings
        The method's settings (see its module's ``explain``), e.g. ``iterations`` for
        ``"gfi"``, ``how``/``rule``/``iters`` for ``"causal"``, ``net`` (a trained
        :class:`xaihelpers.actmatch.MaskNet`, required) for ``"actmatch_amortised"``.

    Returns
    -------
    Explainer
        ``fn(model, x, target=None, **more)``: float maps (N, h, w) on ``x``'s device.
        ``fn.__name__`` is the method's title (with the causal search's occlusion).
    """
    e = _entry(name)
    fixed = {**dict(e.defaults), **settings}
    if name == "actmatch_amortised" and not isinstance(fixed.get("net"), nn.Module):
        raise TypeError("expected net=<a trained xh.actmatch.MaskNet> for 'actmatch_amortised' "
                        "(xh.actmatch.train_amortised returns one)")

    def run(model: nn.Module, x: torch.Tensor, target=None, **more) -> torch.Tensor:
        _checks.image_batch(x)
        kw = {**fixed, **more}
        if e.quiet:
            kw.setdefault("verbose", False)
        maps = e.fn(model, x, target, **kw)
        if not isinstance(maps, torch.Tensor) or maps.ndim != 3 or len(maps) != len(x):
            raise RuntimeError(f"{name} broke the explainer contract: expected maps (N, h, w) for N = {len(x)}, "
                               f"got {type(maps).__name__} {tuple(getattr(maps, 'shape', ()))}")
        return maps.detach().float().to(x.device)

    title = e.title
    if name == "causal":
        title = f"causal, {causal.method_name(fixed.get('how', 'convad'), fixed.get('rule', causal.DEFAULT_RULE))}"
    run.__name__ = title
    run.__doc__ = f"{describe(name)}; settings {fixed or 'the defaults'}."
    return run


def uses_target(name: str) -> bool:
    """Whether the method's map depends on the explained class (all but the amortised mask network)."""
    return _entry(name).uses_target
