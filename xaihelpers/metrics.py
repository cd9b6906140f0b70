"""Metrics that read saliency maps alone: localisation, sparseness, similarity between maps, pixel rankings.

Every metric takes maps of shape (N, H, W) (torch tensors or NumPy arrays) and
returns a NumPy array of N per-image values; ``nan`` marks an image where the
metric is undefined (e.g. an empty ground-truth mask). Chapter 1
(``notebooks/01_evaluating_explanations.ipynb``) explains each one with a picture.
The metrics that query the model are in :mod:`xaihelpers.model_metrics`, the
randomisation sanity checks in :mod:`xaihelpers.sanity`, and the harness that runs
explainers over a data set and scores them in :mod:`xaihelpers.evaluation`.

The protocol of the SRD paper (Han et al. 2024, Appendix E) is :func:`prepare`:
divide each map by its maximum, then clamp to [-1, 1]. It is applied by
:func:`xaihelpers.evaluation.evaluate` and is an explicit argument everywhere else.

Every map is scored at the input's resolution: a map computed at a layer's
resolution (Grad-CAM, SRD-low/high) is first upsampled bilinearly by
:func:`resize_maps`, the one helper for it, wherever the model is queried or maps
are compared. Ties are never broken in raster order: every pixel ranking and "top
x %" selection comes from :func:`rank_pixels` (exact top-k, ties in a seeded random
order), and the pointing game counts tied maxima by their share inside the mask.
Choices are made on images other than those scored: the localisation error's threshold
alpha is chosen on held-out images (:func:`localisation_heldout`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------
# input handling and the SRD protocol
# ----------------------------------------------------------------------------


def _maps(maps: object, name: str = "maps") -> torch.Tensor:
    if isinstance(maps, np.ndarray):
        maps = torch.from_numpy(maps)
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"expected {name} as a tensor or array of shape (N, H, W), got {type(maps).__name__}")
    if maps.ndim != 3:
        raise ValueError(f"expected {name} of shape (N, H, W), got {tuple(maps.shape)}")
    return maps.detach().double().cpu()


def _masks(masks: object, maps: torch.Tensor) -> torch.Tensor:
    if isinstance(masks, np.ndarray):
        masks = torch.from_numpy(masks)
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"expected masks as a tensor or array of shape (N, H, W), got {type(masks).__name__}")
    if masks.shape != maps.shape:
        raise ValueError(f"expected masks of the maps' shape {tuple(maps.shape)}, got {tuple(masks.shape)}")
    m = masks.detach().cpu()
    return m if m.dtype == torch.bool else m > 0.5  # no float64 copy: the masks cost one byte a pixel


def prepare(maps: object, normalise: str | None = "max", clamp: bool = True) -> torch.Tensor:
    """Normalise and clamp maps as the SRD paper's evaluation does.

    Parameters
    ----------
    maps : tensor or array, shape (N, H, W)
        Saliency maps.
    normalise : {"max", "absmax", None}
        ``"max"`` divides each map by its maximum (SRD, Appendix E; by its largest
        absolute value when the maximum is not positive); ``"absmax"`` by its largest
        absolute value (Quantus' ``normalise_by_max``); ``None`` leaves it.
    clamp : bool
        Clamp to [-1, 1] afterwards.

    Returns
    -------
    torch.Tensor
        float64 maps of shape (N, H, W) on the CPU.
    """
    a = _maps(maps)
    if normalise not in ("max", "absmax", None):
        raise ValueError(f"expected normalise in ('max', 'absmax', None), got {normalise!r}")
    if normalise is not None:
        flat = a.flatten(1)
        absmax = flat.abs().amax(1)
        scale = flat.amax(1) if normalise == "max" else absmax
        scale = torch.where(scale > 0, scale, absmax)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        a = a / scale[:, None, None]
    return a.clamp(-1, 1) if clamp else a


def resize_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize maps (N, h, w) to (N, H, W) = ``size`` (no-op when equal).

    The one way maps at a layer's resolution reach the input's in this package (every
    metric that queries the model or compares maps calls it): a continuous map is
    interpolated, not replicated in blocks (``align_corners=False``, as
    pytorch-grad-cam upsamples). Returns float32 maps when it resizes.
    """
    m = maps if isinstance(maps, torch.Tensor) else torch.as_tensor(maps)
    if tuple(m.shape[-2:]) == tuple(size):
        return m
    return F.interpolate(m[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]


# ----------------------------------------------------------------------------
# localisation
# ----------------------------------------------------------------------------


def default_tolerance(size: int) -> int:
    """The SRD paper's 15-pixel pointing-game tolerance at 224 px, scaled to ``size`` px."""
    return int(round(15 * size / 224))


def _near(mask: np.ndarray, radius: int) -> np.ndarray:
    r"""Pixels within ``radius`` of a pixel of ``mask`` (H, W): the mask dilated by a disk, its boundary included.

    A pixel :math:`p` is kept when some mask pixel :math:`q` has
    :math:`\lVert p - q \rVert^2 \le r^2`, read off the exact Euclidean distance
    transform (scipy): memory of a few (H, W) arrays, whatever the radius.
    """
    if radius <= 0 or not mask.any():
        return mask
    from scipy.ndimage import distance_transform_edt

    # distances are square roots of integers: sqrt(r^2 + 1) - r > 1 / (2r + 1), far above the slack
    return distance_transform_edt(~mask) <= radius + 1e-6


def _disk(radius: int) -> np.ndarray:
    """The disk of ``radius`` pixels, its boundary included: bool (2r + 1, 2r + 1)."""
    r = np.arange(-radius, radius + 1)
    return r[:, None] ** 2 + r[None, :] ** 2 <= radius**2


def _share_near(mask: np.ndarray, points: np.ndarray, radius: int) -> float:
    """Share of the pixels ``points`` (K, 2) that lie within ``radius`` of ``mask`` (H, W), boundary included."""
    if radius <= 0:
        return float(mask[points[:, 0], points[:, 1]].mean())
    if len(points) > 64:  # many tied maxima (a flat map): one distance transform of the whole image
        return float(_near(mask, radius)[points[:, 0], points[:, 1]].mean())
    h, w = mask.shape
    disk, near = _disk(radius), 0
    for y, x in points:  # the disk around each maximum, cut to the image
        y0, y1, x0, x1 = max(0, y - radius), min(h, y + radius + 1), max(0, x - radius), min(w, x + radius + 1)
        cut = disk[y0 - y + radius:y1 - y + radius, x0 - x + radius:x1 - x + radius]
        near += bool((mask[y0:y1, x0:x1] & cut).any())
    return near / len(points)


def pointing_game(maps: object, masks: object, tolerance: int | None = None) -> np.ndarray:
    r"""Pointing game (Zhang et al. 2018): does the map's maximum fall on the object?

    .. math:: \mu_{PG} = \frac{\mathrm{Hits}}{\mathrm{Hits} + \mathrm{Misses}}

    A hit is an image whose maximum lies inside the mask dilated by a disk of radius
    ``tolerance`` pixels (SRD, Appendix E: 15 px at 224 px): within Euclidean distance
    ``tolerance`` of a mask pixel, the disk's boundary included (TorchRay's excludes
    it). Each image is checked on its own, with the disk around each maximum (or a
    Euclidean distance transform of the mask when many pixels tie), so memory grows
    with the images and pixels, not with the tolerance: 500 maps of 224 px at 15 px
    take a few hundred MB.

    Ties: when several pixels share the maximum, the image scores the share of them
    that lie inside the (dilated) mask, the expected hit when one of them is drawn
    uniformly at random. A constant map thus scores the dilated mask's share of the
    image (chance), not 1. On maps with a unique maximum this is Quantus'
    ``PointingGame`` (which counts a hit when *any* tied maximum is inside).

    Parameters
    ----------
    maps : tensor or array, shape (N, H, W)
        Saliency maps.
    masks : tensor or array, shape (N, H, W)
        Ground-truth object masks (bool or 0/1).
    tolerance : int, optional
        Tolerance in pixels; default :func:`default_tolerance` of the map size.
        ``0`` reproduces Quantus' ``PointingGame``.

    Returns
    -------
    numpy.ndarray
        Shape (N,): 1.0 for a hit, 0.0 for a miss, the share of tied maxima inside
        the mask when the maximum is tied; nan for an empty mask or a map of nan.
    """
    a = _maps(maps)
    m = _masks(masks, a)
    tol = default_tolerance(a.shape[-1]) if tolerance is None else int(tolerance)
    if tol < 0:
        raise ValueError(f"expected tolerance >= 0 pixels, got {tolerance}")
    at_max = (a == a.flatten(1).amax(1)[:, None, None]).numpy()
    m = m.numpy()
    hit = np.full(len(a), np.nan)
    for i in range(len(a)):  # one image at a time: memory linear in the images, independent of the tolerance
        points = np.argwhere(at_max[i])
        if len(points) and m[i].any():
            hit[i] = _share_near(m[i], points, tol)
    return hit


def attribution_localisation(maps: object, masks: object) -> np.ndarray:
    r"""Attribution localisation (Kohlbrenner et al. 2020): positive relevance inside the mask.

    .. math:: \mu_{AL} = \frac{R_{in}}{R_{tot}}, \quad
              R_{in} = \sum_{i \in \text{mask}} \max(\phi_i, 0), \;
              R_{tot} = \sum_i \max(\phi_i, 0)

    A constant map scores the mask's share of the image (chance); a map equal to the
    mask scores 1.

    Parameters
    ----------
    maps, masks : tensor or array, shape (N, H, W)
        Saliency maps and ground-truth masks.

    Returns
    -------
    numpy.ndarray
        Shape (N,), in [0, 1]; nan where the mask is empty or no relevance is positive.
    """
    a = _maps(maps).clamp(min=0)
    m = _masks(masks, a)
    inside = (a * m).flatten(1).sum(1)
    total = a.flatten(1).sum(1)
    out = inside / total
    out[(total == 0) | (m.flatten(1).sum(1) == 0)] = float("nan")
    return out.numpy()


def sparseness(maps: object, absolute: bool = True) -> np.ndarray:
    r"""Sparseness as the Gini index of the map (Chalasani et al. 2020).

    .. math:: \mu_{Spa} = 1 - 2 \sum_{k=1}^{d} \frac{v_{(k)}}{\lVert v \rVert_1}
              \cdot \frac{d - k + 0.5}{d}

    with :math:`v_{(1)} \le \dots \le v_{(d)}` the sorted (absolute) values. 0 for a
    constant map, :math:`1 - 1/d` when all mass is on one pixel. The index depends on
    the number of pixels :math:`d`: score maps at the input's resolution
    (:func:`resize_maps`), as :func:`xaihelpers.evaluation.evaluate` does.

    Parameters
    ----------
    maps : tensor or array, shape (N, H, W)
        Saliency maps.
    absolute : bool
        Take absolute values first (Quantus' default); otherwise negative values are
        set to zero.

    Returns
    -------
    numpy.ndarray
        Shape (N,), in [0, 1); nan for an all-zero map.
    """
    a = _maps(maps).flatten(1)
    v = a.abs() if absolute else a.clamp(min=0)
    v, _ = v.sort(1)
    d = v.shape[1]
    k = torch.arange(1, d + 1, dtype=torch.float64)
    total = v.sum(1)
    out = 1 - 2 * ((v / total[:, None]) * ((d - k + 0.5) / d)).sum(1)
    out[total == 0] = float("nan")
    return out.numpy()


def _largest_component_box(binary: np.ndarray) -> tuple[int, int, int, int] | None:
    from skimage.measure import label

    lab = label(binary, connectivity=2)
    if lab.max() == 0:
        return None
    area = np.bincount(lab.ravel())
    area[0] = 0  # the background
    ys, xs = np.nonzero(lab == area.argmax())  # the first of equally large regions, in label order
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes ``(x0, y0, x1, y1)``, ends exclusive."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def localisation_error(maps: object, boxes: object, alpha: float = 1.0) -> np.ndarray:
    r"""Weakly supervised localisation error (as in Guided Feature Inversion's evaluation).

    Threshold the map at :math:`\alpha \cdot \mathrm{mean}(\phi)`, take the largest
    8-connected region above it, box it, and count an error when the box's IoU with
    the ground-truth box is below 0.5.

    Parameters
    ----------
    maps : tensor or array, shape (N, H, W)
        Saliency maps.
    boxes : tensor or array, shape (N, 4)
        Ground-truth boxes ``(x0, y0, x1, y1)``, ends exclusive, in the maps' pixels:
        upsample maps at a layer's resolution to the image's first (:func:`resize_maps`).
    alpha : float
        Threshold as a multiple of the map's mean.

    Returns
    -------
    numpy.ndarray
        Shape (N,): 1.0 for an error, 0.0 for a correct localisation.
    """
    a = _maps(maps).numpy()
    b = np.asarray(boxes.cpu() if isinstance(boxes, torch.Tensor) else boxes, dtype=np.float64)
    if b.shape != (a.shape[0], 4):
        raise ValueError(f"expected boxes of shape ({a.shape[0]}, 4), got {b.shape}")
    h, w = a.shape[-2:]
    if len(b) and (b[:, 2].max() > w or b[:, 3].max() > h):
        raise ValueError(f"expected boxes inside the maps ({h} x {w} pixels), got boxes reaching "
                         f"({b[:, 3].max():g}, {b[:, 2].max():g}); resize the maps to the image with resize_maps")
    out = np.ones(a.shape[0])
    for i, m in enumerate(a):
        box = _largest_component_box(m > alpha * m.mean())
        if box is not None:
            out[i] = float(box_iou(box, b[i]) < 0.5)
    return out


# ----------------------------------------------------------------------------
# similarity between maps
# ----------------------------------------------------------------------------


def pearson(a: object, b: object) -> np.ndarray:
    """Pearson correlation between two maps per image, shape (N,); nan when one is constant."""
    x, y = _maps(a, "a").flatten(1), _maps(b, "b").flatten(1)
    if x.shape != y.shape:
        raise ValueError(f"expected maps of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    x = x - x.mean(1, keepdim=True)
    y = y - y.mean(1, keepdim=True)
    den = x.norm(dim=1) * y.norm(dim=1)
    out = (x * y).sum(1) / den
    out[den == 0] = float("nan")
    return out.numpy()


def spearman(a: object, b: object) -> np.ndarray:
    """Spearman rank correlation between two maps per image, shape (N,) (ties get their mean rank)."""
    from scipy.stats import rankdata

    x, y = _maps(a, "a").flatten(1).numpy(), _maps(b, "b").flatten(1).numpy()
    return pearson(rankdata(x, axis=1)[:, None], rankdata(y, axis=1)[:, None])


def ssim(a: object, b: object, data_range: float | None = None, win_size: int = 7) -> np.ndarray:
    r"""Structural similarity (Wang et al. 2004) between two maps per image.

    Computed as scikit-image's ``structural_similarity`` with its defaults: a
    uniform ``win_size`` window, :math:`K_1 = 0.01`, :math:`K_2 = 0.03`, sample
    covariances, and the mean over the windows that fit inside the image.

    .. math:: \mathrm{SSIM} = \frac{(2\mu_a\mu_b + C_1)(2\sigma_{ab} + C_2)}
              {(\mu_a^2 + \mu_b^2 + C_1)(\sigma_a^2 + \sigma_b^2 + C_2)}

    Parameters
    ----------
    a, b : tensor or array, shape (N, H, W)
        The two sets of maps.
    data_range : float, optional
        :math:`L` in :math:`C_i = (K_i L)^2`; default: the range of the two maps
        together, per image.
    win_size : int
        Odd side of the window.

    Returns
    -------
    numpy.ndarray
        Shape (N,), in [-1, 1].
    """
    x, y = _maps(a, "a"), _maps(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"expected maps of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if win_size % 2 == 0 or win_size > min(x.shape[-2:]):
        raise ValueError(f"expected an odd win_size no larger than the maps, got {win_size}")
    if data_range is None:
        both = torch.cat([x.flatten(1), y.flatten(1)], 1)
        rng = (both.amax(1) - both.amin(1)).clamp(min=1e-12)[:, None, None, None]
    else:
        rng = torch.tensor(float(data_range), dtype=torch.float64)
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    x, y = x[:, None], y[:, None]

    def mean(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, win_size, stride=1)

    n_px = win_size**2
    cov = n_px / (n_px - 1)
    ux, uy = mean(x), mean(y)
    vx = cov * (mean(x * x) - ux * ux)
    vy = cov * (mean(y * y) - uy * uy)
    vxy = cov * (mean(x * y) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).numpy()


# ----------------------------------------------------------------------------
# ranking pixels: exact top-k with seeded ties
# ----------------------------------------------------------------------------


def rank_pixels(maps: object, seed: int = 0) -> torch.Tensor:
    """Pixel indices of each map, most relevant first, ties in a seeded random order.

    The one ranking behind every pixel ordering and "top x %" selection of the package
    (:func:`deletion_insertion`, :func:`explanation_size`, :func:`top_share`,
    :func:`xaihelpers.evaluation.top_masks`, :func:`xaihelpers.causal.extract`). Values
    are sorted exactly, in descending order; pixels of equal value follow one uniformly
    random permutation drawn from ``seed``, the same for every map of the call, so a
    map ranks the same alone or in a batch. Raster order would favour the top of the
    image whenever a map has plateaus (ReLU zeros, ReX's few distinct values).

    Parameters
    ----------
    maps : tensor or array, shape (N, H, W)
        Saliency maps.
    seed : int
        Seed of the tie-breaking permutation.

    Returns
    -------
    torch.Tensor
        int64, shape (N, H * W): flat pixel indices, most relevant first.
    """
    a = _maps(maps).flatten(1)
    perm = torch.randperm(a.shape[1], generator=torch.Generator().manual_seed(seed))
    return perm[a[:, perm].argsort(dim=1, descending=True, stable=True)]


def _counts(fractions: object, d: int) -> torch.Tensor:
    """Pixels in a top share: ``fraction * d`` rounded half up, for each fraction in [0, 1]."""
    if isinstance(fractions, torch.Tensor):
        f = fractions.detach().double().cpu()
    else:
        f = torch.from_numpy(np.array(fractions, dtype=np.float64))  # a copy: the input may be read-only
    if torch.isnan(f).any() or (f < 0).any() or (f > 1).any():
        raise ValueError(f"expected fractions of the pixels in [0, 1], got {f.tolist()}")
    return torch.floor(f * d + 0.5).long()


def top_share(maps: object, fraction: float | Sequence[float], seed: int = 0) -> torch.Tensor:
    """Masks of each map's top ``fraction`` of pixels: exactly that many, ties broken at random.

    Keeping every pixel at the threshold value instead would return far more than
    asked of a map with few distinct values; here pixels are taken in the order of
    :func:`rank_pixels`, so a 10 % request returns 10 % (rounded to whole pixels).

    Parameters
    ----------
    maps : tensor or array, shape (N, H, W)
        Saliency maps.
    fraction : float or sequence of float
        Share of pixels to keep, in [0, 1]: one for all maps, or one per map.
    seed : int
        Seed of the tie-breaking (see :func:`rank_pixels`).

    Returns
    -------
    torch.Tensor
        bool, shape (N, H, W): ``round(fraction * H * W)`` True pixels per map.
    """
    a = _maps(maps)
    n, h, w = a.shape
    k = _counts(fraction, h * w).reshape(-1)
    if len(k) not in (1, n):
        raise ValueError(f"expected one fraction, or one per map ({n}), got {len(k)}")
    order = rank_pixels(a, seed)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w).expand(n, -1))
    return (rank < k.expand(n)[:, None]).view(n, h, w)


def _top_fractions(order: torch.Tensor, fractions: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """For each fraction, a (1, h, w) mask of that share of pixels, first in ``order``: shape (F, 1, h, w)."""
    rank = torch.empty(h * w, dtype=torch.long)
    rank[order] = torch.arange(h * w)
    k = _counts(fractions, h * w)
    return (rank[None, :] < k[:, None]).float().view(-1, 1, h, w)


# RISE's insertion blur (Petsiuk et al. 2018, their evaluation code): an 11x11 kernel, sigma 5, at 224 px


# ----------------------------------------------------------------------------
# the localisation sweep of the GFI poster
# ----------------------------------------------------------------------------

# thresholds of the GFI poster's sweep, fine enough for the alpha values its table reports (1.1)
ALPHAS = tuple(float(a) for a in np.round(np.arange(0.0, 5.001, 0.1), 1))



def localisation_errors(maps: object, boxes: object, size: tuple[int, int] | None = None,
                        alphas: Sequence[float] = ALPHAS, normalise: str | None = "max") -> "pd.DataFrame":
    r"""Localisation error of every image at every threshold :math:`\alpha`: the per-image sweep.

    Maps are prepared as in :func:`xaihelpers.evaluation.evaluate` (resized to ``size``,
    divided by their maximum, clamped) before :func:`localisation_error`.

    Parameters
    ----------
    maps : tensor or array, shape (N, h, w)
        Saliency maps.
    boxes : tensor or array, shape (N, 4)
        Ground-truth boxes ``(x0, y0, x1, y1)``, end exclusive, in image pixels.
    size : (int, int), optional
        Image size the boxes refer to; default the maps' own.
    alphas : sequence of float
        Thresholds, as multiples of the map's mean (default 0, 0.1, ..., 5).
    normalise : {"max", "absmax", None}
        As in :func:`prepare`.

    Returns
    -------
    pandas.DataFrame
        Shape (N, len(alphas)): 1.0 for an error, 0.0 for a correct box; one column per
        alpha (columns named ``alpha``).
    """
    import pandas as pd

    m = _maps(maps)
    m = prepare(resize_maps(m, size or tuple(m.shape[-2:])), normalise)
    cols = pd.Index([float(a) for a in alphas], name="alpha")
    return pd.DataFrame(np.stack([localisation_error(m, boxes, a) for a in cols], axis=1).reshape(len(m), len(cols)),
                        columns=cols)


def localisation_sweep(maps: object, boxes: object, size: tuple[int, int] | None = None,
                       alphas: Sequence[float] = ALPHAS, normalise: str | None = "max") -> "pd.Series":
    r"""Mean localisation error for every threshold :math:`\alpha` (the GFI poster's sweep).

    The mean over the images of :func:`localisation_errors`. The curve describes a
    method; its minimum does not score it: the alpha that minimises it is chosen on the
    very images it is averaged over, which favours any map whose errors vary with alpha
    by chance (an uninformative map scores better than it does on new images). Score a
    method with :func:`localisation_heldout`, which chooses alpha on other images.

    Parameters
    ----------
    maps, boxes, size, alphas, normalise
        As in :func:`localisation_errors`.

    Returns
    -------
    pandas.Series
        Mean error per alpha (index ``alpha``).
    """
    return localisation_errors(maps, boxes, size, alphas, normalise).mean().rename("loc_error")


def _folds(n: int, folds: int, seed: int) -> np.ndarray:
    """Fold of each of ``n`` images: a seeded random permutation dealt round-robin, sizes within one."""
    fold = np.empty(n, dtype=int)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return fold


def crossfit_alpha(errors: "pd.DataFrame", folds: int = 2, seed: int = 0) -> "pd.DataFrame":
    r"""Score each image at the threshold :math:`\alpha` chosen on the other images (cross-fitting).

    The images are dealt into ``folds`` folds at random (seeded); for each fold the
    alpha with the lowest mean error on the *other* folds is chosen (the first, in column order,
    of tied ones), and the fold's images are scored at it. Every image is thus
    scored by a threshold chosen without it, and the mean of the returned errors is an
    honest estimate of the error of "choose alpha on data, apply it to new images".
    Choosing alpha on the scored images themselves (the minimum of
    :func:`localisation_sweep`) is biased low: an uninformative map gains from it.

    Methods compared on the same images get the same folds (they depend on the number
    of images and ``seed`` only), so their per-image errors pair.

    Parameters
    ----------
    errors : pandas.DataFrame
        Per-image errors, shape (N, A): one row per image, one column per alpha (as
        :func:`localisation_errors` returns).
    folds : int
        Number of folds, at least 2 (2: choose on one half, score the other, and swap).
    seed : int
        Seed of the assignment of images to folds.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``errors``: ``loc_error`` (the image's error at its fold's alpha),
        ``alpha`` (that alpha) and ``fold``.
    """
    import pandas as pd

    if not isinstance(errors, pd.DataFrame) or errors.shape[1] == 0:
        raise TypeError(f"expected per-image errors as a DataFrame (images x alphas), got {type(errors).__name__}"
                        f"{'' if not isinstance(errors, pd.DataFrame) else ' without columns'}")
    folds = int(folds)
    if folds < 2:
        raise ValueError(f"expected at least 2 folds (one to choose alpha on, one to score), got {folds}")
    n = len(errors)
    if n < folds:
        raise ValueError(f"expected at least {folds} images to choose alpha on held-out images, got {n}")
    e = errors.to_numpy(dtype=float)
    alphas = np.array([float(a) for a in errors.columns])
    fold = _folds(n, folds, seed)
    out_err, out_alpha = np.empty(n), np.empty(n)
    for k in range(folds):
        held = fold == k
        rest = e[~held]
        counts = (~np.isnan(rest)).sum(0)
        mean = np.where(counts > 0, np.nansum(rest, 0) / np.maximum(counts, 1), np.inf)  # nan images left out
        j = int(np.argmin(mean))  # the first of tied alphas
        out_err[held], out_alpha[held] = e[held, j], alphas[j]
    return pd.DataFrame({"loc_error": out_err, "alpha": out_alpha, "fold": fold}, index=errors.index)


def localisation_heldout(maps: object, boxes: object, size: tuple[int, int] | None = None,
                         alphas: Sequence[float] = ALPHAS, normalise: str | None = "max", folds: int = 2,
                         seed: int = 0) -> "pd.DataFrame":
    r"""Localisation error with :math:`\alpha` chosen on held-out images (:func:`crossfit_alpha`).

    ``localisation_heldout(maps, boxes)["loc_error"].mean()`` is the score that replaces
    the minimum of :func:`localisation_sweep`.

    Parameters
    ----------
    maps, boxes, size, alphas, normalise
        As in :func:`localisation_errors`.
    folds, seed
        As in :func:`crossfit_alpha`.

    Returns
    -------
    pandas.DataFrame
        One row per image: ``loc_error``, ``alpha`` and ``fold`` (see :func:`crossfit_alpha`).
    """
    return crossfit_alpha(localisation_errors(maps, boxes, size, alphas, normalise), folds, seed)
