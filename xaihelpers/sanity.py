"""The model-randomisation sanity checks of Adebayo et al. (2018): do the maps depend on what the network learned?

:func:`cascading_randomisation` re-initialises the layers from the output down
(:func:`default_stages`) and compares each explainer's maps with the trained
network's; :func:`data_randomisation` compares them with a network trained on
shuffled labels. Both report the rank correlation of the absolute maps and of the
signed maps side by side, as Adebayo et al. do: a signed method whose signs scramble
under randomisation while its magnitudes stay (Input x Gradient, whose magnitude
follows the input) looks unchanged on absolute maps alone. :func:`edge_detector`, a
Sobel edge map of the image that ignores the model, is the reference row they use: it
passes neither check. Chapter 1 runs both on the baselines, chapter 6 on every method.
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
    signed: bool = True,
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
        Similarity of the maps at the input's resolution (Adebayo et al. use the
        Spearman rank correlation and SSIM), computed twice: on absolute-valued maps
        divided by their maximum, and on the signed maps divided by their largest
        absolute value.
    reference : tensor, optional
        The trained model's maps for ``x`` and ``target``, when already computed (saves
        one explainer call).
    signed : bool
        Also compute the similarity of the signed maps (``signed`` column; NaN when
        False, which halves the cost where only the absolute similarity is read).

    Returns
    -------
    pandas.DataFrame
        One row per image and stage: ``stage`` (0 = trained), ``label``, ``similarity``
        (of the absolute maps), ``signed`` (of the signed maps) and ``image``.
    """
    import copy

    import pandas as pd

    measure, t = _sanity_setup(model, x, target, similarity)
    if stages is None:
        stages = default_stages(model)

    size = tuple(x.shape[-2:])
    raw = _maps(explainer(model, x, t, **settings) if reference is None else reference)

    def row(stage: int, label: str, maps: torch.Tensor) -> "pd.DataFrame":
        return pd.DataFrame({"stage": stage, "label": label,
                             "similarity": measure(_sanity_maps(raw, size), _sanity_maps(maps, size)),
                             "signed": (measure(_sanity_maps(raw, size, signed=True), _sanity_maps(maps, size, signed=True))
                                        if signed else np.nan),
                             "image": range(x.shape[0])})

    rnd = copy.deepcopy(model).eval()
    gen = torch.Generator().manual_seed(seed)
    rows = [row(0, "trained", raw)]
    for k, (label, prefixes) in enumerate(stages, start=1):
        for name, module in rnd.named_modules():
            if any(name == p or name.startswith(p + ".") for p in prefixes):
                _reinitialise(module, gen)
        rows.append(row(k, label, _maps(explainer(rnd, x, t, **settings))))
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


def _sanity_maps(maps: object, size: tuple[int, int], signed: bool = False) -> torch.Tensor:
    """Maps as the sanity checks compare them: at the input's size, absolute (or signed), divided by their largest absolute value."""
    a = resize_maps(_maps(maps), size)
    return prepare(a if signed else a.abs(), "absmax", clamp=False)


def edge_detector(model: nn.Module, x: torch.Tensor, target=None) -> torch.Tensor:
    r"""A Sobel edge map of the image, the model-free reference of Adebayo et al. (2018).

    :math:`\sqrt{G_x^2 + G_y^2}` of the channel-averaged image, with the 3x3 Sobel
    kernels and replicated borders. It takes the explainer's arguments but ignores the
    model and the target, so its maps never change under randomisation: the similarity
    a method that explains only the image would keep.

    Parameters
    ----------
    model : nn.Module
        Ignored.
    x : torch.Tensor
        Images (N, 3, H, W).
    target : optional
        Ignored.

    Returns
    -------
    torch.Tensor
        Edge magnitudes (N, H, W), float, on ``x``'s device.
    """
    import torch.nn.functional as F

    _checks.image_batch(x)
    g = x.detach().float().mean(1, keepdim=True)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device)
    k = torch.stack([kx, kx.T])[:, None]
    d = F.conv2d(F.pad(g, (1, 1, 1, 1), mode="replicate"), k)
    return d.pow(2).sum(1).sqrt()


def data_randomisation(
    explainer: Explainer,
    model: nn.Module,
    randomised: nn.Module,
    x: torch.Tensor,
    target,
    similarity: str = "spearman",
    reference: object | None = None,
    signed: bool = False,
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
    signed : bool
        Compare the signed maps instead of their absolute values. The two differ for a
        signed method whose signs the label permutation scrambles; report both.

    Returns
    -------
    numpy.ndarray
        Shape (N,): the similarity per image (1: the same map).
    """
    measure, t = _sanity_setup(model, x, target, similarity)
    size = tuple(x.shape[-2:])
    ref = _sanity_maps(explainer(model, x, t, **settings) if reference is None else reference, size, signed)
    other = _sanity_maps(explainer(randomised, x, t, **settings), size, signed)
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
