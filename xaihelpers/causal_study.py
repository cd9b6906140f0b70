"""Chapter 4's experiments around the causal search: robustness by planting, and every occlusion method compared.

:mod:`xaihelpers.causal` holds the search itself (responsibility, extraction); this
module holds what chapter 4 (and chapters 5-6) do with its explanations:

- the planting test of robustness: :func:`survival` pastes explanations on
  backgrounds without class evidence (:mod:`xaihelpers.occlusion`) and asks whether
  the label stays; :func:`rho_table` reads it as the paper's :math:`\rho`-robustness;
- the study of chapter 4: :func:`null_class` (what an empty input is called),
  :func:`compare` (every occlusion method on the same images), :func:`summary`, and
  the typicality of the restricted model's features (:func:`penultimate_features`,
  :func:`typicality`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import _checks
from .causal import CausalExplanation, method_name, search
from .convad import DEFAULT_RULE
from .occlusion import plant

# ----------------------------------------------------------------------------
# robustness of an explanation: plant it on backgrounds that carry no information
# ----------------------------------------------------------------------------

RHOS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
GAMMAS = (0.0, 0.5, 0.8)


def survival(model: nn.Module, x: torch.Tensor, masks: object, backgrounds: torch.Tensor, target=None,
             gammas=GAMMAS, batch_size: int = 128, rule: str | None = None) -> np.ndarray:
    r"""Share of backgrounds on which each planted explanation keeps its label.

    The explanation of image :math:`x` with label :math:`t` *survives* on background
    :math:`b` at threshold :math:`\gamma` when the plain model (no occlusion
    machinery: the planted image is an ordinary picture) predicts :math:`t` for
    :math:`m \odot x + (1-m) \odot b` with probability at least
    :math:`\gamma \, p_t(x)`. Relative thresholds make models with different
    calibration comparable; :math:`\gamma = 0` asks for the label only.

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits.
    x : torch.Tensor
        Normalised images (N, 3, H, W).
    masks : array or tensor
        Explanations (N, H, W).
    backgrounds : torch.Tensor
        Normalised backgrounds (B, 3, H, W). An image's own background can be among
        them (e.g. other images of the set); it is skipped when identical to ``x``.
    target : int, sequence or None
        Labels; ``None`` takes the predicted ones.
    gammas : sequence of float
        Relative confidence thresholds.
    batch_size : int
        Planted images per forward pass.
    rule : str, optional
        ``None``: the plain model judges the planted image. A ConvAD rule: the
        *restricted* model judges it (ConvAD with that rule and the explanation's
        mask), the setting of the paper's Lemma 3.1, in which the background cannot
        matter because hidden input is switched off.

    Returns
    -------
    numpy.ndarray
        Shape (N, len(gammas)), in [0, 1].
    """
    dev = _checks.model_device(model)
    masks = np.asarray(masks.detach().cpu() if isinstance(masks, torch.Tensor) else masks)
    x, backgrounds = x.detach().cpu(), backgrounds.detach().cpu()  # planted on the CPU, judged on the model's device
    if masks.shape != (x.shape[0], *x.shape[-2:]):
        raise ValueError(f"expected masks of shape {(x.shape[0], *x.shape[-2:])}, got {masks.shape}")
    out = np.zeros((len(x), len(gammas)))
    if rule is None:
        judge = model
    else:
        from .convad import ConvAD

        judge = ConvAD(model, rule)  # the restricted model: the explanation's mask switches the rest off
    with torch.no_grad():
        p0 = model(x.to(dev)).softmax(1).cpu()
        targets = p0.argmax(1) if target is None else torch.as_tensor(target).reshape(-1).expand(len(x))
        for i in range(len(x)):
            t = int(targets[i])
            own = (backgrounds - x[i]).flatten(1).abs().amax(1) == 0
            planted = plant(x[i:i + 1], masks[i:i + 1], backgrounds[~own])[0]  # one image at a time: B copies in memory, not N x B
            if judge is model:
                probs = torch.cat([model(p.to(dev)).softmax(1).cpu() for p in planted.split(batch_size)])
            else:
                mi = torch.as_tensor(masks[i], dtype=x.dtype, device=dev)
                probs = torch.cat([judge(p.to(dev), mi.expand(len(p), -1, -1)).softmax(1).cpu() for p in planted.split(batch_size)])
            for j, g in enumerate(gammas):
                ok = (probs.argmax(1) == t) & (probs[:, t] >= g * p0[i, t])
                out[i, j] = ok.double().mean().item()
    return out


def rho_table(surv: dict[str, np.ndarray], rhos=RHOS, gammas=GAMMAS) -> "pandas.DataFrame":  # noqa: F821
    r"""The robustness table: share of explanations that are :math:`\rho`-robust.

    An explanation is :math:`\rho`-robust when it survives on at least a share
    :math:`\rho` of the backgrounds (for :math:`\rho = 0`: on at least one). Each
    cell is the share of images whose explanation is, with its binomial standard
    error over images.

    Parameters
    ----------
    surv : dict
        Method name -> :func:`survival` output (N, len(gammas)).
    rhos, gammas : sequences of float
        Rows and threshold columns.

    Returns
    -------
    pandas.DataFrame
        Index (gamma, rho); columns per method ``<name>`` and ``<name> se``.
    """
    import pandas as pd

    rows = []
    for j, g in enumerate(gammas):
        for r in rhos:
            row = {"gamma": g, "rho": r}
            for name, s in surv.items():
                ok = s[:, j] > 0 if r == 0 else s[:, j] >= r - 1e-9
                p = float(ok.mean())
                row[name], row[f"{name} se"] = p, float(np.sqrt(p * (1 - p) / len(ok)))
            rows.append(row)
    return pd.DataFrame(rows).set_index(["gamma", "rho"])


# ----------------------------------------------------------------------------
# the study of chapter 4: every occlusion method on the same images
# ----------------------------------------------------------------------------

def null_class(model: nn.Module, x: torch.Tensor, how: str = "convad", rule: str = DEFAULT_RULE) -> np.ndarray:
    """Class predicted when the whole image is occluded, per image: (N,).

    An image whose label is its null class has an empty causal explanation (nothing
    needs to be seen); the study leaves such images out.
    """
    from .convad import ConvAD
    from .occlusion import MASKING, paint

    if how != "convad" and how not in MASKING:
        raise ValueError(f"expected how='convad' or one of {MASKING}, got {how!r}")
    dev = _checks.model_device(model)
    x = x.to(dev)
    empty = torch.zeros(len(x), *x.shape[-2:], device=dev, dtype=x.dtype)
    with torch.no_grad():  # one batched pass: every image with everything hidden
        logits = ConvAD(model, rule)(x, empty) if how == "convad" else model(paint(x, empty, how))
    return logits.argmax(1).cpu().numpy()


def compare(model: nn.Module, x: torch.Tensor, methods, target=None, verbose: bool = True,
            **settings) -> dict[str, list[CausalExplanation]]:
    """:func:`search` once per occlusion method, on the same images and targets.

    Parameters
    ----------
    model, x, target
        As in :func:`~xaihelpers.causal.search`: the classifier, the normalised images
        (N, 3, H, W) and the explained classes (``None``: the predicted ones).
    methods : sequence of (how, rule)
        E.g. ``[("convad", "lenient"), ("zero", None), ("blur", None)]``.
    verbose : bool
        Progress bar over methods.
    **settings
        Passed to :func:`search`.

    Returns
    -------
    dict
        :func:`method_name` -> list of CausalExplanation (one per image).
    """
    out = {}
    for how, rule in tqdm(list(methods), desc="occlusion methods", disable=not verbose):
        out[method_name(how, rule or DEFAULT_RULE)] = search(model, x, target, how=how, rule=rule or DEFAULT_RULE,
                                                          verbose=False, **settings)
    return out


def summary(explanations: dict[str, list[CausalExplanation]], objects: object = None) -> "pandas.DataFrame":  # noqa: F821
    """Mean and standard error of size, confidence and queries per method.

    Parameters
    ----------
    explanations : dict
        What :func:`compare` returns.
    objects : array (N, H, W), optional
        Ground-truth object masks; adds ``on object``, the share of each
        explanation's pixels that lie on the object.

    Returns
    -------
    pandas.DataFrame
        One row per method; columns ``size``, ``confidence``, ``queries`` (and
        ``on object``), each with a ``se`` column.
    """
    import pandas as pd

    rows = {}
    for name, exps in explanations.items():
        cols = {"size": [e.size for e in exps], "confidence": [e.confidence for e in exps],
                "queries": [e.queries for e in exps]}
        if objects is not None:
            obj = np.asarray(objects).astype(bool)
            cols["on object"] = [float((e.mask & obj[i]).sum() / max(e.mask.sum(), 1)) for i, e in enumerate(exps)]
        row = {}
        for k, v in cols.items():
            v = np.asarray(v, dtype=float)
            row[k], row[f"{k} se"] = v.mean(), v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0
        rows[name] = row
    return pd.DataFrame(rows).T


def penultimate_features(model: nn.Module, x: torch.Tensor, masks: torch.Tensor | None = None, how: str = "plain",
                         rule: str = DEFAULT_RULE, batch_size: int = 64, pool: str = "all") -> torch.Tensor:
    """The input of the model's last linear layer, for images seen through masks.

    Parameters
    ----------
    model : nn.Module
        Classifier with a final ``nn.Linear``.
    x : torch.Tensor
        Normalised images (N, 3, H, W).
    masks : torch.Tensor, optional
        (N, H, W), 1 = visible; required unless ``how="plain"``.
    how : str
        ``"plain"`` (no occlusion), ``"convad"`` or a masking value.
    rule : str
        ConvAD's rule.
    batch_size : int
        Images per forward pass.
    pool : {"all", "active"}
        ConvAD's global pooling (see :class:`xaihelpers.convad.ConvAD`).

    Returns
    -------
    torch.Tensor
        Shape (N, D).
    """
    from .convad import ConvAD
    from .occlusion import paint

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("expected a model with a final nn.Linear layer")
    dev = _checks.model_device(model)
    feats = []
    handle = linears[-1].register_forward_pre_hook(lambda mod, inp: feats.append(inp[0].detach().flatten(1).cpu()))
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                xb = x[i:i + batch_size].to(dev)
                if how == "plain":
                    model(xb)
                elif how == "convad":
                    ConvAD(model, rule, pool=pool)(xb, masks[i:i + batch_size].to(dev))
                else:
                    model(paint(xb, masks[i:i + batch_size].to(dev), how))
    finally:
        handle.remove()
    return torch.cat(feats)


def typicality(reference: torch.Tensor, features: torch.Tensor) -> np.ndarray:
    """How far feature vectors lie from a reference set, on the reference's own scale.

    Each vector's Euclidean distance to its nearest reference vector, divided by the
    median nearest-neighbour distance *within* the reference (leaving each vector out).
    Vectors drawn like the reference score about 1; much larger values lie where the
    reference (e.g. features of unoccluded images) never goes. Unlike a distance from
    the mean, it also flags vectors that shrank towards the origin.

    Parameters
    ----------
    reference : torch.Tensor
        (R, D), e.g. features of clean images.
    features : torch.Tensor
        (N, D).

    Returns
    -------
    numpy.ndarray
        Shape (N,).
    """
    if reference.ndim != 2 or features.ndim != 2 or reference.shape[1] != features.shape[1] or len(reference) < 2:
        raise ValueError(f"expected (R, D) and (N, D) features with R >= 2, got {tuple(reference.shape)} and {tuple(features.shape)}")
    ref, feat = reference.double(), features.double()
    within = torch.cdist(ref, ref)
    within.fill_diagonal_(float("inf"))
    scale = within.min(1).values.median().clamp(min=1e-12)
    return (torch.cdist(feat, ref).min(1).values / scale).numpy()


# ----------------------------------------------------------------------------
# where ConvAD and a painted value answer differently
# ----------------------------------------------------------------------------

def occlusion_agreement(model: nn.Module, x: torch.Tensor, masks: torch.Tensor, rule: str = DEFAULT_RULE,
                        how: str = "zero", batch_size: int = 64, verbose: bool = True) -> "pandas.DataFrame":  # noqa: F821
    """Top-1 labels of every image under every mask, by ConvAD and by a painted value, side by side.

    ConvAD sets hidden pixels to 0 before the first layer, as painting ``"zero"`` does
    (0 is the mean colour in normalised space), so the two differ only where ConvAD
    switches further positions off: positions whose window saw nothing but hidden
    input (under ``"lenient"``). Where no such position exists, the two compute the
    same logits; where one does, painting lets the layers' biases and batch-norm shifts
    respond to the flat painted patch and ConvAD does not.

    Parameters
    ----------
    model : nn.Module
        Classifier in eval mode.
    x : torch.Tensor
        Normalised images (N, 3, H, W).
    masks : torch.Tensor
        (M, H, W), 1 = visible; every image is seen through every mask.
    rule : str
        ConvAD's rule.
    how : str
        The painted masking value (one of :data:`xaihelpers.occlusion.MASKING`).
    batch_size : int
        Masks per forward pass.
    verbose : bool
        Progress bar over images.

    Returns
    -------
    pandas.DataFrame
        One row per (image, mask): ``image``, ``mask``, ``hidden`` (share of pixels
        hidden), ``agree`` (same top-1 label), ``logit_gap`` (largest absolute logit
        difference), ``switched_off`` (share of positions, over all spatial layers, that
        ConvAD switched off) and ``any_off`` (whether it switched any off).
    """
    import pandas as pd

    from .convad import ConvAD, keep
    from .occlusion import MASKING, paint

    _checks.image_batch(x)
    if how not in MASKING:
        raise ValueError(f"expected how in {MASKING}, got {how!r}")
    masks = torch.as_tensor(masks)
    if masks.ndim != 3 or tuple(masks.shape[-2:]) != tuple(x.shape[-2:]):
        raise ValueError(f"expected masks of shape (M, H, W) with (H, W) = {tuple(x.shape[-2:])}, got {tuple(masks.shape)}")
    dev = _checks.model_device(model)
    ad = ConvAD(model, rule)
    rows = []
    with torch.no_grad():
        for i in tqdm(range(len(x)), desc="ConvAD against painting", disable=not verbose):
            xi = x[i:i + 1].to(dev)
            for start in range(0, len(masks), batch_size):
                part = masks[start:start + batch_size].to(dev, x.dtype)
                a = ad(xi, part)
                off = torch.stack([(~keep(f, rule)).double().flatten(1).mean(1) for f in ad.fractions], 1)
                off_cnt = torch.stack([(~keep(f, rule)).flatten(1).sum(1) for f in ad.fractions], 1).sum(1)
                sizes = torch.tensor([f[0].numel() for f in ad.fractions], dtype=torch.float64, device=off.device)
                b = model(paint(xi.expand(len(part), -1, -1, -1), part, how))
                for j in range(len(part)):
                    rows.append({"image": i, "mask": start + j, "hidden": float(1 - (part[j] > 0).double().mean()),
                                 "agree": bool(a[j].argmax() == b[j].argmax()),
                                 "logit_gap": float((a[j] - b[j]).abs().max()),
                                 "switched_off": float((off[j] * sizes).sum() / sizes.sum()),
                                 "any_off": bool(off_cnt[j] > 0)})
    return pd.DataFrame(rows)
