"""Is a metric valid on this benchmark? The ground-truth check every metric passes before it ranks anything.

On the cluttered Fashion-MNIST benchmark (:mod:`xaihelpers.benchmark`) the evidence for
the label lies in the object mask (chapter 1 checks that the networks classify the
object). So a metric that measures whether a map points at the evidence must score the
object mask itself, used as a map, better than its inverse and better than a random
mask of the same area; if it cannot, its ranking of explainers says nothing about
them. :func:`metric_validity` scores the three maps on the same images and compares
them with paired standard errors (:func:`xaihelpers.stats.paired`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from . import _checks, stats
from .metrics import (_maps, attribution_localisation, localisation_error, pointing_game, sparseness)
from .model_metrics import deletion_insertion, explanation_size, fidelity

#: every metric :func:`metric_validity` knows, and whether a higher score is better
METRICS = {
    "pointing_game": True,
    "attribution_localisation": True,
    "sparseness": True,
    "fidelity": True,
    "deletion": False,
    "insertion": True,
    "localisation_error": False,
    "size": False,
    "stability": False,
}

#: metrics that score a property of the map that the object mask does not fix, so the check cannot judge them
NOT_TESTABLE = {
    "sparseness": "scores the map's concentration, not where it points: the object mask and a random mask "
                  "of the same area are equally sparse",
    "stability": "needs an explainer to perturb; a fixed mask does not change under noise, so all three score 0",
}


def random_masks(masks: object, seed: int = 0) -> torch.Tensor:
    """Masks of scattered random pixels, each exactly as large as the corresponding mask.

    Parameters
    ----------
    masks : tensor or array, shape (N, H, W)
        Binary masks (bool or 0/1).
    seed : int
        Seed of the draw.

    Returns
    -------
    torch.Tensor
        float32 masks (N, H, W) with values 0 and 1, mask i with as many ones as ``masks[i]``.
    """
    m = _maps(masks, "masks")
    if not torch.all((m == 0) | (m == 1)):
        raise ValueError("expected binary masks (values 0 and 1)")
    n, h, w = m.shape
    gen = torch.Generator().manual_seed(seed)
    out = torch.zeros(n, h * w)
    for i in range(n):
        k = int(m[i].sum())
        out[i, torch.randperm(h * w, generator=gen)[:k]] = 1.0
    return out.view(n, h, w)


def _boxes(m: torch.Tensor) -> torch.Tensor:
    """Bounding boxes (x0, y0, x1, y1), end exclusive, of binary masks (N, H, W)."""
    out = torch.zeros(len(m), 4, dtype=torch.int64)
    for i, mk in enumerate(m):
        ys, xs = torch.nonzero(mk > 0, as_tuple=True)
        if len(ys):
            out[i] = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return out


def metric_validity(
    model: nn.Module,
    x: torch.Tensor,
    target,
    masks: object,
    metrics: Sequence[str] = tuple(METRICS),
    seed: int = 0,
    verbose: bool = False,
    boxes: object | None = None,
    settings: Mapping[str, Mapping] | None = None,
    k: float = 2.0,
) -> "pandas.DataFrame":  # noqa: F821
    r"""Check that each metric prefers the object mask to its inverse and to random masks of the same area.

    Each metric scores three maps per image: the object mask itself, its inverse
    :math:`1 - m` and scattered random pixels of the mask's area (:func:`random_masks`).
    A metric is ``valid`` when the object mask beats both by more than ``k`` paired
    standard errors of the per-image differences (:func:`xaihelpers.stats.paired`), in
    the metric's own direction (higher or lower is better, :data:`METRICS`). Metrics
    the check cannot judge (:data:`NOT_TESTABLE`) come out not valid, with a note.

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits.
    x : torch.Tensor
        Normalised images, shape (N, 3, H, W), N >= 2.
    target : int, sequence or None
        Explained classes (the true labels on the benchmark; ``None``: the predicted ones).
    masks : tensor or array, shape (N, H, W)
        Binary ground-truth object masks.
    metrics : sequence of str
        Names from :data:`METRICS`.
    seed : int
        Seed of the random masks and of the metrics' own draws.
    verbose : bool
        Progress bar over the metrics.
    boxes : tensor, shape (N, 4), optional
        Ground-truth boxes for the localisation error; default the masks' bounding boxes.
    settings : mapping of str to dict, optional
        Keyword arguments per metric, e.g. ``{"insertion": {"blur_sigma": 1.43}}``
        (:func:`~xaihelpers.model_metrics.deletion_insertion`'s for ``"deletion"`` and
        ``"insertion"``, ``alpha`` for ``"localisation_error"``, ...).
    k : float
        Paired standard errors the object mask must win by.

    Returns
    -------
    pandas.DataFrame
        Indexed by metric: ``higher`` (whether higher is better), the mean scores
        ``object``, ``inverse`` and ``random``, the paired differences ``object -
        inverse`` and ``object - random`` with their standard errors (``se inverse``,
        ``se random``) and z-scores, ``n`` images (those where all three scores are
        defined; the paired comparisons use these), ``valid`` (bool) and ``note``.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    _checks.image_batch(x)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"expected metrics from {tuple(METRICS)}, got {unknown}")
    settings = dict(settings or {})
    m = _maps(masks, "masks").float()
    if m.shape != (x.shape[0], *x.shape[-2:]):
        raise ValueError(f"expected one mask per image of shape {(x.shape[0], *x.shape[-2:])}, got {tuple(m.shape)}")
    if x.shape[0] < 2:
        raise ValueError(f"expected at least two images for paired standard errors, got {x.shape[0]}")
    dev = _checks.model_device(model)
    with torch.no_grad():
        logits = model(x.to(dev)) if target is None else None
    t = _checks.targets(target, x.shape[0], logits).cpu()
    b = _boxes(m) if boxes is None else torch.as_tensor(boxes)
    maps = {"object": m, "inverse": 1 - m, "random": random_masks(m, seed)}
    curves: dict = {}

    def score(name: str, a: torch.Tensor) -> np.ndarray:
        kw = dict(settings.get(name, {}))
        if name == "pointing_game":
            return pointing_game(a, m, **kw)
        if name == "attribution_localisation":
            return attribution_localisation(a, m)
        if name == "sparseness":
            return sparseness(a, **kw)
        if name == "fidelity":
            return fidelity(model, x, a, t, seed=seed, **kw)
        if name in ("deletion", "insertion"):  # one call gives both: computed once for equal settings
            key = (id(a), repr(sorted(kw.items())))
            if key not in curves:
                curves[key] = deletion_insertion(model, x, a, t, seed=seed, **kw)
            return curves[key][0 if name == "deletion" else 1]
        if name == "localisation_error":
            return localisation_error(a, b, **kw)
        if name == "size":
            return explanation_size(model, x, a, t, seed=seed, **kw)
        return np.full(len(a), np.nan)  # stability: not testable with a fixed map

    rows = {}
    for name in tqdm(list(metrics), desc="metric validity", disable=not verbose):
        higher = METRICS[name]
        row = {"higher": higher}
        if name == "stability":
            rows[name] = {**row, "object": np.nan, "inverse": np.nan, "random": np.nan, "valid": False,
                          "note": NOT_TESTABLE[name]}
            continue
        s = {kind: np.asarray(score(name, a), dtype=float) for kind, a in maps.items()}
        row.update({kind: float(np.nanmean(v)) if np.isfinite(v).any() else np.nan for kind, v in s.items()})
        ok = True
        defined = np.isfinite(s["object"]) & np.isfinite(s["inverse"]) & np.isfinite(s["random"])
        row["n"] = int(defined.sum())
        for other in ("inverse", "random"):
            if row["n"] < 2:  # e.g. a correlation with a model that never moves: undefined on every image
                row[f"object - {other}"] = row[f"se {other}"] = row[f"z {other}"] = np.nan
                ok = False
                continue
            p = stats.paired(s["object"][defined], s[other][defined], k)
            row[f"object - {other}"], row[f"se {other}"], row[f"z {other}"] = p.diff, p.se, p.z
            ok &= p.verdict == ("higher" if higher else "lower")
        row["valid"] = bool(ok) and name not in NOT_TESTABLE
        row["note"] = NOT_TESTABLE.get(name, "" if ok else "uninformative: does not prefer the object mask")
        rows[name] = row
    cols = ["higher", "object", "inverse", "random", "object - inverse", "se inverse", "z inverse",
            "object - random", "se random", "z random", "n", "valid", "note"]
    out = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=cols)
    out["valid"] = out["valid"].astype(bool)
    return out


def valid_metrics(table: "pandas.DataFrame") -> list[str]:  # noqa: F821
    """The metrics of a :func:`metric_validity` table that passed, in its order."""
    if "valid" not in getattr(table, "columns", ()):
        raise ValueError("expected a table from metric_validity (with a 'valid' column)")
    return [str(i) for i in table.index[table["valid"].astype(bool)]]
