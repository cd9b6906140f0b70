r"""Explanation manipulation (Dombrowski et al. 2019), the robustness test of SRD's Section 4.3.

Chapter 3 (``notebooks/03_sharing_ratio_decomposition.ipynb``) runs it. A small
perturbation :math:`\delta` of an image :math:`x` is optimised so that the
explanation of :math:`x + \delta` looks like the explanation of another image
:math:`x_t`, while the logits stay those of :math:`x`:

.. math:: \mathcal{L} = \lambda_1 \lVert \phi(x+\delta) - \phi(x_t) \rVert^2
          + \lambda_2 \lVert F(x+\delta) - F(x) \rVert^2 ,

with :math:`\lambda_1 = 10^{11}`, :math:`\lambda_2 = 10^{6}` (mean squared errors, maps
made absolute and normalised to sum 1). The gradient of :math:`\phi` with respect
to the input is needed, so every explanation here is written to be differentiated
twice (``create_graph=True``); ReLU, whose second derivative is zero, is replaced
during the attack by :math:`\mathrm{softplus}_\beta`, with :math:`\beta` growing
geometrically from 10 to 100. The perturbation is kept within 8/255 of every RGB
value and the attack stops for an image once the image MSE reaches
:math:`10^{-3}`. The explanations are then compared *with the original ReLU network*:
SSIM and Pearson correlation between :math:`\phi(x)` and :math:`\phi(x+\delta)`, high
when the method resists.

SRD here is :func:`srd_map`, a differentiable re-implementation of
:func:`xaihelpers.srd.explain` for the benchmark CNN family (convolution, batch norm,
activation, max-pool and residual blocks); with ``start="constant"`` the top-level
sharing ratios are all 1, as the paper does for the attack.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import _checks, metrics
from .models import ResidualBlock
from .srd import _bn_affine

METHODS = ("gradient", "input_x_gradient", "guided_backprop", "integrated_gradients", "lrp_epsilon_plus", "srd")
_EPS = 1e-12


# ----------------------------------------------------------------------------
# smooth activations, and guided backpropagation that can be differentiated again
# ----------------------------------------------------------------------------

class _GuidedSoftplus(torch.autograd.Function):
    """softplus_beta forward; backward passes only positive gradients (guided backprop), differentiably."""

    @staticmethod
    def forward(ctx, x, beta):
        ctx.save_for_backward(x)
        ctx.beta = beta
        return F.softplus(x, beta=beta) if beta else F.relu(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        slope = torch.sigmoid(ctx.beta * x) if ctx.beta else (x > 0).to(x.dtype)
        return g.clamp(min=0) * slope, None


class SmoothReLU(nn.Module):
    """ReLU (``beta=None``) or softplus with slope ``beta``; ``guided=True`` adds guided backprop's gradient rule."""

    def __init__(self, beta: float | None = None, guided: bool = False) -> None:
        super().__init__()
        self.beta, self.guided = beta, guided

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.guided:
            return _GuidedSoftplus.apply(x, self.beta)
        return F.softplus(x, beta=self.beta) if self.beta else F.relu(x)


def smooth(model: nn.Module, beta: float | None = None, guided: bool = False) -> nn.Module:
    """A copy of ``model`` with every ``nn.ReLU`` replaced by :class:`SmoothReLU` (frozen, eval mode).

    Raises
    ------
    ValueError
        If the model has no ``nn.ReLU`` module (its activations are already smooth or
        written as functions, which this cannot replace).
    """
    out = copy.deepcopy(model).eval()
    found = 0
    for parent in out.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                setattr(parent, name, SmoothReLU(beta, guided))
                found += 1
    if not found:
        raise ValueError(f"expected a model with nn.ReLU modules to smooth, found none in {type(model).__name__}")
    for p in out.parameters():
        p.requires_grad_(False)
    return out


def set_beta(model: nn.Module, beta: float | None) -> None:
    """Set the softplus slope of every :class:`SmoothReLU` of ``model``."""
    for m in model.modules():
        if isinstance(m, SmoothReLU):
            m.beta = beta


# ----------------------------------------------------------------------------
# SRD, differentiable
# ----------------------------------------------------------------------------

def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    w = conv.weight.detach()
    b = conv.bias.detach() if conv.bias is not None else torch.zeros(w.shape[0], device=w.device, dtype=w.dtype)
    if bn is not None:
        scale, shift = _bn_affine(bn)
        w, b = w * scale.detach()[:, None, None, None], b * scale.detach() + shift.detach()
    if isinstance(conv.padding, str) or conv.groups != 1:
        raise ValueError(f"srd_map needs numeric padding and no groups, got {conv}")
    return w, b, (conv.stride, conv.padding, conv.dilation)


def _conv_t(g: torch.Tensor, w: torch.Tensor, geom: tuple, size: tuple[int, int]) -> torch.Tensor:
    """The vector-Jacobian product of ``conv2d(., w)`` at output gradient ``g``, differentiable in ``g``."""
    stride, padding, dilation = geom
    k = w.shape[-2:]
    extra = [size[d] - ((g.shape[-2 + d] - 1) * stride[d] - 2 * padding[d] + dilation[d] * (k[d] - 1) + 1) for d in (0, 1)]
    return F.conv_transpose2d(g, w, stride=stride, padding=padding, output_padding=tuple(extra), dilation=dilation)


def _norm(u: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(u.pow(2).sum(1, keepdim=True) + _EPS)


def _through(u: torch.Tensor, w: torch.Tensor, b: torch.Tensor, geom: tuple, g: torch.Tensor) -> torch.Tensor:
    """Gradient on ``u`` of one affine layer: the weights' part plus the bias split by input norms (Eq. 11)."""
    beta = torch.einsum("c,nchw->nhw", b, g)[:, None]
    norm = _norm(u)
    ones = torch.ones(1, 1, *w.shape[-2:], dtype=u.dtype, device=u.device)
    total = F.conv2d(norm, ones, stride=geom[0], padding=geom[1], dilation=geom[2])
    spread = _conv_t(beta / total.clamp(min=_EPS), ones, geom, tuple(u.shape[-2:]))
    return _conv_t(g, w, geom, tuple(u.shape[-2:])) + spread / norm * u


def _share(v: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """The gradient that hands relevance R_j to the parts of the PFV v_j by <part, v_j> / |v_j|^2."""
    return v * (relevance / v.pow(2).sum(1).clamp(min=_EPS))[:, None]


def srd_map(model: nn.Module, x: torch.Tensor, target=None, start: str = "constant") -> torch.Tensor:
    """SRD-input of a benchmark-family CNN, written so that it can be differentiated with respect to ``x``.

    The same decomposition as :func:`xaihelpers.srd.explain` (vector sharing ratios
    against pre-activation PFVs, biases split by input norms, max-pool through its
    argmax, residual sums by inner products), computed with plain tensor operations
    instead of graph cuts.

    Parameters
    ----------
    model : nn.Module
        A model with ``features`` (a sequence of ``Conv2d``, ``BatchNorm2d``,
        activations, ``MaxPool2d`` and :class:`xaihelpers.models.ResidualBlock`) followed
        by ``pool``, ``flatten`` and ``fc``, like :class:`xaihelpers.models.BenchmarkCNN`.
    x : torch.Tensor
        Normalised images (N, 3, H, W); may require grad.
    target : int, sequence or None
        Class per image for ``start="contrastive"``; ignored for ``"constant"``.
    start : {"constant", "contrastive"}
        Relevance of the encoder output: 1 per position (the top-level sharing ratios
        set to a constant, as for the attack) or Eq. 4.

    Returns
    -------
    torch.Tensor
        Relevance maps (N, H, W), in the graph of ``x``.
    """
    _checks.image_batch(x)
    if not all(hasattr(model, a) for a in ("features", "pool", "flatten", "fc")):
        raise ValueError(f"srd_map supports the benchmark CNN layout (features, pool, flatten, fc), got {type(model).__name__}")
    if not x.requires_grad:  # Eq. 4 differentiates the logits with respect to the encoder output
        x = x.detach().requires_grad_(True)
    records, h = [], x
    mods = list(model.features.children())
    i = 0
    while i < len(mods):
        m = mods[i]
        if isinstance(m, nn.Conv2d):
            bn = mods[i + 1] if i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d) else None
            w, b, geom = _fold(m, bn)
            records.append(("affine", h, w, b, geom))
            h = F.conv2d(h, w, b, *geom)
            i += 2 if bn is not None else 1
        elif isinstance(m, nn.MaxPool2d):
            out, idx = F.max_pool2d(h, m.kernel_size, m.stride, m.padding, m.dilation, return_indices=True)
            records.append(("pool", h, idx, m))
            h, i = out, i + 1
        elif isinstance(m, ResidualBlock):
            w1, b1, g1 = _fold(m.conv1, m.bn1)
            w2, b2, g2 = _fold(m.conv2, m.bn2)
            v1 = F.conv2d(h, w1, b1, *g1)
            a1 = m.act1(v1)
            v2 = h + F.conv2d(a1, w2, b2, *g2)
            a2 = m.act2(v2)
            records.append(("residual", h, (w1, b1, g1, v1, a1), (w2, b2, g2, v2, a2)))
            h, i = a2, i + 1
        elif len(list(m.parameters())) == 0:  # an activation
            out = m(h)
            records.append(("activation", h, out))
            h, i = out, i + 1
        else:
            raise ValueError(f"srd_map does not support {type(m).__name__} layers")
    if start == "constant":
        relevance = torch.ones(x.shape[0], *h.shape[-2:], dtype=x.dtype, device=x.device)
    elif start == "contrastive":
        logits = model.fc(model.flatten(model.pool(h)))
        t = _checks.targets(target, x.shape[0], logits.detach()).to(x.device)
        score = logits.gather(1, t[:, None])[:, 0] - logits.mean(1)
        (grad,) = torch.autograd.grad(score.sum(), h, create_graph=True)
        relevance = (grad.mean(dim=(2, 3), keepdim=True) * h).sum(1).clamp(min=0)
    else:
        raise ValueError(f"expected start 'constant' or 'contrastive', got {start!r}")
    g = None  # gradient on the current tensor; None while ``relevance`` holds its PFVs' relevance
    for rec in reversed(records):
        kind = rec[0]
        if kind in ("activation", "residual") and g is not None:  # an activation's output: gradient -> relevance
            out = rec[2] if kind == "activation" else rec[3][4]
            relevance, g = (out * g).sum(1), None
        if kind == "activation":
            g = _share(rec[1], relevance)
        elif kind == "affine":
            _, u, w, b, geom = rec
            g = _through(u, w, b, geom, g)
        elif kind == "pool":
            _, a, idx, m = rec
            g = F.max_unpool2d(g, idx, m.kernel_size, m.stride, m.padding, output_size=a.shape[-2:])
        else:  # residual: v2 = h + conv2(a1); a1 = act(conv1(h))
            _, hin, (w1, b1, g1, v1, a1), (w2, b2, g2, v2, _) = rec
            gv2 = _share(v2, relevance)
            r_a1 = (a1 * _through(a1, w2, b2, g2, gv2)).sum(1)
            g = gv2 + _through(hin, w1, b1, g1, _share(v1, r_a1))
    return (x * g).sum(1)


# ----------------------------------------------------------------------------
# the attacked explanations
# ----------------------------------------------------------------------------

def explanation(model: nn.Module, x: torch.Tensor, target, method: str, create_graph: bool = False,
                ig_steps: int = 16) -> torch.Tensor:
    """A differentiable explanation, absolute and normalised to sum 1 per image: (N, H, W).

    ``gradient`` (channels' absolute values summed), ``input_x_gradient``,
    ``integrated_gradients`` (zero baseline, ``ig_steps`` midpoints), ``guided_backprop``
    (``model`` must come from :func:`smooth` with ``guided=True``), ``lrp_epsilon_plus``
    (zennit, z+ for convolutions, as :mod:`xaihelpers.baselines`) and ``srd``
    (:func:`srd_map`, constant top-level ratios). Channel-resolved attributions are
    summed over channels before the absolute value, except the gradient's.
    """
    if method not in METHODS:
        raise ValueError(f"expected method in {METHODS}, got {method!r}")
    if not x.requires_grad:
        x = x.clone().requires_grad_(True)
    t = torch.as_tensor(target, device=x.device).reshape(-1).expand(x.shape[0])

    def grad_at(inp):  # d score(inp) / dx
        return torch.autograd.grad(model(inp).gather(1, t[:, None]).sum(), x, create_graph=create_graph)[0]

    if method in ("gradient", "guided_backprop"):
        g = grad_at(x)
        m = g.abs().sum(1) if method == "gradient" else g.sum(1).abs()
    elif method == "input_x_gradient":
        m = (x * grad_at(x)).sum(1).abs()
    elif method == "integrated_gradients":
        alphas = (torch.arange(ig_steps, dtype=x.dtype, device=x.device) + 0.5) / ig_steps
        total = sum(torch.autograd.grad(model(a * x).gather(1, t[:, None]).sum(), x, create_graph=create_graph)[0] / a
                    for a in alphas)  # d f(a x) / dx = a f'(a x)
        m = (x * total / ig_steps).sum(1).abs()
    elif method == "lrp_epsilon_plus":
        from zennit.attribution import Gradient
        from zennit.composites import EpsilonPlus

        from .baselines import zennit_canonizers

        n_classes = model(x[:1]).shape[1]
        with Gradient(model, EpsilonPlus(canonizers=zennit_canonizers(model)), create_graph=create_graph) as attr:
            _, rel = attr(x, torch.eye(n_classes, device=x.device)[t])
        m = rel.sum(1).abs()
    else:
        m = srd_map(model, x, t).abs()
    return m / m.flatten(1).sum(1).clamp(min=_EPS)[:, None, None]


def manipulate(model: nn.Module, x: torch.Tensor, x_target: torch.Tensor, method: str, std=(1.0, 1.0, 1.0),
               target=None, iters: int = 1500, lr: float = 2e-4, betas: tuple[float, float] = (10.0, 100.0),
               lam_expl: float = 1e11, lam_out: float = 1e6, bound: float = 8 / 255, mse_stop: float = 1e-3,
               ig_steps: int = 8, verbose: bool = True) -> dict:
    r"""Dombrowski et al.'s attack: perturb ``x`` so that its explanation becomes ``x_target``'s.

    All pairs are attacked together (the loss is a sum over images, so each image's
    perturbation follows its own gradient); an image stops once its pixel MSE reaches
    ``mse_stop``.

    Parameters
    ----------
    model : nn.Module
        A ReLU classifier; a smoothed copy (:func:`smooth`) is attacked.
    x, x_target : torch.Tensor
        Normalised images (N, 3, H, W): the ones to perturb and the ones whose
        explanations are the targets.
    method : str
        One of :data:`METHODS`.
    std : sequence of 3 float
        The normalisation's standard deviations, so that ``bound`` is in RGB units of [0, 1].
    target : sequence or None
        Explained classes; ``None`` takes the predicted class of ``x``.
    iters, lr : int, float
        Adam steps and learning rate on the perturbation.
    betas : (float, float)
        Softplus slope at the first and the last step (geometric in between).
    lam_expl, lam_out : float
        :math:`\lambda_1` and :math:`\lambda_2`.
    bound : float
        Largest change of one RGB value (pixel range [0, 1]).
    mse_stop : float
        Per-image pixel MSE at which that image's attack stops.
    ig_steps : int
        Integrated gradients' midpoints, in the attack and in the compared maps
        (each step of the attack differentiates through all of them).
    verbose : bool
        Progress bar over steps.

    Returns
    -------
    dict
        ``x_adv`` (N, 3, H, W) and, under the original ReLU model, ``original``,
        ``manipulated`` and ``target_maps`` (N, H, W), ``ssim`` and ``pcc`` (original vs
        manipulated, shape (N,)), ``pcc_target`` (manipulated vs target),
        ``label_kept`` (N,) and ``logit_mse`` (N,).
    """
    _checks.image_batch(x)
    if x.shape != x_target.shape:
        raise ValueError(f"expected x and x_target of one shape, got {tuple(x.shape)} and {tuple(x_target.shape)}")
    dev = _checks.model_device(model)
    x, x_target = x.detach().to(dev), x_target.detach().to(dev)
    scale = torch.as_tensor(std, dtype=x.dtype, device=dev).view(1, 3, 1, 1)  # normalised units per RGB unit
    with torch.no_grad():
        logits0 = model(x)
    t = _checks.targets(target, len(x), logits0).to(dev)
    relu = smooth(model, None, guided=method == "guided_backprop")
    soft = smooth(model, betas[0], guided=method == "guided_backprop")
    goal = explanation(relu, x_target, t, method, ig_steps=ig_steps).detach()
    delta = torch.zeros_like(x, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    active = torch.ones(len(x), dtype=torch.bool, device=dev)
    for step in tqdm(range(iters), desc=f"manipulating {method}", disable=not verbose):
        set_beta(soft, betas[0] * (betas[1] / betas[0]) ** (step / max(1, iters - 1)))
        x_adv = x + delta
        e = explanation(soft, x_adv, t, method, create_graph=True, ig_steps=ig_steps)
        with torch.no_grad():
            out0 = soft(x)
        loss_e = (e - goal).pow(2).flatten(1).mean(1)
        loss_o = (soft(x_adv) - out0).pow(2).mean(1)
        loss = ((lam_expl * loss_e + lam_out * loss_o) * active).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        delta.grad[~active] = 0
        opt.step()
        with torch.no_grad():
            delta.copy_(torch.maximum(torch.minimum(delta, bound / scale), -bound / scale))
            active &= ((delta * scale).pow(2).flatten(1).mean(1) < mse_stop)
        if not active.any():
            break
    x_adv = (x + delta).detach()
    original = explanation(relu, x, t, method, ig_steps=ig_steps).detach()
    manipulated = explanation(relu, x_adv, t, method, ig_steps=ig_steps).detach()
    with torch.no_grad():
        logits = model(x_adv)
    return {"x_adv": x_adv.cpu(), "original": original.cpu(), "manipulated": manipulated.cpu(), "target_maps": goal.cpu(),
            "ssim": metrics.ssim(original.cpu(), manipulated.cpu()), "pcc": metrics.pearson(original.cpu(), manipulated.cpu()),
            "pcc_target": metrics.pearson(manipulated.cpu(), goal.cpu()),
            "label_kept": (logits.argmax(1) == logits0.argmax(1)).cpu().numpy(),
            "logit_mse": (logits - logits0).pow(2).mean(1).cpu().numpy()}


def pairs(n: int, seed: int = 0) -> np.ndarray:
    """A random derangement of ``range(n)``: image i is attacked towards image ``pairs(n)[i]`` (never itself)."""
    if n < 2:
        raise ValueError(f"expected at least 2 images to pair, got {n}")
    rng = np.random.default_rng(seed)
    while True:
        p = rng.permutation(n)
        if not np.any(p == np.arange(n)):
            return p
