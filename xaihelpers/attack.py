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

SRD here is :func:`xaihelpers.srd.explain` with ``create_graph=True`` (maps in the
graph of the input, for any model SRD supports) and ``rule="constant"``: the
top-level sharing ratios are all 1, as the paper does for the attack. ReLU and
ReLU6 are both smoothed (ReLU6 as :math:`\mathrm{softplus}_\beta(x) - \mathrm{softplus}_\beta(x - 6)`),
so the attack runs on the benchmark CNNs and on EfficientNet-Lite0 alike.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import _checks, metrics, srd

METHODS = ("gradient", "input_x_gradient", "guided_backprop", "integrated_gradients", "lrp_epsilon_plus", "srd")
_EPS = 1e-12


# ----------------------------------------------------------------------------
# smooth activations, and guided backpropagation that can be differentiated again
# ----------------------------------------------------------------------------

def _soft(x: torch.Tensor, beta: float | None, cap: float | None) -> torch.Tensor:
    """ReLU (or ReLU capped at ``cap``) for ``beta=None``, else its softplus_beta smoothing."""
    if not beta:
        return F.relu(x) if cap is None else F.hardtanh(x, 0.0, cap)
    y = F.softplus(x, beta=beta)
    return y if cap is None else y - F.softplus(x - cap, beta=beta)


def _slope(x: torch.Tensor, beta: float | None, cap: float | None) -> torch.Tensor:
    if not beta:
        on = x > 0 if cap is None else (x > 0) & (x < cap)
        return on.to(x.dtype)
    s = torch.sigmoid(beta * x)
    return s if cap is None else s - torch.sigmoid(beta * (x - cap))


class _GuidedSoftplus(torch.autograd.Function):
    """Smoothed (capped) ReLU forward; backward passes only positive gradients (guided backprop), differentiably."""

    @staticmethod
    def forward(ctx, x, beta, cap):
        ctx.save_for_backward(x)
        ctx.beta, ctx.cap = beta, cap
        return _soft(x, beta, cap)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g.clamp(min=0) * _slope(x, ctx.beta, ctx.cap), None, None


class SmoothReLU(nn.Module):
    r"""ReLU (``beta=None``) or softplus with slope ``beta``; ``guided=True`` adds guided backprop's gradient rule.

    ``cap=6`` makes it ReLU6, smoothed as :math:`\mathrm{softplus}_\beta(x) - \mathrm{softplus}_\beta(x-6)`.
    """

    is_activation = True  # an elementwise activation for :func:`xaihelpers.srd.is_activation`

    def __init__(self, beta: float | None = None, guided: bool = False, cap: float | None = None) -> None:
        super().__init__()
        self.beta, self.guided, self.cap = beta, guided, cap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.guided:
            return _GuidedSoftplus.apply(x, self.beta, self.cap)
        return _soft(x, self.beta, self.cap)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, guided={self.guided}, cap={self.cap}"


def smooth(model: nn.Module, beta: float | None = None, guided: bool = False) -> nn.Module:
    """A copy of ``model`` with every ``nn.ReLU`` and ``nn.ReLU6`` replaced by :class:`SmoothReLU` (frozen, eval mode).

    Raises
    ------
    ValueError
        If the model has no ``nn.ReLU`` or ``nn.ReLU6`` module (its activations are
        already smooth or written as functions, which this cannot replace).
    """
    out = copy.deepcopy(model).eval()
    found = 0
    for parent in out.modules():
        for name, child in parent.named_children():
            if isinstance(child, (nn.ReLU, nn.ReLU6)):
                setattr(parent, name, SmoothReLU(beta, guided, 6.0 if isinstance(child, nn.ReLU6) else None))
                found += 1
    if not found:
        raise ValueError(f"expected a model with nn.ReLU or nn.ReLU6 modules to smooth, found none in {type(model).__name__}")
    for p in out.parameters():
        p.requires_grad_(False)
    return out


def set_beta(model: nn.Module, beta: float | None) -> None:
    """Set the softplus slope of every :class:`SmoothReLU` of ``model``."""
    for m in model.modules():
        if isinstance(m, SmoothReLU):
            m.beta = beta


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
    (SRD-input with constant top-level ratios, :func:`xaihelpers.srd.explain` with
    ``rule="constant"``). Channel-resolved attributions are
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
        m = srd.explain(model, x, t, rule="constant", create_graph=create_graph).abs()
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


def summary(results: dict, x: torch.Tensor, std=(1.0, 1.0, 1.0)):
    """One row per method of :func:`manipulate`'s results: mean SSIM, PCC, PCC with the target, label kept, largest RGB change.

    Parameters
    ----------
    results : dict
        Method name -> the dict :func:`manipulate` returned for it.
    x : torch.Tensor
        The attacked images (normalised), to measure the perturbation.
    std : sequence of 3 float
        The normalisation's standard deviations; the change is given in units of 1/255.
    """
    import pandas as pd

    scale = torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return pd.DataFrame({m: {"SSIM": r["ssim"].mean(), "PCC": r["pcc"].mean(), "PCC with the target": r["pcc_target"].mean(),
                             "label kept": r["label_kept"].mean(),
                             "largest RGB change (/255)": float(255 * ((r["x_adv"] - x.cpu()) * scale).abs().max())}
                         for m, r in results.items()}).T


def glue_summary(prefix: str, table, n: int) -> None:
    """Glue a :func:`summary` table for chapter 3's prose and tests.

    Keys: ``{prefix}_json`` (the table), ``{prefix}_best_ssim`` / ``_best_pcc`` (the method
    whose maps changed least), ``{prefix}_srd_rank_ssim`` / ``_srd_rank_pcc`` ("k of m"),
    ``{prefix}_n`` (attacked images, ``n``) and ``{prefix}_kept`` (share of labels kept).
    """
    from .runtime import glue, glue_table

    glue_table(f"{prefix}_json", table)
    for col, key in (("SSIM", "ssim"), ("PCC", "pcc")):
        glue(f"{prefix}_best_{key}", table[col].idxmax())
        glue(f"{prefix}_srd_rank_{key}", f"{int(table[col].rank(ascending=False)['srd'])} of {len(table)}")
    glue(f"{prefix}_n", n)
    glue(f"{prefix}_kept", float(table["label kept"].mean()))


def plot_robustness(results: dict, title: str):
    """Box plots of SSIM and PCC between original and manipulated maps, one box per method; returns the figure."""
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, key, label in zip(axes, ("ssim", "pcc"), ("SSIM", "PCC")):
        values = [np.asarray(results[m][key], dtype=float) for m in names]
        ax.boxplot(values, showfliers=False)
        for i, v in enumerate(values, start=1):  # every pair as a dot: few pairs make a box alone misleading
            ax.plot(i + np.linspace(-0.12, 0.12, len(v)), v, "o", color="tab:blue", alpha=0.6, markersize=4)
        ax.set_xticks(range(1, len(names) + 1), [m.replace("_", " ") for m in names], rotation=30, ha="right")
        ax.set_title(label)
        ax.grid(axis="y", alpha=0.4)
    axes[0].set_ylabel("original vs manipulated map\n(higher: harder to fool)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_pair(results: dict, images: torch.Tensor, targets: torch.Tensor, denormalize, title: str, i: int = 0):
    """Image ``i``, its attacked copy and its target image, each next to every method's map; returns the figure.

    ``denormalize`` turns normalised images (N, 3, H, W) into (N, H, W, 3) arrays,
    e.g. :meth:`xaihelpers.models.Preprocess.denormalize`. The attacked copy shown is
    the one made for the last method of ``results``.
    """
    import matplotlib.pyplot as plt

    last = list(results)[-1]
    shown = {"original": images[i:i + 1], "manipulated": results[last]["x_adv"][i:i + 1], "target_maps": targets[i:i + 1]}
    names = {"original": "image", "manipulated": f"attacked for {last}", "target_maps": "target image"}
    fig, axes = plt.subplots(3, len(results) + 1, figsize=(1.9 * (len(results) + 1), 6))
    for row, (key, label) in enumerate((("original", "original"), ("manipulated", "manipulated"), ("target_maps", "target"))):
        img = denormalize(shown[key].cpu())[0]
        axes[row, 0].imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray")
        axes[row, 0].set_title(names[key], fontsize=8)
        for j, (m, r) in enumerate(results.items(), start=1):
            axes[row, j].imshow(torch.as_tensor(r[key][i]).cpu().numpy(), cmap="magma")
            axes[row, j].set_title(f"{m}\n{label}" if row == 0 else label, fontsize=8)
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle(title)
    return fig
