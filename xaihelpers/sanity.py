"""The model-randomisation sanity checks of Adebayo et al. (2018): do the maps depend on what the network learned?

:func:`cascading_randomisation` re-initialises the layers from the output down
(:func:`default_stages`) and compares each explainer's maps with the trained
network's; :func:`data_randomisation` compares them with a network trained on
shuffled labels. Chapter 1 runs both on the baselines, chapter 6 on every method.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from torch import nn

from . import _checks
from .metrics import _maps, pearson, prepare, resize_maps, spearman, ssim  # noqa: F401

if TYPE_CHECKING:
    from .explainers import Explainer


def default_stages(model: nn.Module) -> list[tuple[str, list[str]]]:
    """The cascade of :func:`cascading_randomisation`, output side first.

    For a model with a ``features`` ``nn.Sequential`` (the benchmark CNNs, VGG), each
    child with weights is a stage and a batch norm joins the convolution before it;
    the modules after ``features`` (the head) come first. Otherwise every convolution
    and linear layer is a stage.
    """
    children = dict(model.named_children())
    if isinstance(children.get("features"), nn.Sequential):
        stages: list[tuple[str, list[str]]] = []
        for name, child in children["features"].named_children():
            if not any(True for _ in child.parameters()):
                continue
            full = f"features.{name}"
            if isinstance(child, nn.BatchNorm2d) and stages:
                stages[-1][1].append(full)
            else:
                stages.append((name, [full]))
        head = [(n, [n]) for n, c in children.items() if n != "features" and any(True for _ in c.parameters())]
        return head[::-1] + stages[::-1]
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return [(n, [n]) for n in names[::-1]]


def cascading_randomisation(
    explainer: Explainer,
    model: nn.Module,
    x: torch.Tensor,
    target,
    stages: Sequence[tuple[str, Sequence[str]]] | None = None,
    seed: int = 0,
    similarity: str = "spearman",
    reference: object | None = None,
    **settings,
) -> "pandas.DataFrame":  # noqa: F821
    r"""Model-randomisation sanity check (Adebayo et al. 2018), cascading from the output.

    Re-initialises the model's layers stage by stage, output first, keeping earlier
    stages random, and measures how similar each stage's maps are to the trained
    model's. An explainer that depends on the learned weights should lose similarity
    quickly; one that stays similar explains the input's structure, not the model.
    A re-initialised layer is drawn as PyTorch's default initialisation draws it
    (weights and biases uniform in :math:`\pm 1/\sqrt{\text{fan-in}}`; batch norms
    reset), from a generator seeded with ``seed``.

    Parameters
    ----------
    explainer : callable
        ``explainer(model, x, target, **settings) -> (N, h, w)``.
    model : nn.Module
        The trained classifier; it is copied, never changed.
    x : torch.Tensor
        Normalised images, shape (N, 3, H, W).
    target : int, sequence or None
        Explained classes, kept fixed across stages.
    stages : sequence of (label, module-name prefixes), optional
        The cascade, output first; default :func:`default_stages`.
    seed : int
        Seed of the re-initialisation.
    similarity : {"spearman", "ssim", "pearson"}
        Similarity of absolute-valued, max-normalised maps (Adebayo et al. use the
        Spearman rank correlation of absolute values and SSIM), at the input's
        resolution.
    reference : tensor, optional
        The trained model's maps for ``x`` and ``target``, when already computed (saves
        one explainer call).

    Returns
    -------
    pandas.DataFrame
        One row per image and stage: ``stage`` (0 = trained), ``label`` and ``similarity``.
    """
    import copy

    import pandas as pd

    measure, t = _sanity_setup(model, x, target, similarity)
    if stages is None:
        stages = default_stages(model)

    def norm(m):
        return _sanity_maps(m, tuple(x.shape[-2:]))

    reference = norm(explainer(model, x, t, **settings) if reference is None else reference)
    rnd = copy.deepcopy(model).eval()
    gen = torch.Generator().manual_seed(seed)
    rows = [pd.DataFrame({"stage": 0, "label": "trained", "similarity": measure(reference, reference),
                          "image": range(x.shape[0])})]
    for k, (label, prefixes) in enumerate(stages, start=1):
        for name, module in rnd.named_modules():
            if any(name == p or name.startswith(p + ".") for p in prefixes):
                _reinitialise(module, gen)
        maps = norm(explainer(rnd, x, t, **settings))
        rows.append(pd.DataFrame({"stage": k, "label": label, "similarity": measure(reference, maps),
                                  "image": range(x.shape[0])}))
    return pd.concat(rows, ignore_index=True)


def _sanity_setup(model: nn.Module, x: torch.Tensor, target, similarity: str):
    """The similarity function and the explained classes of a sanity check (checked inputs)."""
    measures = {"spearman": spearman, "ssim": ssim, "pearson": pearson}
    if similarity not in measures:
        raise ValueError(f"expected similarity in {tuple(measures)}, got {similarity!r}")
    _checks.image_batch(x)
    dev = _checks.model_device(model)
    with torch.no_grad():
        logits = model(x.to(dev)) if target is None else None
    return measures[similarity], _checks.targets(target, x.shape[0], logits)


def _sanity_maps(maps: object, size: tuple[int, int]) -> torch.Tensor:
    """Maps as the sanity checks compare them: at the input's size, absolute, divided by their maximum."""
    return prepare(resize_maps(_maps(maps), size).abs(), "absmax", clamp=False)


def data_randomisation(
    explainer: Explainer,
    model: nn.Module,
    randomised: nn.Module,
    x: torch.Tensor,
    target,
    similarity: str = "spearman",
    reference: object | None = None,
    **settings,
) -> np.ndarray:
    r"""Data-randomisation sanity check (Adebayo et al. 2018): trained model against one trained on permuted labels.

    Both models explain the same images for the same classes; a method whose maps stay
    alike explains the images, not what the trained model learned from its labels.

    Parameters
    ----------
    explainer : callable
        ``explainer(model, x, target, **settings) -> (N, h, w)``.
    model, randomised : nn.Module
        The trained classifier and the same architecture trained on permuted labels
        (e.g. :func:`xaihelpers.benchmark_models.load_shuffled_label_model`).
    x, target
        Normalised images (N, 3, H, W) and the explained classes (fixed for both).
    similarity : {"spearman", "ssim", "pearson"}
        As in :func:`cascading_randomisation`, on the same normalised maps.
    reference : tensor, optional
        ``model``'s maps, when already computed.

    Returns
    -------
    numpy.ndarray
        Shape (N,): the similarity per image (1: the same map).
    """
    measure, t = _sanity_setup(model, x, target, similarity)
    size = tuple(x.shape[-2:])
    ref = _sanity_maps(explainer(model, x, t, **settings) if reference is None else reference, size)
    other = _sanity_maps(explainer(randomised, x, t, **settings), size)
    return measure(ref, other)


@torch.no_grad()
def _reinitialise(module: nn.Module, gen: torch.Generator) -> None:
    r"""Draw a layer's weights afresh from ``gen``, with the law of PyTorch's default initialisation.

    ``reset_parameters`` of convolutions and linear layers draws the weights from
    ``kaiming_uniform_(a=sqrt(5))``, i.e. uniformly in :math:`\pm 1/\sqrt{\text{fan-in}}`
    (variance :math:`1 / (3\,\text{fan-in})`), and the bias from the same interval;
    the same bounds are used here with a seeded generator instead of the global one.
    Batch norms are reset to weight 1, bias 0 and fresh running statistics.
    """
    if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
        fan_in = module.weight[0].numel()
        bound = 1 / math.sqrt(fan_in)
        w = (torch.rand(module.weight.shape, generator=gen) * 2 - 1) * bound
        module.weight.copy_(w.to(module.weight))
        if module.bias is not None:
            module.bias.copy_(((torch.rand(module.bias.shape, generator=gen) * 2 - 1) * bound).to(module.bias))
    elif isinstance(module, nn.modules.batchnorm._BatchNorm):
        module.reset_parameters()
