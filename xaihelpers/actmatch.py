r"""Activation Matching (Suhail, Anand & Sethi 2025): a learned binary mask that keeps the activations.

Chapter 5 (``notebooks/05_activation_matching.ipynb``) explains it. A small U-Net
:math:`g_\theta` maps the image :math:`x` to one mask logit per pixel; the mask is
:math:`m = \mathrm{hard}(\sigma(g_\theta(x)))` with a straight-through threshold at 0.5,
and the explanation is :math:`e = m \odot x` in normalised space (hidden pixels become
the mean colour). :math:`\theta` is trained, for one image, on

.. math::

    \mathcal{L} = \lambda_{act}\mathcal{L}_{act} + \lambda_{KL}\mathcal{L}_{KL}
    + \lambda_{CE}\mathcal{L}_{CE} + \lambda_{area}\mathcal{L}_{area}
    + \lambda_{bin}\mathcal{L}_{bin} + \lambda_{tv}\mathcal{L}_{tv} + \lambda_{rob}\mathcal{L}_{rob}

with the frozen classifier :math:`f`. Each term is its own function below, with its
formula. Defaults are the authors' (``WEIGHTS``, ``LAYER_WEIGHTS``, Adam at 5e-5 for
880 steps, U-Net widths 32-64-128-256 and a 512 bottleneck).

Beyond the paper, :func:`train_amortised` trains one mask network on many images
with the same objective, so that a new image costs one forward pass of the mask
network (:func:`amortised_explain`, :func:`apply_amortised`); :func:`circuit` is the
longer version's circuit readout. :func:`explain` returns the maps, as every method of
the book does (:mod:`xaihelpers.explainers`); :func:`train` returns the whole
:class:`Explanation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import _checks
from .hooks import ACTIVATION_TYPES, frozen_weights, no_inplace, record
from .occlusion import NOISE_FILLS as FILLS, blend, noise_fill

#: the authors' loss weights
WEIGHTS = {"act": 10.0, "ce": 15.0, "kl": 5.0, "area": 100.0, "bin": 1.0, "tv": 500.0, "rob": 100.0}
#: weights of the matched layers, shallow to deep (the authors' for ResNet-18: relu, layer1..layer4)
LAYER_WEIGHTS = (1.0, 2.0, 2.0, 4.0, 8.0)
#: the name under which the classifier's output (the logits) joins the matched layers, as in
#: the authors' notebook (``default_layers(model, logits=False)`` leaves it out)
LOGITS = "logits"
#: weight of the logits among the matched layers. The notes give none; with weight 1 the
#: logits' squared error sits on the scale of the deepest layer's weighted term (on the
#: benchmark CNN, half the pixels hidden at random: logits MSE 17, deepest layer 8 x 3.1)
LOGITS_WEIGHT = 1.0
DISTANCES = ("mse", "cosine", "std_mse")


# ----------------------------------------------------------------------------
# the mask network
# ----------------------------------------------------------------------------

def _double(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class MaskNet(nn.Module):
    """A small U-Net: image (N, 3, H, W) to one mask logit per pixel (N, 1, H, W).

    Parameters
    ----------
    widths : sequence of int
        Channels of the encoder levels; the authors use (32, 64, 128, 256).
    bottleneck : int
        Channels at the bottom (the authors: 512).

    H and W must be divisible by ``2 ** len(widths)``.
    """

    def __init__(self, widths=(32, 64, 128, 256), bottleneck: int = 512) -> None:
        super().__init__()
        self.widths = tuple(widths)
        chans = [3, *self.widths]
        self.down = nn.ModuleList(_double(a, b) for a, b in zip(chans[:-1], chans[1:]))
        self.bottom = _double(self.widths[-1], bottleneck)
        ups, decs, below = [], [], bottleneck
        for w in reversed(self.widths):
            ups.append(nn.ConvTranspose2d(below, w, 2, stride=2))
            decs.append(_double(2 * w, w))
            below = w
        self.up, self.dec = nn.ModuleList(ups), nn.ModuleList(decs)
        self.head = nn.Conv2d(self.widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = 2 ** len(self.widths)
        if x.shape[-1] % k or x.shape[-2] % k:
            raise ValueError(f"expected H and W divisible by {k}, got {tuple(x.shape[-2:])}")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([up(x), skip], 1))
        # the 1x1 head as a matrix product: oneDNN's one-output-channel convolution rounds
        # differently with the thread count, and the mask's binarisation would amplify it
        # (runtime.seed_everything); same weights, same result up to float32 rounding
        out = F.linear(x.movedim(1, -1), self.head.weight.flatten(1), self.head.bias)
        return out.movedim(-1, 1)


def binarise(logits: torch.Tensor) -> torch.Tensor:
    r"""Hard mask with a straight-through gradient: :math:`m = \mathbb{1}[\sigma(z) > 0.5]` forward, :math:`\partial\sigma` backward."""
    soft = torch.sigmoid(logits)
    hard = (soft > 0.5).to(soft.dtype)
    return hard + (soft - soft.detach())  # exactly the hard values forward


def apply_mask(x: torch.Tensor, m: torch.Tensor, fill: str | torch.Tensor = "mean") -> torch.Tensor:
    r"""The explanation :math:`e = m \odot x + (1 - m) \odot r`; ``"mean"`` is r = 0 in normalised space (the authors')."""
    if isinstance(fill, torch.Tensor):
        return blend(x, m, fill)
    if fill != "mean":
        raise ValueError(f"expected fill='mean' or a tensor, got {fill!r}")
    return blend(x, m, torch.zeros_like(x))


# ----------------------------------------------------------------------------
# the loss terms
# ----------------------------------------------------------------------------

def activation_loss(acts_x: dict, acts_e: dict, layer_weights: dict, distance: str = "mse") -> torch.Tensor:
    r"""Multi-layer activation matching.

    .. math:: \mathcal{L}_{act} = \sum_l w_l\, d\big(a_l(x), a_l(e)\big)

    with :math:`d` the mean squared error, one minus the cosine similarity of the
    flattened maps, or the MSE after standardising each channel by the image's own
    statistics (``"std_mse"``, so that every layer counts on the same scale).

    Parameters
    ----------
    acts_x, acts_e : dict of str to torch.Tensor
        Activations of the image (targets, no gradient) and of the explanation.
    layer_weights : dict of str to float
        :math:`w_l` per layer name.
    distance : {"mse", "cosine", "std_mse"}
        :math:`d`.

    Returns
    -------
    torch.Tensor
        Scalar (mean over the batch).
    """
    if distance not in DISTANCES:
        raise ValueError(f"expected distance in {DISTANCES}, got {distance!r}")
    total = 0.0
    for name, w in layer_weights.items():
        a, b = acts_x[name].detach(), acts_e[name]
        if distance == "mse":
            d = F.mse_loss(b, a)
        elif distance == "cosine":
            d = (1 - F.cosine_similarity(b.flatten(1), a.flatten(1), dim=1)).mean()
        else:
            dims = (0, 2, 3) if a.ndim == 4 else (0,)
            mu, sd = a.mean(dims, keepdim=True), a.std(dims, keepdim=True).clamp(min=1e-6)
            d = F.mse_loss((b - mu) / sd, (a - mu) / sd)
        total = total + w * d
    return total


def kl_loss(logits_x: torch.Tensor, logits_e: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    r""":math:`\mathcal{L}_{KL} = T^2\,\mathrm{KL}\big(\mathrm{softmax}(f(x)/T)\,\|\,\mathrm{softmax}(f(e)/T)\big)`."""
    t = temperature
    return F.kl_div(F.log_softmax(logits_e / t, 1), F.log_softmax(logits_x.detach() / t, 1), log_target=True,
                    reduction="batchmean") * t * t


def ce_loss(logits_x: torch.Tensor, logits_e: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathcal{L}_{CE} = \mathrm{CE}(f(x), t) + \mathrm{CE}(f(e), t)`: the label for the image and for the explanation.

    With the classifier frozen the first term is a constant (no gradient to the mask);
    it is kept so that the logged loss is the paper's.
    """
    return F.cross_entropy(logits_x.detach(), target) + F.cross_entropy(logits_e, target)


def area_loss(m: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathcal{L}_{area} = \frac{1}{HW}\sum_p m_p` (L1 area of the mask)."""
    return m.mean()


def bin_loss(m: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathcal{L}_{bin} = \frac{1}{HW}\sum_p m_p(1 - m_p)`: zero exactly when the mask is binary."""
    return (m * (1 - m)).mean()


def tv_loss(m: torch.Tensor) -> torch.Tensor:
    r"""Total variation over the 8-neighbourhood.

    .. math:: \mathcal{L}_{tv} = \frac{1}{4}\sum_{\delta} \operatorname{mean}_p |m_p - m_{p+\delta}|,
       \quad \delta \in \{(0,1), (1,0), (1,1), (1,-1)\}

    (each neighbour pair counted once).
    """
    if m.ndim == 3:
        m = m[:, None]
    diffs = [(m[..., :, 1:] - m[..., :, :-1]), (m[..., 1:, :] - m[..., :-1, :]),
             (m[..., 1:, 1:] - m[..., :-1, :-1]), (m[..., 1:, :-1] - m[..., :-1, 1:])]
    return sum(d.abs().mean() for d in diffs) / 4


def robustness_loss(model: nn.Module, x: torch.Tensor, m: torch.Tensor, target: torch.Tensor, fills=FILLS,
                    gradient: bool = True, seed: int | None = None) -> torch.Tensor:
    r"""Abductive robustness: the kept pixels must give the label on any background.

    .. math:: \mathcal{L}_{rob} = \frac{1}{|R|}\sum_{r \in R} \mathrm{CE}\big(f(m \odot x + (1-m)\odot r),\, t\big)

    for backgrounds :math:`r` of zeros, Gaussian noise and uniform noise (in
    normalised space). With ``gradient=False`` the mask is detached, as in the
    reference notebook: the term is then a constant that trains nothing.

    Returns
    -------
    torch.Tensor
        Scalar.
    """
    g = torch.Generator(device="cpu")
    if seed is not None:
        g.manual_seed(seed)
    mm = m if gradient else m.detach()
    parts = [blend(x, mm, noise_fill(fill, x.shape, g).to(x)) for fill in fills]
    logits = model(torch.cat(parts))
    return F.cross_entropy(logits, target.repeat(len(fills)))


# ----------------------------------------------------------------------------
# per-image explanations
# ----------------------------------------------------------------------------

def default_layers(model: nn.Module, logits: bool = True) -> dict[str, float]:
    """Matched layers and their weights: ResNet's relu, layer1..layer4 (1, 2, 2, 4, 8), else five activations.

    For other networks, five activation modules evenly spaced from the first to the
    last take the same weights. With ``logits`` (the authors' recipe) the classifier's
    output joins them as :data:`LOGITS` with weight :data:`LOGITS_WEIGHT`; leave it
    out (``logits=False``) for a list of modules, e.g. for :func:`circuit`.
    """
    names = dict(model.named_modules())
    if all(k in names for k in ("relu", "layer1", "layer2", "layer3", "layer4")):
        out = dict(zip(("relu", "layer1", "layer2", "layer3", "layer4"), LAYER_WEIGHTS))
    else:
        acts = [n for n, m in model.named_modules() if n and isinstance(m, ACTIVATION_TYPES)]
        if not acts:
            raise ValueError("found no activation modules to match; pass layers= explicitly")
        idx = np.unique(np.linspace(0, len(acts) - 1, len(LAYER_WEIGHTS)).round().astype(int))
        out = {acts[i]: w for i, w in zip(idx, LAYER_WEIGHTS[-len(idx):])}
    if logits:
        out[LOGITS] = LOGITS_WEIGHT
    return out


@dataclass
class Explanation:
    """What :func:`train` returns.

    Attributes: ``masks`` (N, H, W) binary; ``soft`` (N, H, W) sigmoid before the
    threshold; ``target`` (N,); ``area`` (N,) share of pixels kept; ``kept`` (N,) whether
    the explanation's top-1 is the target; ``p_image``, ``p_explanation`` (N,) target
    probabilities; ``history`` per-image list of dicts of loss terms; ``nets`` the trained
    mask networks (per-image mode); ``snapshots`` maps a step number to the soft masks
    (N, H, W) after that many steps (:func:`train`'s ``snapshots``).
    """

    masks: torch.Tensor
    soft: torch.Tensor
    target: torch.Tensor
    area: np.ndarray
    kept: np.ndarray
    p_image: np.ndarray
    p_explanation: np.ndarray
    history: list = field(default_factory=list, repr=False)
    nets: list = field(default_factory=list, repr=False)
    snapshots: dict = field(default_factory=dict, repr=False)


def _fill_rows(fill, start: int, stop: int, n: int, dev):
    """The rows ``start:stop`` of a fill with one image per image of the batch (``n``), on ``dev``;
    a fill to broadcast (one image, or (3, H, W)) whole on ``dev``; ``"mean"`` as it is."""
    if not isinstance(fill, torch.Tensor):
        return fill
    return (fill[start:stop] if fill.ndim == 4 and len(fill) == n else fill).to(dev)


def objective(model: nn.Module, x: torch.Tensor, logits: torch.Tensor, target: torch.Tensor, acts_x: dict,
              layers: dict, weights: dict, distance: str = "mse", temperature: float = 2.0,
              rob_gradient: bool = True, fill="mean", seed: int | None = None) -> tuple[torch.Tensor, dict]:
    """The full loss for a batch of mask logits; returns (total, dict of the weighted terms' values).

    ``acts_x`` and ``logits_x`` of the images are computed once by the caller.
    """
    m, soft = binarise(logits), torch.sigmoid(logits)
    e = apply_mask(x, m, fill)
    with record(model, [n for n in layers if n != LOGITS], detach=False) as rec:
        logits_e = model(e)
    logits_x = acts_x["__logits__"]
    acts_e = {**rec.activations, LOGITS: logits_e} if LOGITS in layers else rec.activations
    terms = {
        "act": activation_loss(acts_x, acts_e, layers, distance) if weights.get("act", 0) else None,
        "kl": kl_loss(logits_x, logits_e, temperature),
        "ce": ce_loss(logits_x, logits_e, target),
        "area": area_loss(soft),
        "bin": bin_loss(soft),
        "tv": tv_loss(soft),
        "rob": robustness_loss(model, x, m, target, gradient=rob_gradient, seed=seed) if weights.get("rob", 0) else None,
    }
    total = sum(weights.get(k, 0.0) * v for k, v in terms.items() if v is not None)
    return total, {k: float(v.detach()) for k, v in terms.items() if v is not None}


def _image_targets(model: nn.Module, x: torch.Tensor, layers: dict) -> dict:
    with torch.no_grad(), record(model, [n for n in layers if n != LOGITS]) as rec:
        logits = model(x)
    out = dict(rec.activations)
    out["__logits__"] = out[LOGITS] = logits
    return out


def _finish(model, x, logits, logits_x, target, history, nets, fill="mean") -> Explanation:
    """Masks from the mask logits, and the classifier's verdict (``logits_x``: the images' logits, computed once)."""
    with torch.no_grad():
        soft = torch.sigmoid(logits)
        masks = (soft > 0.5).to(x.dtype)
        p_x = logits_x.softmax(1)
        p_e = model(apply_mask(x, masks, fill)).softmax(1)
    idx = torch.arange(len(x))
    return Explanation(masks[:, 0].cpu(), soft[:, 0].cpu(), target.cpu(), masks.flatten(1).mean(1).cpu().numpy(),
                       (p_e.argmax(1) == target).cpu().numpy(), p_x[idx, target].cpu().numpy(),
                       p_e[idx, target].cpu().numpy(), history, nets)


def explain(model: nn.Module, x: torch.Tensor, target=None, **settings) -> torch.Tensor:
    """Activation Matching's maps (N, H, W) on ``x``'s device: the mask networks' sigmoid before the threshold.

    The binary mask is the map above 0.5; the sigmoid also ranks the pixels, which
    ranking metrics need. ``settings`` are :func:`train`'s; the binary masks, the
    classifier's verdict, the loss history and the trained networks come from
    :func:`train` itself.
    """
    return train(model, x, target, **settings).soft.to(x.device)


def train(model: nn.Module, x: torch.Tensor, target=None, steps: int = 880, lr: float = 5e-5,
            layers: dict | None = None, distance: str = "mse", temperature: float = 2.0, rob_gradient: bool = True,
            widths=(32, 64, 128, 256), bottleneck: int = 512, seed: int = 0, verbose: bool = True,
            fill: str | torch.Tensor = "mean", snapshots=(), **weights) -> Explanation:
    """Train one mask network per image; return the binary masks and how well they keep the decision.

    Parameters
    ----------
    model : nn.Module
        Frozen classifier in eval mode (its weights get no gradient).
    x : torch.Tensor
        Normalised images (N, 3, H, W); H, W divisible by ``2 ** len(widths)``.
    target : int, sequence or None
        Classes to keep; ``None`` takes the predicted ones.
    steps, lr : int, float
        Adam steps and learning rate per image (the authors: 880, 5e-5).
    layers : dict of str to float, optional
        Matched layers and weights; default :func:`default_layers`. The name
        :data:`LOGITS` matches the classifier's output too, as the authors' notebook does.
    distance : {"mse", "cosine", "std_mse"}
        Distance of :func:`activation_loss`.
    temperature : float
        Of :func:`kl_loss`.
    rob_gradient : bool
        Let :func:`robustness_loss` train the mask (``False``: the reference notebook's
        detached version).
    widths, bottleneck
        Size of the :class:`MaskNet`.
    seed : int
        Seed of the mask network's initialisation and of the noise backgrounds.
    verbose : bool
        Progress bar over steps.
    fill : "mean" or torch.Tensor
        What the hidden pixels of the explanation show (:func:`apply_mask`): the mean
        colour (the authors'), or a tensor broadcastable to ``x``, e.g. a blur of the
        images (N, 3, H, W). The verdict (``kept``, ``p_explanation``) uses the same fill.
    snapshots : sequence of int
        Steps (from 1 to ``steps``) after which to keep the soft masks as well, so that one
        run shows the schedule's effect (``Explanation.snapshots``); the last step's are
        ``soft`` itself.
    **weights
        Loss weights overriding :data:`WEIGHTS`, e.g. ``area=200, tv=0``.

    Returns
    -------
    Explanation
    """
    _checks.image_batch(x)
    if isinstance(fill, torch.Tensor) and fill.ndim == 4 and len(fill) not in (1, len(x)):
        raise ValueError(f"expected a fill of one image or one per image ({len(x)}), got {tuple(fill.shape)}")
    unknown = set(weights) - set(WEIGHTS)
    if unknown:
        raise ValueError(f"unknown loss weights {sorted(unknown)}; expected some of {sorted(WEIGHTS)}")
    w = {**WEIGHTS, **weights}
    snapshots = sorted({int(k) for k in snapshots})
    if snapshots and not 1 <= snapshots[0] <= snapshots[-1] <= steps:
        raise ValueError(f"expected snapshot steps between 1 and steps={steps}, got {snapshots}")
    dev = _checks.model_device(model)
    x = x.to(dev)
    layers = layers or default_layers(model)
    snaps: dict[int, list] = {k: [] for k in snapshots}
    with frozen_weights(model), no_inplace(model):
        base = _image_targets(model, x, layers)
        t = _checks.targets(target, len(x), base["__logits__"]).to(dev)
        all_logits, history, nets = [], [], []
        bar = tqdm(total=steps * len(x), desc="activation matching", disable=not verbose)
        for i in range(len(x)):
            torch.manual_seed(seed + i)
            net = MaskNet(widths, bottleneck).to(dev)
            opt = torch.optim.Adam(net.parameters(), lr=lr)
            xi = x[i:i + 1]
            fi = _fill_rows(fill, i, i + 1, len(x), dev)
            ai = {k: v[i:i + 1] for k, v in base.items()}
            hist = []
            for step in range(steps):
                loss, terms = objective(model, xi, net(xi), t[i:i + 1], ai, layers, w, distance, temperature,
                                        rob_gradient, fill=fi, seed=seed + step)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                hist.append({"loss": float(loss.detach()), **terms})
                bar.update()
                if step + 1 in snaps:  # train-mode batch norm, as below
                    with torch.no_grad():
                        snaps[step + 1].append(torch.sigmoid(net(xi))[:, 0].cpu())
            with torch.no_grad():  # train-mode batch norm, as in every step (batch of one image)
                all_logits.append(net(xi))
            history.append(hist)
            nets.append(net)
        bar.close()
        full_fill = fill.to(dev) if isinstance(fill, torch.Tensor) else fill
        out = _finish(model, x, torch.cat(all_logits), base["__logits__"], t, history, nets, full_fill)
        out.snapshots = {k: torch.cat(v) for k, v in snaps.items()}
        return out


# ----------------------------------------------------------------------------
# beyond the paper: one mask network for many images
# ----------------------------------------------------------------------------

def train_amortised(model: nn.Module, x: torch.Tensor, target=None, epochs: int = 10, batch_size: int = 32,
                    lr: float = 1e-3, layers: dict | None = None, distance: str = "mse", temperature: float = 2.0,
                    widths=(32, 64, 128, 256), bottleneck: int = 512, seed: int = 0, verbose: bool = True,
                    **weights) -> tuple[MaskNet, list]:
    """Train one :class:`MaskNet` on many images with the per-image objective (amortised explanations).

    Parameters
    ----------
    model : nn.Module
        Frozen classifier in eval mode.
    x : torch.Tensor
        Normalised training images (N, 3, H, W).
    target : sequence or None
        Classes to keep; ``None`` takes the predicted ones.
    epochs, batch_size, lr
        Adam schedule over the images (shuffled each epoch).
    layers, distance, temperature, widths, bottleneck, seed, **weights
        As in :func:`train`.
    verbose : bool
        Progress bar over batches.

    Returns
    -------
    (MaskNet, list)
        The trained network (eval mode) and the per-batch loss history.
    """
    _checks.image_batch(x)
    w = {**WEIGHTS, **weights}
    dev = _checks.model_device(model)
    layers = layers or default_layers(model)
    torch.manual_seed(seed)
    net = MaskNet(widths, bottleneck).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    history = []
    with frozen_weights(model), no_inplace(model):
        with torch.no_grad():
            logits_all = torch.cat([model(x[i:i + 256].to(dev)).cpu() for i in range(0, len(x), 256)])
        t_all = _checks.targets(target, len(x), logits_all)
        g = torch.Generator().manual_seed(seed)
        n_batches = (len(x) + batch_size - 1) // batch_size
        bar = tqdm(total=epochs * n_batches, desc="amortised mask network", disable=not verbose)
        for epoch in range(epochs):
            for b, idx in enumerate(torch.randperm(len(x), generator=g).split(batch_size)):
                xb, tb = x[idx].to(dev), t_all[idx].to(dev)
                base = _image_targets(model, xb, layers)
                loss, terms = objective(model, xb, net(xb), tb, base, layers, w, distance, temperature,
                                        seed=seed + epoch * n_batches + b)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                history.append({"loss": float(loss.detach()), **terms})
                bar.update()
        bar.close()
    return net.eval(), history


def amortised_masks(net: MaskNet, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Binary masks (N, H, W) of new images from a trained amortised network: one forward pass of ``net``, nothing else."""
    _checks.image_batch(x)
    dev = next(net.parameters()).device
    with torch.no_grad():
        return torch.cat([(net(x[i:i + batch_size].to(dev)) > 0).to(x.dtype)[:, 0] for i in range(0, len(x), batch_size)])


def amortised_explain(model: nn.Module, x: torch.Tensor, target=None, *, net: MaskNet, batch_size: int = 64) -> torch.Tensor:
    """An amortised mask network's maps (N, H, W) on ``x``'s device: the sigmoid of one pass of ``net``.

    The mask network sees the image only, not the class: ``target`` is accepted for the
    common call and not used (it explains the class the classifier predicts, as it was
    trained to). ``model`` is not run. The binary masks are the maps above 0.5
    (:func:`amortised_masks`); :func:`apply_amortised` adds the classifier's verdict.
    """
    _checks.image_batch(x)
    dev = next(net.parameters()).device
    with torch.no_grad():
        return torch.cat([torch.sigmoid(net(x[i:i + batch_size].to(dev)))[:, 0]
                          for i in range(0, len(x), batch_size)]).to(x.device)


def apply_amortised(net: MaskNet, model: nn.Module, x: torch.Tensor, target=None, batch_size: int = 64) -> Explanation:
    """Masks of new images from a trained amortised network, with the classifier's verdict on them.

    The explanation itself is :func:`amortised_masks` (one pass of ``net``); this adds
    two classifier passes (image and explanation) to report the label kept.

    Returns
    -------
    Explanation
        As :func:`train`, without history or networks.
    """
    _checks.image_batch(x)
    dev = _checks.model_device(model)
    x = x.to(dev)
    with torch.no_grad():
        logits = torch.cat([net(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
        logits_x = model(x)
        t = _checks.targets(target, len(x), logits_x).to(dev)
    return _finish(model, x, logits, logits_x, t, [], [])


# ----------------------------------------------------------------------------
# the circuit readout of the longer version
# ----------------------------------------------------------------------------

def necessity(model: nn.Module, x: torch.Tensor, masks: object, target=None, fill: str | torch.Tensor = "mean",
              batch_size: int = 64) -> dict[str, np.ndarray]:
    r"""Sufficiency and necessity of binary masks: the label on the kept pixels, and on the rest.

    Sufficiency asks the explanation :math:`e = m \odot x` to keep the label;
    necessity asks the complement :math:`(1 - m) \odot x` (the explanation's pixels
    hidden, painted with ``fill``) to lose it. Both paint with the same value, the
    mean colour by default (0 in normalised space, the authors' fill).

    Parameters
    ----------
    model : nn.Module
        Classifier in eval mode.
    x : torch.Tensor
        Normalised images (N, 3, H, W).
    masks : array or tensor
        Binary masks (N, H, W), 1 = the explanation.
    target : int, sequence or None
        Classes; ``None`` takes the predicted ones.
    fill : "mean" or torch.Tensor
        What hidden pixels show (see :func:`apply_mask`): one tensor for all images,
        or one image per image (N, 3, H, W), e.g. a blur of each.
    batch_size : int
        Images per forward pass.

    Returns
    -------
    dict of str to numpy.ndarray
        Each (N,): ``area`` (share of pixels in the mask), ``p_image``, ``p_kept``
        (target probability on the explanation), ``p_removed`` (on the complement),
        ``kept`` (the explanation's top-1 is the target), ``lost`` (the complement's
        top-1 is not).
    """
    _checks.image_batch(x)
    dev = _checks.model_device(model)
    m = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks).to(dev, x.dtype)
    if m.shape != (x.shape[0], *x.shape[-2:]):
        raise ValueError(f"expected masks of shape {(x.shape[0], *x.shape[-2:])}, got {tuple(m.shape)}")
    if not bool(((m == 0) | (m == 1)).all()):
        raise ValueError("expected binary masks (0 or 1); threshold soft maps first, e.g. xh.metrics.top_share")
    x, m = x.to(dev), m[:, None]
    out: dict[str, list] = {k: [] for k in ("p_image", "p_kept", "p_removed", "kept", "lost")}
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xi, mi = x[i:i + batch_size], m[i:i + batch_size]
            fi = _fill_rows(fill, i, i + batch_size, len(x), dev)
            logits = model(xi)
            t = _checks.targets(target if target is None or isinstance(target, int) else
                                torch.as_tensor(target).reshape(-1)[i:i + batch_size], len(xi), logits).to(dev)
            idx = torch.arange(len(xi), device=dev)
            p_k = model(apply_mask(xi, mi, fi)).softmax(1)
            p_r = model(apply_mask(xi, 1 - mi, fi)).softmax(1)
            out["p_image"].append(logits.softmax(1)[idx, t]); out["p_kept"].append(p_k[idx, t])
            out["p_removed"].append(p_r[idx, t]); out["kept"].append(p_k.argmax(1) == t); out["lost"].append(p_r.argmax(1) != t)
    res = {k: torch.cat(v).cpu().numpy() for k, v in out.items()}
    res["area"] = m.flatten(1).mean(1).cpu().numpy()
    return res


#: the shares of the image kept by :func:`area_curve` by default: from the paper's 2-5 % to half the image
CURVE_AREAS = (0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5)


def area_curve(model: nn.Module, x: torch.Tensor, scores: object, target=None, areas=CURVE_AREAS,
               fill: str | torch.Tensor = "mean", seed: int = 0, batch_size: int = 64) -> "pandas.DataFrame":  # noqa: F821
    """Keep each image's top ``area`` pixels of ``scores`` for several areas: does the label survive?

    The paper shows masks of 2-5 % of the image that keep the label. Ranking the pixels by
    a trained mask's soft values (``Explanation.soft``) and keeping the top share asks
    whether the mask *contains* such a small explanation even when its own threshold at
    0.5 keeps far more: the binarisation is one of the choices the paper leaves open.
    Any saliency map ranks the pixels the same way, and random scores give the control.

    Parameters
    ----------
    model : nn.Module
        Classifier in eval mode.
    x : torch.Tensor
        Normalised images (N, 3, H, W).
    scores : tensor or array, shape (N, H, W)
        Pixel scores; the top ``area`` share is kept (ties broken at random, exactly that many pixels).
    target : int, sequence or None
        Classes; ``None`` takes the predicted ones.
    areas : sequence of float
        Shares of the image to keep, each in (0, 1].
    fill : "mean" or torch.Tensor
        What the hidden pixels show (:func:`apply_mask`).
    seed : int
        Seed of the tie-breaking.
    batch_size : int
        Images per forward pass.

    Returns
    -------
    pandas.DataFrame
        One row per image and area: ``image``, ``area`` (the share kept), ``kept`` (the
        explanation's top-1 is the target), ``p_kept`` (the target's probability on it),
        ``p_image`` (on the whole image).
    """
    import pandas as pd

    from .metrics import top_share

    if not len(areas) or not all(0 < a <= 1 for a in areas):
        raise ValueError(f"expected areas in (0, 1], got {tuple(areas)}")
    _checks.image_batch(x)
    dev = _checks.model_device(model)
    n, b = len(x), batch_size
    masks = {a: top_share(scores, float(a), seed=seed) for a in areas}
    rows = []
    with torch.no_grad():  # each batch whole once, then only its kept pixels per area (no complement)
        for s in range(0, n, b):
            xb = x[s:s + b].to(dev)
            logits = model(xb)
            t = _checks.targets(target if target is None or isinstance(target, int) else
                                torch.as_tensor(target).reshape(-1)[s:s + b], len(xb), logits).to(dev)
            idx = torch.arange(len(xb), device=dev)
            p_image = logits.softmax(1)[idx, t]
            for a, m in masks.items():
                mb = m[s:s + b].to(dev, x.dtype)[:, None]
                fb = _fill_rows(fill, s, s + b, n, dev)
                p = model(apply_mask(xb, mb, fb)).softmax(1)
                rows += [{"image": s + i, "area": float(mb[i].mean()), "kept": bool(p[i].argmax() == t[i]),
                          "p_kept": float(p[i, t[i]]), "p_image": float(p_image[i])} for i in range(len(xb))]
    return pd.DataFrame(rows).sort_values(["area", "image"], kind="stable").reset_index(drop=True)


def smallest_kept_area(curve: "pandas.DataFrame") -> "pandas.Series":  # noqa: F821
    """Per image, the smallest area of :func:`area_curve` whose explanation keeps the label (NaN if none does)."""
    kept = curve[curve["kept"]]
    return kept.groupby("image")["area"].min().reindex(sorted(curve["image"].unique()))


def smallest_explanations(model: nn.Module, x: torch.Tensor, target=None, areas=CURVE_AREAS, seed: int = 0,
                          **settings) -> "pandas.DataFrame":  # noqa: F821
    """Train a mask per image, then find the smallest share of its soft order that keeps the label.

    The whole of the lab's photo study in one call, for a folder of photos (chapter 5's
    ``FOLDER`` path): :func:`train` with ``settings``, the mask at 0.5, and
    :func:`smallest_kept_area` of :func:`area_curve` under the soft mask's order and under
    random scores of the same shares (the control).

    Parameters
    ----------
    model, x, target
        As in :func:`train`.
    areas : sequence of float
        The shares of :func:`area_curve`.
    seed : int
        Seed of the training and of the random scores.
    **settings
        Passed to :func:`train` (``steps``, ``lr``, ``widths``, loss weights, ...).

    Returns
    -------
    pandas.DataFrame
        One row per image: ``target``, ``p_image``, ``area at 0.5``, ``kept at 0.5``,
        ``smallest share, soft mask`` and ``smallest share, random pixels`` (NaN: no share
        of ``areas`` keeps the label).
    """
    import pandas as pd

    ex = train(model, x, target, seed=seed, **settings)
    noise = torch.rand(ex.soft.shape, generator=torch.Generator().manual_seed(seed))
    soft = smallest_kept_area(area_curve(model, x, ex.soft, ex.target, areas))
    rand = smallest_kept_area(area_curve(model, x, noise, ex.target, areas))
    return pd.DataFrame({"target": ex.target.numpy(), "p_image": ex.p_image, "area at 0.5": ex.area,
                         "kept at 0.5": ex.kept, "smallest share, soft mask": soft.to_numpy(float),
                         "smallest share, random pixels": rand.to_numpy(float)})


#: the controls of :func:`matched_controls`, each of exactly the mask's area, image by image
CONTROL_KINDS = ("scattered", "blob", "shifted")


def _binary_masks(masks: object) -> torch.Tensor:
    m = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks.detach().cpu())
    if m.ndim != 3:
        raise ValueError(f"expected binary masks of shape (N, H, W), got shape {tuple(m.shape)}")
    if not bool(((m == 0) | (m == 1)).all()):
        raise ValueError("expected binary masks (0 or 1); threshold soft maps first, e.g. xh.metrics.top_share")
    return m.float()


def _blob(h: int, w: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A 4-connected blob of exactly ``k`` pixels: from a random seed pixel, the frontier pixel of lowest random priority joins next."""
    import heapq

    out = np.zeros((h, w), dtype=bool)
    if k <= 0:
        return out
    prio = rng.random((h, w))
    start = (int(rng.integers(h)), int(rng.integers(w)))
    heap, seen = [(0.0, start)], {start}
    while heap and k:
        _, (i, j) = heapq.heappop(heap)
        out[i, j] = True
        k -= 1
        for a, b in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)):
            if 0 <= a < h and 0 <= b < w and (a, b) not in seen:
                seen.add((a, b))
                heapq.heappush(heap, (prio[a, b], (a, b)))
    return out


def matched_controls(masks: object, kind: str = "scattered", seed: int = 0, candidates: int = 16) -> torch.Tensor:
    """Control masks of exactly each mask's area: scattered pixels, a connected blob, or the mask itself shifted.

    A mask's necessity (or sufficiency) means little until it beats masks of the same
    area that do not know the image. Three controls, each with exactly as many pixels as
    its mask, image by image:

    - ``"scattered"``: that many pixels drawn at random anywhere (no shape at all);
    - ``"blob"``: one 4-connected blob of that many pixels grown from a random seed
      pixel (each step adds the frontier pixel of lowest random priority), so a
      compact region of the same area at a random place;
    - ``"shifted"``: the mask itself rolled (with wrap-around) by the offset, among
      ``candidates`` random ones, that overlaps it least: the same shape at another
      place.

    Parameters
    ----------
    masks : array or tensor, shape (N, H, W)
        Binary masks, 1 = the pixels of the explanation (or object).
    kind : {"scattered", "blob", "shifted"}
        The control.
    seed : int
        Seed of the random placement.
    candidates : int
        Random offsets tried for ``"shifted"``.

    Returns
    -------
    torch.Tensor
        Binary float masks (N, H, W) on the CPU, ``out[i].sum() == masks[i].sum()``.
    """
    if kind not in CONTROL_KINDS:
        raise ValueError(f"expected kind in {CONTROL_KINDS}, got {kind!r}")
    if candidates < 1:
        raise ValueError(f"expected at least one candidate offset, got {candidates}")
    m = _binary_masks(masks)
    n, h, w = m.shape
    rng = np.random.default_rng(seed)
    counts = m.flatten(1).sum(1).round().long().tolist()
    out = torch.zeros_like(m)
    for i, k in enumerate(counts):
        if kind == "scattered":
            idx = rng.permutation(h * w)[:k]
            out[i].view(-1)[torch.as_tensor(idx, dtype=torch.long)] = 1.0
        elif kind == "blob":
            out[i] = torch.from_numpy(_blob(h, w, k, rng)).float()
        else:
            best, best_overlap = m[i], None
            for _ in range(candidates):
                dy, dx = int(rng.integers(1, h)) if h > 1 else 0, int(rng.integers(1, w)) if w > 1 else 0
                rolled = torch.roll(m[i], (dy, dx), dims=(0, 1))
                overlap = float((rolled * m[i]).sum())
                if best_overlap is None or overlap < best_overlap:
                    best, best_overlap = rolled, overlap
            out[i] = best
    return out


def mask_scores(model: nn.Module, x: torch.Tensor, masks: object, target, backgrounds: torch.Tensor | None = None,
                training_fills: torch.Tensor | None = None) -> "pandas.DataFrame":  # noqa: F821
    """Per-image sufficiency, necessity and robustness to unseen fills of binary masks.

    The per-image scores behind :func:`mask_report`, for paired comparisons of masks
    on the same images (:func:`xaihelpers.stats.paired`).

    Parameters
    ----------
    model : nn.Module
        Classifier in eval mode.
    x : torch.Tensor
        Normalised images (N, 3, H, W).
    masks : array or tensor
        Binary masks (N, H, W).
    target : sequence of int
        The classes.
    backgrounds : torch.Tensor, optional
        Normalised backgrounds (B, 3, H, W) the robustness term never trains on;
        adds ``survives: backgrounds`` (share of them keeping the label).
    training_fills : torch.Tensor, optional
        Backgrounds of the kinds the robustness term trains on
        (:func:`xaihelpers.occlusion.training_backgrounds`); adds ``survives: training fills``.

    Returns
    -------
    pandas.DataFrame
        One row per image: ``area``, ``sufficient`` (label kept on the mask, mean fill),
        ``necessary`` (label lost on the complement), ``p kept`` (target probability on
        the mask), ``p hidden`` (on the complement: low when the mask is necessary),
        ``survives: own blur`` (label kept on the mask over a blur of the image), and the
        optional ``survives:`` columns.
    """
    import pandas as pd

    from .causal_study import survival
    from .occlusion import background

    m = _binary_masks(masks)
    t = torch.as_tensor(target).reshape(-1).cpu()
    nec = necessity(model, x, m, t)
    rows = {"area": nec["area"], "sufficient": nec["kept"], "necessary": nec["lost"], "p kept": nec["p_kept"],
            "p hidden": nec["p_removed"]}
    if backgrounds is not None:
        rows["survives: backgrounds"] = survival(model, x, m.numpy(), backgrounds, t, gammas=(0.0,))[:, 0]
    rows["survives: own blur"] = necessity(model, x, m, t, fill=background(x, "blur"))["kept"]
    if training_fills is not None:
        rows["survives: training fills"] = survival(model, x, m.numpy(), training_fills, t, gammas=(0.0,))[:, 0]
    return pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in rows.items()})


def mask_report(model: nn.Module, x: torch.Tensor, masks: object, target, backgrounds: torch.Tensor,
                training_fills: torch.Tensor | None = None) -> dict[str, float]:
    """Sufficiency, necessity and robustness to unseen fills of binary masks, each with its standard error.

    The fills are ones the robustness term never trains on (it sees zeros, Gaussian
    and uniform noise): the ``backgrounds`` (e.g. solid colours and texture crops,
    :func:`xaihelpers.occlusion.solid_backgrounds`, :func:`~xaihelpers.occlusion.texture_backgrounds`)
    and a Gaussian blur of each image itself. The means of :func:`mask_scores`; compare
    two masks on the same images with :func:`xaihelpers.stats.paired` on those per-image
    scores, not with these standard errors.

    Parameters
    ----------
    model, x, masks, target, training_fills
        As in :func:`mask_scores`.
    backgrounds : torch.Tensor
        Normalised backgrounds (B, 3, H, W); required here.

    Returns
    -------
    dict of str to float
        ``area``, ``sufficient`` (label kept on the mask, mean fill), ``necessary``
        (label lost on the complement), ``p kept``, ``p hidden``, ``survives: backgrounds``
        (share of the backgrounds keeping the label), ``survives: own blur``; each with
        ``" se"``, the standard error over images.
    """
    scores = mask_scores(model, x, masks, target, backgrounds, training_fills)
    out = {}
    for k in scores.columns:
        v = scores[k].to_numpy(float)
        out[k], out[f"{k} se"] = float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return out


def matched_comparison(model: nn.Module, x: torch.Tensor, masks: object, target, others: dict | None = None,
                       kinds=CONTROL_KINDS, name: str = "mask", seed: int = 0, backgrounds: torch.Tensor | None = None,
                       scores=("p hidden", "p kept"), k: float = 2.0) -> tuple["pandas.DataFrame", dict]:  # noqa: F821
    """A mask beside masks of exactly its area, image by image: other methods' and the matched controls.

    Every row has exactly the area of ``masks`` on every image (checked), so no row
    compares masks of different area. Each row's per-image ``scores`` are compared with
    the mask's by the paired difference (row minus mask) and its standard error
    (:func:`xaihelpers.stats.paired`).

    Parameters
    ----------
    model : nn.Module
        Classifier in eval mode.
    x : torch.Tensor
        Normalised images (N, 3, H, W).
    masks : array or tensor
        Binary masks (N, H, W) to compare.
    target : sequence of int
        The classes.
    others : dict of str to masks, optional
        Other binary masks of the same images and exactly the same areas (e.g.
        :func:`xaihelpers.metrics.top_share` of another method's maps).
    kinds : sequence of str
        Controls of :func:`matched_controls` to add, as rows named ``"<kind> (<name>'s area)"``.
    name : str
        Row name of ``masks``.
    seed : int
        Seed of the controls.
    backgrounds : torch.Tensor, optional
        Unseen backgrounds for :func:`mask_scores`.
    scores : sequence of str
        Columns of :func:`mask_scores` compared paired with the mask.
    k : float
        Paired standard errors a gap must exceed for a verdict.

    Returns
    -------
    (pandas.DataFrame, dict)
        The table, one row per mask set (the mask first): the means of
        :func:`mask_scores` and, per compared score, ``"<score>: row - mask"``,
        ``"<score>: paired se"`` and ``"<score>: verdict"`` (the row's score ``"higher"``
        or ``"lower"`` than the mask's, or not distinguishable); and the per-image
        scores, row name to :func:`mask_scores`'s frame.
    """
    import pandas as pd

    from . import stats

    m = _binary_masks(masks)
    sets = {name: m}
    for other, om in (others or {}).items():
        sets[other] = _binary_masks(om)
    for kind in kinds:
        sets[f"{kind} ({name}'s area)"] = matched_controls(m, kind, seed=seed)
    counts = m.flatten(1).sum(1)
    for row, om in sets.items():
        if om.shape != m.shape or not torch.equal(om.flatten(1).sum(1), counts):
            raise ValueError(f"expected {row!r} to have exactly the area of {name!r} on every image")
    per = {row: mask_scores(model, x, om, target, backgrounds) for row, om in sets.items()}
    table = {}
    for row, sc in per.items():
        out = sc.mean().to_dict()
        for col in scores:
            if row == name:
                out.update({f"{col}: row - mask": 0.0, f"{col}: paired se": 0.0, f"{col}: verdict": ""})
            else:
                p = stats.paired(sc[col], per[name][col], k)
                out.update({f"{col}: row - mask": p.diff, f"{col}: paired se": p.se, f"{col}: verdict": p.verdict})
        table[row] = out
    return pd.DataFrame(table).T, per


def robustness_table(model: nn.Module, x: torch.Tensor, explanations: dict, backgrounds: torch.Tensor,
                     training_fills: torch.Tensor) -> "pandas.DataFrame":  # noqa: F821
    """Chapter 5's robustness comparison: per set of explanations of the same images, one row.

    Columns: ``area``, ``survives: training fills`` (backgrounds of the kinds the
    robustness term trains on), ``survives: unseen backgrounds`` (``backgrounds``), each
    with its standard error over images (``" se"``, :func:`mask_report`), and
    ``robustness term, last 10 steps / first 10`` (the unweighted term at the end of
    training over its start, averaged over the images: below 1 when the term fell).

    Parameters
    ----------
    model : nn.Module
        Classifier in eval mode.
    x : torch.Tensor
        The explained images (N, 3, H, W).
    explanations : dict of str to Explanation
        Name to :func:`train`'s result on ``x`` (its first N images are used).
    backgrounds, training_fills : torch.Tensor
        Unseen backgrounds and :func:`xaihelpers.occlusion.training_backgrounds`.
    """
    import pandas as pd

    rows, n = {}, len(x)
    for name, e in explanations.items():
        rep = mask_report(model, x, e.masks[:n], e.target[:n], backgrounds, training_fills=training_fills)
        term = np.array([[np.mean([h["rob"] for h in hist[:10]]), np.mean([h["rob"] for h in hist[-10:]])]
                         for hist in e.history[:n]])
        rows[name] = {**{c: rep[c] for c in ("area", "area se", "survives: training fills", "survives: training fills se")},
                      "survives: unseen backgrounds": rep["survives: backgrounds"],
                      "survives: unseen backgrounds se": rep["survives: backgrounds se"],
                      "robustness term, last 10 steps / first 10": float((term[:, 1] / term[:, 0]).mean())}
    return pd.DataFrame(rows).T


def circuit(model: nn.Module, x: torch.Tensor, layers: list[str], target: int, k: int = 4) -> dict:
    r"""The most energetic channels per layer and the edges between them, for one image.

    Nodes: per layer, the ``k`` channels with the largest energy (mean squared
    activation). Edges between consecutive layers: source channel :math:`i` to target
    channel :math:`j` weighs

    .. math:: w_{ij} = \sum_q \left|\frac{\partial \bar a_j}{\partial a_i(q)}\right| \, |a_i(q)|,
              \qquad \bar a_j = \operatorname{mean}_p a_j(p),

    the source activation times how strongly the target channel's mean responds to it.
    For a linear map :math:`a_j(p) = \sum_i W_{ji} a_i(p)` (a 1x1 convolution) the
    derivative is :math:`W_{ji} / P` at every position, so :math:`w_{ij} = |W_{ji}| \cdot
    \operatorname{mean}_q |a_i(q)|`: the longer version's :math:`|w| \times` activation
    (tested on a linear layer); through convolutions and residual blocks the same
    formula weighs every path. The last layer links to the class by
    :math:`|W_{fc}[t, c]| \times` the pooled activation of channel :math:`c`, the same
    rule at the linear head.

    Parameters
    ----------
    model : nn.Module
        Classifier with a final ``nn.Linear``.
    x : torch.Tensor
        One normalised image (1, 3, H, W) (or its explanation).
    layers : list of str
        Layer names, shallow to deep.
    target : int
        The class.
    k : int
        Channels per layer.

    Returns
    -------
    dict
        ``nodes``: {layer: [(channel, energy), ...]}, ``edges``: [((layer, i), (layer', j), weight)],
        with the class node named ``("class", target)``.
    """
    _checks.image_batch(x)
    if len(x) != 1:
        raise ValueError(f"expected one image, got {len(x)}")
    fc = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not fc:
        raise ValueError("expected a model with a final nn.Linear layer")
    layers = [n for n in layers if n != LOGITS]  # the output is the class node, not a layer of channels
    dev = _checks.model_device(model)
    with frozen_weights(model), no_inplace(model), record(model, layers, detach=False) as rec:
        model(x.to(dev).clone().requires_grad_(True))  # a graph from the input, with the weights frozen
        acts = [rec.activations[n] for n in layers]
        nodes, edges = {}, []
        for name, a in zip(layers, acts):
            energy = (a.detach() ** 2).mean((0, 2, 3))
            top = energy.topk(min(k, len(energy))).indices.tolist()
            nodes[name] = [(c, float(energy[c])) for c in top]
        for (src, a_src), (dst, a_dst) in zip(zip(layers, acts), zip(layers[1:], acts[1:])):
            for j, _ in nodes[dst]:
                grad = torch.autograd.grad(a_dst[0, j].mean(), a_src, retain_graph=True)[0]
                contrib = (grad.abs() * a_src.detach().abs()).sum((0, 2, 3))
                edges += [((src, i), (dst, j), float(contrib[i])) for i, _ in nodes[src]]
        pooled = acts[-1].detach().mean((2, 3))[0]
        w_fc = fc[-1].weight.detach()
        if w_fc.shape[1] == len(pooled):
            edges += [((layers[-1], c), ("class", target), float(w_fc[target, c].abs() * pooled[c].abs()))
                      for c, _ in nodes[layers[-1]]]
    return {"nodes": nodes, "edges": edges}


def activation_distance(model: nn.Module, x: torch.Tensor, masks: torch.Tensor, layers: dict | None = None,
                        distance: str = "mse") -> float:
    r""":math:`\mathcal{L}_{act}` between images and their explanations ``masks * x`` (masks (N, H, W), 1 = kept)."""
    dev = _checks.model_device(model)
    x = x.to(dev)
    layers = layers or default_layers(model)
    m = torch.as_tensor(masks, dtype=x.dtype).to(dev)
    with torch.no_grad(), no_inplace(model):
        a = _image_targets(model, x, layers)
        b = _image_targets(model, apply_mask(x, m[:, None]), layers)
    return float(activation_loss(a, b, layers, distance))
