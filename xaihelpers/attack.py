r"""Explanation manipulation (Dombrowski et al. 2019), the robustness test of SRD's Section 4.3.

Chapter 3 (``notebooks/03_sharing_ratio_decomposition.ipynb``) runs it. A small
perturbation :math:`\delta` of an image :math:`x` is optimised so that the
explanation of :math:`x + \delta` looks like the explanation of another image
:math:`x_t`, while the logits stay those of :math:`x`:

.. math:: \mathcal{L} = \lambda_1 \lVert \phi(x+\delta) - \phi(x_t) \rVert^2
          + \lambda_2 \lVert F(x+\delta) - F(x) \rVert^2 ,

with :math:`\lambda_1 = 10^{11}`, :math:`\lambda_2 = 10^{6}` at 224 x 224 px (mean squared
errors, maps made absolute and normalised to sum 1; :func:`expl_weight` rescales
:math:`\lambda_1` to other map sizes). :math:`\phi(x_t)` is the map of :math:`x_t` for its
own predicted class, as in Dombrowski et al.'s code. The gradient of :math:`\phi` with respect
to the input is needed, so every explanation here is written to be differentiated
twice (``create_graph=True``); ReLU, whose second derivative is zero, is replaced
during the attack by :math:`\mathrm{softplus}_\beta`, with :math:`\beta` growing
geometrically from 10 to 100. Adam runs at SRD's learning rate, :math:`10^{-3}`. The
perturbation is kept within 8/255 of every RGB value, and the attack stops for an image
once the MSE between :math:`x` and :math:`x + \delta` reaches SRD's :math:`10^{-3}`,
measured as they measured it, on ImageNet-normalised inputs (:data:`MSE_STOP` is that
threshold in RGB units). The attack also stops for an image once one of its RGB values
reaches the bound: that stop is this book's choice, stated by neither paper (Dombrowski et
al.'s code has no 8/255 bound; the SRD paper keeps the values within it). The explanations
are then compared *with the original ReLU network*:
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
from .hooks import RELU_TYPES
from .models import IMAGENET_STD

METHODS = ("gradient", "input_x_gradient", "guided_backprop", "integrated_gradients", "lrp_epsilon_plus", "srd")
_EPS = 1e-12
#: SRD's stopping threshold in RGB units of [0, 1]. The paper stops an image once the MSE
#: between x and x_adv reaches 1e-3 with every RGB value within 8/255. Read in RGB units
#: of [0, 1], that MSE could never be reached (the bound caps it at (8/255)^2 = 9.8e-4); in
#: units of 0-255 it is an RMS change of 0.03/255, less than one Adam step. Measured on the ImageNet-normalised
#: inputs of their VGG-16 (Dombrowski et al.'s code optimises those), 1e-3 is an RMS change
#: of 1.8/255: this constant, 1e-3 times ImageNet's mean squared channel std, 5.1e-5.
MSE_STOP = 1e-3 * float(np.mean(np.square(IMAGENET_STD)))
#: the paper's map size, 224 x 224 pixels, at which lambda_1 = 1e11 holds
PAPER_PIXELS = 224 * 224


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
            if isinstance(child, RELU_TYPES):
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


def expl_weight(pixels: int, lam: float = 1e11) -> float:
    r""":math:`\lambda_1` for maps of ``pixels`` pixels that weighs the map term as ``lam`` does at 224 x 224 px.

    A map normalised to sum 1 over :math:`P` pixels has values of order :math:`1/P`, so
    the mean squared error of two such maps scales as :math:`1/P^2`. Dombrowski et al.'s
    :math:`\lambda_1 = 10^{11}` is for :math:`P_0 = 224^2`; :math:`\lambda_1 (P/P_0)^2`
    keeps :math:`\lambda_1 \mathrm{MSE}` on the same scale, and so the balance with the
    output term (a mean over classes, which needs no rescaling): 6.7e8 at 64 x 64 px.
    """
    return float(lam) * (pixels / PAPER_PIXELS) ** 2


def manipulate(model: nn.Module, x: torch.Tensor, x_target: torch.Tensor, method: str, std=(1.0, 1.0, 1.0),
               target=None, iters: int = 1500, lr: float = 1e-3, betas: tuple[float, float] = (10.0, 100.0),
               lam_expl: float | None = None, lam_out: float = 1e6, bound: float = 8 / 255,
               mse_stop: float = MSE_STOP, stop_at_bound: bool = True, ig_steps: int = 8, target_class=None,
               verbose: bool = True) -> dict:
    r"""Dombrowski et al.'s attack: perturb ``x`` so that its explanation becomes ``x_target``'s.

    All pairs are attacked together; each image's perturbation follows the gradient of
    its own loss, and Adam acts on each value separately.

    An image stops once the MSE of its RGB values (range [0, 1]) against ``x`` reaches
    ``mse_stop`` (SRD's stop: 1e-3 on ImageNet-normalised inputs, :data:`MSE_STOP`) or,
    with ``stop_at_bound``, once a step takes one of its RGB values to the 8/255 bound
    (SRD's bound), the perturbation being then as large as it may be. The second stop is
    this book's choice: neither SRD nor Dombrowski et al. state it (Dombrowski et al.'s
    code has no 8/255 bound at all). With the bound alone as a clamp, an image whose values have reached it
    would keep optimising the others at the edge of the allowed set; the MSE part alone
    rarely fires on the 64 px benchmark, whose perturbations stay sparse. A stopped image
    leaves the batch and its perturbation is restored after every later step, so Adam's
    momentum cannot move it (``steps`` records when it stopped).

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
        The normalisation's standard deviations, so that ``bound`` and ``mse_stop`` are
        in RGB units of [0, 1].
    target : sequence or None
        Explained classes of ``x``; ``None`` takes its predicted class.
    iters, lr : int, float
        Adam steps and learning rate on the perturbation (SRD: 1e-3; Dombrowski et al.: 2e-4).
    betas : (float, float)
        Softplus slope at the first and the last step (geometric in between).
    lam_expl, lam_out : float
        :math:`\lambda_1` and :math:`\lambda_2`; ``lam_expl=None`` is
        :func:`expl_weight` of the map size, the paper's 1e11 at 224 x 224 px.
    bound : float
        Largest change of one RGB value (pixel range [0, 1]); SRD's 8/255.
    mse_stop : float
        Per-image RGB MSE at which that image's attack stops; it can be reached only
        below ``bound ** 2``.
    stop_at_bound : bool
        Also stop an image once one of its RGB values reaches ``bound`` (the book's
        choice, not a setting of SRD or of Dombrowski et al.).
    ig_steps : int
        Integrated gradients' midpoints, in the attack and in the compared maps
        (each step of the attack differentiates through all of them).
    target_class : sequence or None
        Class of each target map; ``None`` takes the predicted class of ``x_target``.
    verbose : bool
        Progress bar over steps.

    Returns
    -------
    dict
        ``x_adv`` (N, 3, H, W) and, under the original ReLU model, ``original``,
        ``manipulated`` and ``target_maps`` (N, H, W), ``ssim`` and ``pcc`` (original vs
        manipulated, shape (N,)), ``pcc_target`` (manipulated vs target),
        ``label_kept`` (N,), ``logit_mse`` (N,), ``steps`` (N,: steps each image ran) and
        ``stopped`` (N,: whether the stopping rule fired).
    """
    _checks.image_batch(x)
    if x.shape != x_target.shape:
        raise ValueError(f"expected x and x_target of one shape, got {tuple(x.shape)} and {tuple(x_target.shape)}")
    dev = _checks.model_device(model)
    x, x_target = x.detach().to(dev), x_target.detach().to(dev)
    scale = torch.as_tensor(std, dtype=x.dtype, device=dev).view(1, 3, 1, 1)  # normalised units per RGB unit
    with torch.no_grad():
        logits0 = model(x)
        logits_t = model(x_target)  # the targets' predicted classes, and the range check of target_class
    t = _checks.targets(target, len(x), logits0).to(dev)
    t_goal = _checks.targets(target_class, len(x), logits_t).to(dev)
    lam_expl = expl_weight(x.shape[-2] * x.shape[-1]) if lam_expl is None else float(lam_expl)
    relu = smooth(model, None, guided=method == "guided_backprop")
    soft = smooth(model, betas[0], guided=method == "guided_backprop")
    goal = explanation(relu, x_target, t_goal, method, ig_steps=ig_steps).detach()
    delta = torch.zeros_like(x, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    done = torch.zeros(len(x), dtype=torch.bool, device=dev)
    steps = torch.full((len(x),), iters, dtype=torch.long, device=dev)
    for step in tqdm(range(iters), desc=f"manipulating {method}", disable=not verbose):
        set_beta(soft, betas[0] * (betas[1] / betas[0]) ** (step / max(1, iters - 1)))
        run = (~done).nonzero()[:, 0]  # stopped images leave the batch
        x_adv = x[run] + delta[run]
        e = explanation(soft, x_adv, t[run], method, create_graph=True, ig_steps=ig_steps)
        with torch.no_grad():
            out0 = soft(x[run])
        loss_e = (e - goal[run]).pow(2).flatten(1).mean(1)
        loss_o = (soft(x_adv) - out0).pow(2).mean(1)
        loss = (lam_expl * loss_e + lam_out * loss_o).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        kept = delta.detach().clone()
        opt.step()
        with torch.no_grad():
            at_bound = (delta * scale).abs().flatten(1).amax(1) >= bound  # before the clamp: no rounding at the edge
            delta.copy_(torch.maximum(torch.minimum(delta, bound / scale), -bound / scale))
            # Adam's momentum moves every value, stopped or not: stopped images get their perturbation back
            delta.copy_(torch.where(done[:, None, None, None], kept, delta))
            reached = (delta * scale).pow(2).flatten(1).mean(1) >= mse_stop
            if stop_at_bound:
                reached |= at_bound
            reached &= ~done
            steps = torch.where(reached, step + 1, steps)
            done |= reached
        if done.all():
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
            "logit_mse": (logits - logits0).pow(2).mean(1).cpu().numpy(),
            "steps": steps.cpu().numpy(), "stopped": done.cpu().numpy()}


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
    """One row per method of :func:`manipulate`'s results: mean SSIM, PCC, PCC with the target, label kept,
    largest RGB change, mean steps run and the share of images the stopping rule stopped.

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
                             "largest RGB change (/255)": float(255 * ((r["x_adv"] - x.cpu()) * scale).abs().max()),
                             "steps run": float(np.mean(r["steps"])), "stopped": float(np.mean(r["stopped"]))}
                         for m, r in results.items()}).T


def summary_values(table, n: int) -> dict:
    """The numbers chapter 3's prose cites from a :func:`summary` table, by short name.

    ``json`` (the table), ``best_ssim`` / ``best_pcc`` (the method whose maps changed
    least), ``srd_rank_ssim`` / ``srd_rank_pcc`` ("k of m"), ``n`` (attacked images),
    ``kept`` (share of labels kept), ``stopped`` (share of attacks the stopping rule
    ended, over all methods) and ``steps`` (mean steps an attack ran). The chapter glues
    each as ``{prefix}_{name}``.
    """
    out = {"json": table}
    for col, key in (("SSIM", "ssim"), ("PCC", "pcc")):
        out[f"best_{key}"] = table[col].idxmax()
        out[f"srd_rank_{key}"] = f"{int(table[col].rank(ascending=False)['srd'])} of {len(table)}"
    out.update(n=n, kept=float(table["label kept"].mean()), stopped=float(table["stopped"].mean()),
               steps=float(table["steps run"].mean()))
    return out
