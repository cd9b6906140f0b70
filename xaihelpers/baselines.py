"""Baseline explainers behind one call.

``gradient`` (vanilla gradient, Simonyan et al. 2014), ``grad_cam`` (Selvaraju et
al. 2017) and ``cam`` (Zhou et al. 2016) are written out with
:mod:`xaihelpers.hooks` so that every step is visible; chapter 0
(``notebooks/00_getting_started.ipynb``) derives the first two. :func:`explain`
wraps the maintained libraries, captum, zennit and pytorch-grad-cam, for the
dozen baselines of chapter 1 (``notebooks/01_evaluating_explanations.ipynb``).
All follow the book's uniform call ``(model, x, target, **settings)`` and return
maps of shape (N, H, W).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import _checks
from .hooks import record
from .models import default_layer


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
    x = x.detach().to(_checks.model_device(model)).requires_grad_(True)
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
    x = x.detach().to(_checks.model_device(model))
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


def cam(model: nn.Module, x: torch.Tensor, target=None, layer: str | None = None, head: str | None = None) -> torch.Tensor:
    r"""Class activation mapping (Zhou et al. 2016) for networks ending in global average pooling and a linear layer.

    .. math:: M^t_{ij} = \sum_k w^t_k A^k_{ij}

    where :math:`A` is the last feature map and :math:`w^t` the linear head's row for
    class ``t``; upsampled bilinearly to the input size.

    Parameters
    ----------
    model : nn.Module
        Classifier whose logits are ``head(mean_ij A)``.
    x : torch.Tensor
        Normalised images, shape (N, 3, H, W).
    target : int, sequence of int or None
        Class to explain per image; ``None`` takes the predicted class.
    layer : str, optional
        The feature layer; default :func:`xaihelpers.models.default_layer`.
    head : str, optional
        The final linear layer; default the model's last ``nn.Linear``.

    Returns
    -------
    torch.Tensor
        Maps of shape (N, H, W).
    """
    _checks.image_batch(x)
    layer = layer or default_layer(model)
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    head = head or (linears[-1] if linears else None)
    if head is None or isinstance(model.get_submodule(head.rsplit(".", 1)[0]) if "." in head else None, nn.Sequential):
        raise ValueError(
            f"CAM needs global average pooling followed by one linear layer; {type(model).__name__} "
            "has a multi-layer head (e.g. VGG): use Grad-CAM instead"
        )
    x = x.detach().to(_checks.model_device(model))
    with torch.no_grad(), record(model, [layer]) as rec:
        logits = model(x)
    t = _checks.targets(target, x.shape[0], logits)
    acts = rec.activations[layer]
    weight = model.get_submodule(head).weight
    if acts.ndim != 4 or weight.shape[1] != acts.shape[1]:
        raise ValueError(f"CAM needs layer {layer!r} to have as many channels as {head!r} has inputs")
    maps = torch.einsum("nc,nchw->nhw", weight[t], acts)
    return F.interpolate(maps[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


# ----------------------------------------------------------------------------
# explain(): one call for the libraries' explainers
# ----------------------------------------------------------------------------

CAPTUM_METHODS = ("saliency", "guided_backprop", "input_x_gradient", "integrated_gradients", "smoothgrad", "occlusion")
ZENNIT_METHODS = ("lrp_epsilon_plus", "lrp_epsilon_plus_flat")
GRADCAM_METHODS = ("gradcam", "gradcam_pp", "scorecam", "ablationcam", "xgradcam", "layercam", "fullgrad")
OWN_METHODS = ("gradient", "grad_cam", "cam")
METHODS = CAPTUM_METHODS + ZENNIT_METHODS + GRADCAM_METHODS + ("cam",)
# The libraries' explainers that work at the target layer's resolution (upsampled).
LOW_RESOLUTION = ("gradcam", "gradcam_pp", "scorecam", "ablationcam", "xgradcam", "cam", "grad_cam")


def smoothgrad_seeds(x: torch.Tensor, seed: int = 0) -> list[int]:
    """SmoothGrad's noise seed for each image: a hash of ``seed`` and the image's values.

    Each image gets its own stream of noise, independent of the other images' (a batch
    is then a sample of independent draws), and a function of the image and ``seed``
    only, so an image gets the same map alone, in any batch and at any position.
    The same image twice gets the same noise (and map). The hash reads the image's
    float32 values: an image normalised differently by one rounding step draws other
    noise.

    Parameters
    ----------
    x : torch.Tensor
        Images, shape (N, 3, H, W).
    seed : int
        The run's seed.

    Returns
    -------
    list of int
        N seeds in [0, 2**63).
    """
    import hashlib

    _checks.image_batch(x)
    head = int(seed).to_bytes(8, "little", signed=True)
    values = x.detach().float().cpu().contiguous().numpy()
    return [int.from_bytes(hashlib.blake2b(head + v.tobytes(), digest_size=8).digest(), "little") >> 1 for v in values]


def _smoothgrad(model: nn.Module, x: torch.Tensor, target, nt_samples: int = 25, nt_samples_batch_size: int = 25,
                noise_level: float = 0.15, seed: int | Sequence[int] = 0) -> torch.Tensor:
    r"""SmoothGrad (Smilkov et al. 2017): the mean absolute gradient over noisy copies of each image.

    .. math:: \hat M(x) = \frac1n \sum_{j=1}^{n} \big|\nabla_x y_t(x + \epsilon_j)\big|, \quad
              \epsilon_j \sim \mathcal N(0, \sigma^2), \;
              \sigma = \text{noise level} \cdot (x_{max} - x_{min})

    with :math:`\sigma` taken from each image's own range, as in the paper, so an
    image's map does not depend on the other images of the batch. This is captum's
    ``NoiseTunnel(Saliency, nt_type="smoothgrad")`` with a noise scale per image (captum
    takes one for the whole batch) and the noise of each image drawn from its own
    generator, seeded by :func:`smoothgrad_seeds` (captum draws one tensor for the
    batch): the images' noises are independent, and an image gets the same map alone
    or in any batch.

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits.
    x : torch.Tensor
        Normalised images, shape (N, 3, H, W).
    target : torch.Tensor
        Class per image, shape (N,).
    nt_samples, nt_samples_batch_size : int
        Noisy copies per image, and how many of them go through the model together.
    noise_level : float
        :math:`\sigma` as a share of each image's range (the paper: 10-20 %).
    seed : int or sequence of int
        Seed of the run (each image's seed is then :func:`smoothgrad_seeds`), or one
        seed per image.

    Returns
    -------
    torch.Tensor
        Per-channel attributions of shape (N, 3, H, W), reduced to maps by the caller.
    """
    import captum.attr as ca

    n = x.shape[0]
    if isinstance(seed, (int, np.integer)):
        seeds = smoothgrad_seeds(x, int(seed))
    else:
        seeds = [int(s) for s in seed]
        if len(seeds) != n:
            raise ValueError(f"expected one seed, or one per image ({n}), got {len(seeds)}")
    sigma = noise_level * (x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3)))
    sigma = sigma.view(n, 1, 1, 1, 1).detach()
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    saliency = ca.Saliency(model)
    target = torch.as_tensor(target, device=x.device).reshape(-1).expand(n)
    total = torch.zeros_like(x)
    done = 0
    while done < nt_samples:
        b = min(nt_samples_batch_size, nt_samples - done)
        eps = torch.stack([torch.randn((b, *x.shape[1:]), generator=g) for g in gens]).to(x)  # (n, b, 3, H, W)
        noisy = (x.detach()[:, None] + sigma * eps).flatten(0, 1).requires_grad_(True)
        grads = saliency.attribute(noisy, target=target.repeat_interleave(b), abs=True)
        total += grads.view(n, b, *x.shape[1:]).sum(1)
        done += b
    return total / nt_samples


def _channels(attr: torch.Tensor, reduce: str) -> torch.Tensor:
    if reduce == "sum":
        return attr.sum(1)
    if reduce == "absmax":
        return attr.abs().amax(1)
    if reduce == "abssum":
        return attr.abs().sum(1)
    if reduce == "mean":
        return attr.mean(1)
    raise ValueError(f"expected reduce in ('sum', 'absmax', 'abssum', 'mean'), got {reduce!r}")


def _captum(model, x, t, method, reduce=None, **settings) -> torch.Tensor:
    import captum.attr as ca

    if method == "saliency":
        attr = ca.Saliency(model).attribute(x, target=t, abs=True)
        default = "absmax"
    elif method == "guided_backprop":
        attr = ca.GuidedBackprop(model).attribute(x, target=t)
        default = "sum"
    elif method == "input_x_gradient":
        attr = ca.InputXGradient(model).attribute(x, target=t)
        default = "sum"
    elif method == "integrated_gradients":
        steps = settings.pop("n_steps", 32)
        attr = ca.IntegratedGradients(model).attribute(x, target=t, baselines=0.0, n_steps=steps,
                                                       internal_batch_size=settings.pop("internal_batch_size", 256))
        default = "sum"
    elif method == "smoothgrad":
        attr = _smoothgrad(model, x, t, nt_samples=settings.pop("nt_samples", 25),
                           nt_samples_batch_size=settings.pop("nt_samples_batch_size", 25),
                           noise_level=settings.pop("noise_level", 0.15), seed=settings.pop("seed", 0))
        default = "absmax"
    else:  # occlusion
        side = settings.pop("window", max(2, x.shape[-1] // 8))
        stride = settings.pop("stride", max(1, side // 2))
        attr = ca.Occlusion(model).attribute(x, target=t, sliding_window_shapes=(3, side, side),
                                             strides=(3, stride, stride), baselines=0.0,
                                             perturbations_per_eval=settings.pop("perturbations_per_eval", 64))
        default = "mean"
    if settings:
        raise TypeError(f"unexpected settings for {method!r}: {sorted(settings)}")
    return _channels(attr.detach(), reduce or default)


class _ResidualSumCanonizer:
    """zennit canonizer for :class:`xaihelpers.benchmark_models.ResidualBlock`: route the skip sum through ``zennit.layer.Sum``."""

    @staticmethod
    def make():
        from zennit.canonizers import AttributeCanonizer
        from zennit.layer import Sum

        from .benchmark_models import ResidualBlock

        def forward(self, x):
            out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
            return self.act2(self.canonizer_sum(torch.stack([x, out], dim=-1)))

        def attribute_map(name, module):
            if isinstance(module, ResidualBlock):
                return {"forward": forward.__get__(module), "canonizer_sum": Sum()}
            return None

        return AttributeCanonizer(attribute_map)


def zennit_canonizers(model: nn.Module) -> list:
    """The zennit canonizers for ``model``: batch-norm merging, and the residual sums of ResNets and benchmark CNNs."""
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.torchvision import ResNetCanonizer

    from .benchmark_models import BenchmarkCNN

    if isinstance(model, BenchmarkCNN):
        return [SequentialMergeBatchNorm(), _ResidualSumCanonizer.make()]
    if "layer4" in dict(model.named_modules()):
        return [ResNetCanonizer()]
    return [SequentialMergeBatchNorm()]


def _zennit(model, x, t, method, n_classes, reduce=None, **settings) -> torch.Tensor:
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlus, EpsilonPlusFlat

    kind = EpsilonPlusFlat if method == "lrp_epsilon_plus_flat" else EpsilonPlus
    composite = kind(canonizers=zennit_canonizers(model), **settings)
    onehot = F.one_hot(t, n_classes).to(x.dtype)
    with Gradient(model=model, composite=composite) as attributor:
        _, relevance = attributor(x, onehot)
    return _channels(relevance.detach(), reduce or "sum")


def _gradcam_lib(model, x, t, method, layer, **settings) -> torch.Tensor:
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    kinds = {"gradcam": pgc.GradCAM, "gradcam_pp": pgc.GradCAMPlusPlus, "scorecam": pgc.ScoreCAM,
             "ablationcam": pgc.AblationCAM, "xgradcam": pgc.XGradCAM, "layercam": pgc.LayerCAM,
             "fullgrad": pgc.FullGrad}
    target_layer = model.get_submodule(layer)
    # the library prints per-image progress bars and a FullGrad notice; keep the output clean
    quiet = io.StringIO()
    with contextlib.redirect_stderr(quiet), contextlib.redirect_stdout(quiet), \
            kinds[method](model=model, target_layers=[target_layer]) as explainer:
        if method in ("scorecam", "ablationcam"):
            explainer.batch_size = settings.pop("batch_size", 64)
        if settings:
            raise TypeError(f"unexpected settings for {method!r}: {sorted(settings)}")
        maps = explainer(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in t])
    return torch.from_numpy(maps).float()


def explain(
    model: nn.Module,
    x: torch.Tensor,
    target=None,
    method: str = "saliency",
    layer: str | None = None,
    **settings,
) -> torch.Tensor:
    """Explain a batch with one of the baseline methods, from the library that maintains it.

    ========================  ==========================================================
    method                    library and settings
    ========================  ==========================================================
    ``saliency``              captum ``Saliency`` (|gradient|, max over channels)
    ``guided_backprop``       captum ``GuidedBackprop``, summed over channels
    ``input_x_gradient``      captum ``InputXGradient``, summed over channels
    ``integrated_gradients``  captum ``IntegratedGradients``, baseline 0, ``n_steps=32``
    ``smoothgrad``            SmoothGrad over captum ``Saliency``, 25 samples, noise 0.15 x
                              each image's own range, independent per image, seeded
                              (``seed=0``, :func:`smoothgrad_seeds`)
    ``occlusion``             captum ``Occlusion``, window H/8, stride half the window, value 0
    ``lrp_epsilon_plus``      zennit LRP: z+ for convolutions, epsilon for linear layers
    ``lrp_epsilon_plus_flat`` the same with the flat rule on the first layer
    ``gradcam`` ...           pytorch-grad-cam: ``gradcam``, ``gradcam_pp``, ``scorecam``,
                              ``ablationcam``, ``xgradcam``, ``layercam``, ``fullgrad``
    ``cam``                   :func:`cam` (Zhou et al. 2016)
    ``gradient``, ``grad_cam``  this module's own :func:`gradient` and :func:`grad_cam`
    ========================  ==========================================================

    LRP uses zennit's canonizers: batch norms merged into the preceding convolution,
    and residual sums routed through zennit's ``Sum`` for torchvision ResNets and the
    benchmark CNNs. pytorch-grad-cam's maps come min-max scaled to [0, 1] per image.

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits, in eval mode.
    x : torch.Tensor
        Normalised images, shape (N, 3, H, W).
    target : int, sequence of int or None
        Class to explain per image; ``None`` takes the predicted class.
    method : str
        One of :data:`METHODS` (or ``"gradient"``, ``"grad_cam"``).
    layer : str, optional
        Target layer of the CAM methods; default :func:`xaihelpers.models.default_layer`.
    **settings
        Method settings (e.g. ``n_steps``, ``nt_samples``, ``window``, ``reduce``).

    Returns
    -------
    torch.Tensor
        float32 maps of shape (N, H, W) on ``x``'s device.
    """
    _checks.image_batch(x)
    if method not in METHODS + OWN_METHODS:
        raise ValueError(f"expected method in {METHODS + OWN_METHODS}, got {method!r}")
    dev, home = _checks.model_device(model), x.device
    x = x.detach().to(dev)
    with torch.no_grad():
        logits = model(x)
    t = _checks.targets(target, x.shape[0], logits).to(dev)
    saved = [(p, p.grad) for p in model.parameters()]  # the libraries' backward passes must not touch them
    try:
        out = _explain(model, x, t, method, layer, logits.shape[1], settings)
    finally:
        for p, grad in saved:
            p.grad = grad
    return out.detach().float().to(home)


def _explain(model, x, t, method, layer, n_classes, settings) -> torch.Tensor:
    if method == "gradient":
        out = gradient(model, x, t, **settings)
    elif method == "grad_cam":
        out = grad_cam(model, x, t, layer=layer, **settings)
    elif method == "cam":
        out = cam(model, x, t, layer=layer, **settings)
    elif method in CAPTUM_METHODS:
        with torch.enable_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
            out = _captum(model, x.clone().requires_grad_(True), t, method, **settings)
    elif method in ZENNIT_METHODS:
        with torch.enable_grad():
            out = _zennit(model, x.clone().requires_grad_(True), t, method, n_classes, **settings)
    else:
        with torch.enable_grad():
            out = _gradcam_lib(model, x, t, method, layer or default_layer(model), **settings)
    return out
