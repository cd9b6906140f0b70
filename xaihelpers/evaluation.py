"""Running explainers over a data set and scoring them: the book's one evaluation harness.

:func:`explain_batches` is the one loop: it calls an explainer batch by batch and
times each call. Everything that scores explainers on a data set runs on it:

- :func:`evaluate` scores one explainer with the metrics of chapter 1 (pointing game,
  attribution localisation, sparseness, fidelity, stability, localisation error at
  every threshold), and :func:`summarise` turns the per-image scores into a table
  (the localisation error at a threshold chosen on other images, :func:`heldout_loc_error`);
- :func:`localisation_benchmark` is the GFI poster's sweep of the localisation error
  over thresholds (chapter 2);
- :func:`score` adds deletion/insertion, the smallest sufficient share and the
  planting test for chapter 6 (:func:`top_masks` cuts the maps to that share).

The metrics themselves live in :mod:`xaihelpers.metrics`.
"""

from __future__ import annotations

import time
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from . import _checks, stats
from .explainers import Explainer
from .metrics import (ALPHAS, _maps, attribution_localisation, crossfit_alpha, localisation_error, localisation_errors,
                      pointing_game, prepare, resize_maps, sparseness, top_share)
from .model_metrics import deletion_insertion, explanation_size, fidelity, stability


def verdict(a: object, b: object, k: float = 2.0) -> str:
    """Per-image scores ``a`` against ``b`` on the same images: "higher", "lower", or
    "not distinguishable at two paired standard errors" (:func:`xaihelpers.stats.paired`)."""
    return stats.verdict(a, b, k)


#: the per-image columns :func:`summarise` reports with their standard errors
TABLE_COLUMNS = ("pointing_game", "attribution_localisation", "sparseness", "fidelity", "stability")


def explain_batches(explainer: Explainer, model: nn.Module, x: torch.Tensor, target: torch.Tensor, batch_size: int = 50,
                    device=None, desc: str = "explaining", verbose: bool = False,
                    **settings) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor, torch.Tensor, float]]:
    """The loop: call ``explainer`` on ``x`` batch by batch, timing each call.

    Parameters
    ----------
    explainer : Explainer
        ``explainer(model, x, target, **settings) -> (N, h, w)``.
    model : nn.Module
        The classifier.
    x : torch.Tensor
        Normalised images (N, 3, H, W).
    target : torch.Tensor
        Class per image (N,).
    batch_size : int
        Images per call.
    device : torch.device, optional
        Where each batch goes before the call; ``None`` leaves it where it is (the
        explainers move it to the model themselves).
    desc, verbose
        Progress bar over the batches.
    **settings
        Passed to the explainer.

    Yields
    ------
    (slice, torch.Tensor, torch.Tensor, torch.Tensor, float)
        The batch's slice of ``x``, its images and targets, the explainer's maps and
        the seconds per image the call took.
    """
    from tqdm.auto import tqdm

    n = x.shape[0]
    starts = range(0, n, batch_size)
    for i in tqdm(starts, desc=desc, disable=not verbose, total=len(starts)):
        sl = slice(i, min(n, i + batch_size))
        xb, tb = (x[sl], target[sl]) if device is None else (x[sl].to(device), target[sl].to(device))
        start = time.perf_counter()
        raw = explainer(model, xb, tb, **settings)
        yield sl, xb, tb, raw, (time.perf_counter() - start) / len(tb)


def evaluate(
    explainer: Explainer,
    model: nn.Module,
    x: torch.Tensor,
    target,
    masks: object,
    boxes: object,
    stability_samples: int = 5,
    stability_images: int | None = None,
    fidelity_subsets: int = 100,
    subset_size: int = 200,
    alphas: Sequence[float] = ALPHAS,
    normalise: str | None = "max",
    clamp: bool = True,
    batch_size: int = 50,
    verbose: bool = True,
    **settings,
):
    """Score one explainer on a benchmark with ground-truth masks and boxes.

    Maps are prepared by :func:`~xaihelpers.metrics.prepare` (SRD's protocol), resized to the input, and
    scored per image with the pointing game, attribution localisation, sparseness,
    fidelity, stability and the localisation error at each threshold in ``alphas``.

    Parameters
    ----------
    explainer : callable
        ``explainer(model, x, target, **settings) -> (N, h, w)``, e.g.
        :func:`xaihelpers.explainers.get`.
    model : nn.Module
        Classifier returning logits.
    x : torch.Tensor
        Normalised images, shape (N, 3, H, W).
    target : int, sequence or None
        Explained classes (usually the true labels).
    masks : tensor, shape (N, H, W)
        Ground-truth object masks.
    boxes : tensor, shape (N, 4)
        Ground-truth boxes ``(x0, y0, x1, y1)``.
    stability_samples, fidelity_subsets, subset_size : int
        Settings of :func:`stability` and :func:`fidelity`.
    stability_images : int, optional
        Compute stability, the costliest metric (``stability_samples`` more explainer
        calls per image), for the first this many images only (nan for the others);
        default all.
    alphas : sequence of float
        Thresholds of :func:`localisation_error`.
    normalise, clamp
        Passed to :func:`prepare`.
    batch_size : int
        Images per explainer call.
    verbose : bool
        Show a progress bar.
    **settings
        Passed to the explainer.

    Returns
    -------
    (pandas.DataFrame, torch.Tensor)
        One row per image: the five metrics, ``loc_error@<alpha>`` for each alpha and
        ``seconds`` (the explainer's time per image); and the prepared maps (N, H, W).
    """
    import pandas as pd

    _checks.image_batch(x)
    n, size = x.shape[0], tuple(x.shape[-2:])
    dev = _checks.model_device(model)
    with torch.no_grad():
        logits = model(x.to(dev)) if target is None else None
    t = _checks.targets(target, n, logits).cpu()
    rows, all_maps = [], []
    name = getattr(explainer, "__name__", "explainer")
    for sl, xb, tb, raw, seconds in explain_batches(explainer, model, x, t, batch_size, desc=f"evaluating {name}",
                                                    verbose=verbose, **settings):
        maps = prepare(resize_maps(_maps(raw), size), normalise, clamp)
        df = pd.DataFrame({
            "pointing_game": pointing_game(maps, masks[sl]),
            "attribution_localisation": attribution_localisation(maps, masks[sl]),
            "sparseness": sparseness(maps),
            "fidelity": fidelity(model, xb, maps, tb, subset_size=subset_size, n_subsets=fidelity_subsets),
            "stability": np.nan,
        })
        k = len(tb) if stability_images is None else max(0, min(len(tb), stability_images - sl.start))
        if k:
            df.loc[: k - 1, "stability"] = stability(explainer, model, xb[:k], tb[:k], n_samples=stability_samples,
                                                     normalise=normalise, clamp=clamp, **settings)
        for alpha in alphas:
            df[f"loc_error@{alpha:g}"] = localisation_error(maps, boxes[sl], alpha)
        df["seconds"] = seconds
        rows.append(df)
        all_maps.append(maps.float())
    return pd.concat(rows, ignore_index=True), torch.cat(all_maps)


def pointing_games(explainers: dict, model: nn.Module, x: torch.Tensor, target, masks: object,
                   tolerances: Sequence[int] = (0, 2, 4), batch_size: int = 50, verbose: bool = True,
                   localisation: bool = False) -> dict:
    """The pointing game of several explainers on the same images, at several tolerances.

    The maps are prepared as in :func:`evaluate` (SRD's protocol, resized to the input)
    and each is scored once per tolerance by :func:`xaihelpers.metrics.pointing_game`.

    Parameters
    ----------
    explainers : dict of str to callable
        Name to ``explainer(model, x, target) -> (N, h, w)`` (e.g. :func:`xaihelpers.explainers.get`).
    model, x, target, masks
        As in :func:`evaluate`.
    tolerances : sequence of int
        Tolerances in pixels (``0``: the maximum must fall on the mask itself).
    batch_size, verbose
        Images per explainer call; a progress bar over the explainers.
    localisation : bool
        Also score the same maps by attribution localisation
        (:func:`xaihelpers.metrics.attribution_localisation`), under the key ``"localisation"``.

    Returns
    -------
    dict of int to pandas.DataFrame
        Per tolerance, the per-image hits (images x explainers), ready for
        :func:`xaihelpers.stats.separated_groups` or :func:`xaihelpers.stats.paired`;
        with ``localisation``, one more entry of the same shape.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    _checks.image_batch(x)
    if not explainers:
        raise ValueError("expected at least one explainer")
    size = tuple(x.shape[-2:])
    with torch.no_grad():
        logits = model(x.to(_checks.model_device(model))) if target is None else None
    target = _checks.targets(target, x.shape[0], logits).cpu()
    hits: dict = {int(t): {} for t in tolerances}
    if localisation:
        hits["localisation"] = {}
    for name, explainer in tqdm(explainers.items(), desc="pointing game", disable=not verbose):
        maps = torch.cat([prepare(resize_maps(_maps(raw), size)).cpu() for *_, raw, _ in
                          explain_batches(explainer, model, x, target, batch_size, verbose=False)])
        for t in hits:
            hits[t][name] = (attribution_localisation(maps, masks) if t == "localisation"
                             else pointing_game(maps, masks, tolerance=t))
    return {t: pd.DataFrame(h) for t, h in hits.items()}


def heldout_loc_error(df: "pandas.DataFrame", folds: int = 2, seed: int = 0) -> "pandas.DataFrame":  # noqa: F821
    """Per-image localisation error of :func:`evaluate`'s results, alpha chosen on held-out images.

    Reads the ``loc_error@<alpha>`` columns and scores each image at the alpha chosen
    on the other folds (:func:`xaihelpers.metrics.crossfit_alpha`). The folds depend on
    the number of images and ``seed`` only, so two methods scored on the same images
    pair image for image (:func:`xaihelpers.stats.paired`).

    Parameters
    ----------
    df : pandas.DataFrame
        Per-image results of :func:`evaluate`.
    folds, seed
        As in :func:`xaihelpers.metrics.crossfit_alpha`.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``df``: ``loc_error``, ``alpha`` and ``fold``.
    """
    cols = [c for c in df.columns if str(c).startswith("loc_error@")]
    if not cols:
        raise ValueError(f"expected loc_error@<alpha> columns (evaluate's results), got {list(df.columns)}")
    errors = df[cols].rename(columns=lambda c: float(c.split("@")[1]))
    return crossfit_alpha(errors, folds, seed)


def summarise(results: dict, folds: int = 2, seed: int = 0) -> "pandas.DataFrame":  # noqa: F821
    """Mean and standard error per explainer, with the localisation error at a held-out threshold.

    Parameters
    ----------
    results : dict of str to pandas.DataFrame
        Per-image results of :func:`evaluate`, keyed by explainer name.
    folds, seed
        Cross-fitting of the threshold (:func:`heldout_loc_error`).

    Returns
    -------
    pandas.DataFrame
        One row per explainer: the mean of each metric, ``<metric>_sem`` for its
        standard error, ``loc_error`` (each image scored at the alpha chosen on the
        other folds, :func:`heldout_loc_error`; Guided Feature Inversion's table takes
        the best alpha on the scored images, which favours uninformative maps) with
        ``loc_error_sem``, ``alpha`` (the threshold with the lowest mean error on all
        the images, the one to apply to new images), ``ms_per_image``, ``n`` and
        ``n_stability`` (images with a stability value).
    """
    import pandas as pd

    rows = {}
    for name, df in results.items():
        row = {}
        for col in TABLE_COLUMNS:
            row[col] = df[col].mean()
            row[f"{col}_sem"] = df[col].sem()
        held = heldout_loc_error(df, folds, seed)["loc_error"]
        loc = {c: df[c].mean() for c in df.columns if c.startswith("loc_error@")}
        row["loc_error"] = held.mean()
        row["loc_error_sem"] = held.sem()
        row["alpha"] = float(min(loc, key=loc.get).split("@")[1])
        row["ms_per_image"] = 1000 * df["seconds"].mean()
        row["n"] = len(df)
        row["n_stability"] = int(df["stability"].notna().sum())
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def localisation_benchmark(methods: dict, model: nn.Module, x: torch.Tensor, target, boxes, batch_size: int = 64,
                           device=None, verbose: bool = True, per_image: bool = False, folds: int = 2, seed: int = 0):
    """The poster's localisation experiment: every method's error at every threshold.

    The sweep (mean error per alpha) describes each method; to score one, choose alpha
    on other images: ``per_image=True`` adds each image's error at the alpha chosen on
    the other folds (:func:`xaihelpers.metrics.crossfit_alpha`), the same folds for
    every method, so that methods pair image for image.

    Parameters
    ----------
    methods : dict of str to callable
        Name to explainer ``f(model, x, target) -> (N, h, w)`` maps.
    model : nn.Module
        The classifier.
    x : torch.Tensor
        Normalised images (N, 3, H, W), explained in batches of ``batch_size``.
    target : sequence of int
        Class per image.
    boxes : tensor, shape (N, 4)
        Ground-truth boxes ``(x0, y0, x1, y1)``, end exclusive.
    device : torch.device, optional
        Where the batches go; default the model's device.
    verbose : bool
        Progress bar over the methods.
    per_image : bool
        Also return the held-out per-image errors.
    folds, seed
        Cross-fitting of the threshold (:func:`xaihelpers.metrics.crossfit_alpha`).

    Returns
    -------
    (pandas.DataFrame, pandas.Series) or (pandas.DataFrame, pandas.Series, dict)
        Mean localisation error, one row per method and one column per alpha
        (:data:`xaihelpers.metrics.ALPHAS`); the explainer's seconds per image; with
        ``per_image``, a dict of method name to a DataFrame with one row per image:
        ``loc_error`` (at the alpha chosen on the other folds), ``alpha`` and ``fold``.
        ``pd.DataFrame({k: v["loc_error"] for k, v in heldout.items()})`` is the
        images x methods table of :func:`xaihelpers.stats.bootstrap_ranks`.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    dev = device or _checks.model_device(model)
    rows, seconds, heldout = {}, {}, {}
    for name, fn in tqdm(methods.items(), desc="localisation", disable=not verbose):
        maps, spent = [], 0.0
        for sl, _, _, raw, sec in explain_batches(fn, model, x, torch.as_tensor(target), batch_size, device=dev):
            maps.append(raw.detach().float().cpu())
            spent += sec * (sl.stop - sl.start)
        errors = localisation_errors(torch.cat(maps), boxes, size=tuple(x.shape[-2:]))
        rows[name] = errors.mean().rename("loc_error")
        if per_image:
            heldout[name] = crossfit_alpha(errors, folds, seed)
        seconds[name] = spent / len(x)
    out = pd.DataFrame(rows).T, pd.Series(seconds, name="seconds per image")
    return (*out, heldout) if per_image else out


def top_masks(maps: object, fractions: object, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """Binary masks keeping each map's top ``fractions[i]`` of pixels, exactly that many.

    The maps are upsampled to ``size`` (:func:`xaihelpers.metrics.resize_maps`) and
    the pixels taken by :func:`xaihelpers.metrics.top_share`: ties in a seeded random
    order, the order in which :func:`xaihelpers.model_metrics.explanation_size` found the
    fraction.

    Parameters
    ----------
    maps : tensor or array, shape (N, h, w)
        Attributions, resized to ``size``.
    fractions : sequence of float, shape (N,)
        Share of pixels to keep per image, in [0, 1].
    size : (int, int)
        Output resolution (H, W).
    seed : int
        Seed of the tie-breaking.

    Returns
    -------
    torch.Tensor
        float32 masks of shape (N, H, W) with values 0 and 1.
    """
    a = resize_maps(_maps(maps), size)
    fractions = np.asarray(fractions, dtype=float).reshape(-1)
    if len(fractions) != len(a):
        raise ValueError(f"expected one fraction per map ({len(a)}), got {len(fractions)}")
    return top_share(a, fractions, seed).float()


def score(
    explainers: Mapping[str, Explainer],
    model: nn.Module,
    x: torch.Tensor,
    target,
    masks: object,
    boxes: object,
    backgrounds: torch.Tensor,
    stability_images: int | Mapping[str, int] = 16,
    stability_samples: int = 5,
    fidelity_subsets: int = 100,
    batch_size: int = 16,
    verbose: bool = True,
) -> tuple[dict, dict]:
    """Score every explainer on the same images with every metric of chapter 6.

    :func:`evaluate` gives the localisation, sparseness, fidelity
    and stability columns; added here are deletion/insertion AUC, ``size`` (the
    smallest top fraction of the map that keeps the label,
    :func:`xaihelpers.model_metrics.explanation_size`) and ``planted_survival`` (the share of
    ``backgrounds`` on which that top fraction, pasted alone, keeps the label).

    Parameters
    ----------
    explainers : mapping of str to callable
        Name to ``explainer(model, x, target) -> (N, h, w)``.
    model : nn.Module
        Classifier returning logits.
    x : torch.Tensor
        Normalised images (N, 3, H, W).
    target : sequence of int
        Explained classes.
    masks, boxes
        Ground-truth object masks (N, H, W) and boxes (N, 4).
    backgrounds : torch.Tensor
        Normalised backgrounds for the planting test (B, 3, H, W).
    stability_images : int or mapping of str to int
        Images with a stability value (the costliest metric), for all or per method.
    stability_samples, fidelity_subsets, batch_size
        Passed to :func:`evaluate`.
    verbose : bool
        Progress bar over the methods.

    Returns
    -------
    (dict of str to pandas.DataFrame, dict of str to torch.Tensor)
        Per-image scores (one row per image) and prepared maps (N, H, W) per method.
    """
    from tqdm.auto import tqdm

    from .causal_study import survival

    _checks.image_batch(x)
    t = torch.as_tensor(target).reshape(-1)
    if len(t) != len(x):
        raise ValueError(f"expected one target per image ({len(x)}), got {len(t)}")
    results, maps = {}, {}
    for name, fn in tqdm(list(explainers.items()), desc="methods", disable=not verbose):
        k = stability_images.get(name, 0) if isinstance(stability_images, Mapping) else stability_images
        df, m = evaluate(fn, model, x, t, masks, boxes, stability_samples=stability_samples,
                                 stability_images=k, fidelity_subsets=fidelity_subsets, batch_size=batch_size,
                                 verbose=False)
        df["deletion"], df["insertion"] = deletion_insertion(model, x, m, t)
        df["size"] = explanation_size(model, x, m, t)
        kept = top_masks(m, df["size"].to_numpy(), tuple(x.shape[-2:]))
        df["planted_survival"] = survival(model, x, kept.numpy(), backgrounds, t, gammas=(0.0,))[:, 0]
        results[name], maps[name] = df, m
    return results, maps


def fidelity_table(explainers: dict, models: dict, x: torch.Tensor, target: torch.Tensor, n_subsets: int = 100,
                   verbose: bool = True) -> "pandas.DataFrame":  # noqa: F821
    """Mean fidelity of several explainers on several classifiers of the same images (SRD's Table 4).

    Each map is prepared as in :func:`evaluate` and scored by
    :func:`xaihelpers.model_metrics.fidelity` (200 pixels set to 0 per subset).

    Parameters
    ----------
    explainers : dict of str to callable
        Name to ``explainer(model, x, target) -> (N, h, w)``.
    models : dict of str to nn.Module
        Classifiers taking the same normalised images, e.g. one per activation function.
    x, target : torch.Tensor
        Normalised images (N, 3, H, W) and the explained classes (N,).
    n_subsets : int
        Random pixel subsets per image.
    verbose : bool
        A progress bar over the models.

    Returns
    -------
    pandas.DataFrame
        Explainers x models: the mean over the images (images whose fidelity is undefined,
        a constant map, are left out of the mean).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    _checks.image_batch(x)
    if not explainers or not models:
        raise ValueError("expected at least one explainer and one model")
    out: dict[str, dict[str, float]] = {}
    for mname, model in tqdm(models.items(), desc="fidelity", disable=not verbose):
        dev = _checks.model_device(model)
        xd, td = x.to(dev), target.to(dev)
        out[mname] = {name: float(np.nanmean(fidelity(model, xd, prepare(fn(model, xd, td)), td, n_subsets=n_subsets)))
                      for name, fn in explainers.items()}
    return pd.DataFrame(out)[list(models)]
