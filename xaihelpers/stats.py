"""Comparing methods scored on the same images: paired differences and bootstrap ranks.

Every comparison in the book scores two methods on the *same* images, so the
uncertainty of their gap is the standard error of the per-image differences
(:func:`paired`), not :math:`\\sqrt{se_a^2 + se_b^2}`, which treats the two means as
independent and is far too wide when the methods err on the same images. A ranking of
many methods carries an interval per method from a bootstrap over images
(:func:`bootstrap_ranks`): every resample re-ranks all methods on the same images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

NOT_DISTINGUISHABLE = "not distinguishable at two paired standard errors"


def _scores(values: object, name: str) -> np.ndarray:
    arr = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"expected one score per image for {name} (shape (N,)), got shape {arr.shape}")
    return arr


@dataclass(frozen=True)
class Paired:
    """The paired comparison of ``a`` and ``b`` on the same images (see :func:`paired`)."""

    mean_a: float
    mean_b: float
    diff: float  #: mean of the per-image differences a - b
    se: float  #: standard error of that mean (sample standard deviation / sqrt(n))
    z: float  #: diff / se (inf when the differences are constant and non-zero)
    n: int  #: images scored by both
    verdict: str  #: "higher", "lower" or :data:`NOT_DISTINGUISHABLE`


def paired(a: object, b: object, k: float = 2.0) -> Paired:
    r"""Compare two methods' per-image scores on the same images.

    Parameters
    ----------
    a, b : array-like of shape (N,)
        Scores of two methods on the same N images, in the same order. Images where
        either score is NaN are left out of both.
    k : float
        The gap counts when :math:`|\bar d| > k \cdot se(\bar d)`, with
        :math:`d_i = a_i - b_i`.

    Returns
    -------
    Paired
        Means, the mean difference, its paired standard error, z and the verdict.
    """
    a, b = _scores(a, "a"), _scores(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"expected scores of the same images, got {a.shape[0]} and {b.shape[0]} scores")
    keep = np.isfinite(a) & np.isfinite(b)
    n = int(keep.sum())
    if n < 2:
        raise ValueError(f"expected at least two images scored by both methods, got {n}")
    d = a[keep] - b[keep]
    diff = float(d.mean())
    se = float(d.std(ddof=1) / np.sqrt(n))
    z = diff / se if se > 0 else (0.0 if diff == 0 else float(np.sign(diff) * np.inf))
    word = NOT_DISTINGUISHABLE if abs(diff) <= k * se else ("higher" if diff > 0 else "lower")
    if k != 2.0 and word == NOT_DISTINGUISHABLE:
        word = f"not distinguishable at {k:g} paired standard errors"
    return Paired(float(a[keep].mean()), float(b[keep].mean()), diff, se, float(z), n, word)


def verdict(a: object, b: object, k: float = 2.0) -> str:
    """``"higher"``, ``"lower"`` or :data:`NOT_DISTINGUISHABLE`: :func:`paired`'s verdict alone."""
    return paired(a, b, k).verdict


def _frame(scores):
    import pandas as pd

    if isinstance(scores, pd.DataFrame):
        frame = scores.astype(float)
    elif isinstance(scores, Mapping):
        cols = {str(m): _scores(v, str(m)) for m, v in scores.items()}
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            raise ValueError(f"expected every method scored on the same images, got lengths {sorted(lengths)}")
        frame = pd.DataFrame(cols)
    else:
        raise TypeError(f"expected a DataFrame (images x methods) or a mapping of method to scores, got {type(scores).__name__}")
    if frame.shape[1] < 2:
        raise ValueError(f"expected at least two methods to rank, got {frame.shape[1]}")
    return frame.dropna(axis=0, how="any")


def bootstrap_ranks(scores, higher: bool = True, n_boot: int = 2000, level: float = 0.95, k: float = 2.0,
                    seed: int = 0) -> "pandas.DataFrame":  # noqa: F821
    """Rank methods scored on the same images, with a bootstrap interval over images.

    Parameters
    ----------
    scores : pandas.DataFrame (images x methods) or mapping of method to (N,) scores
        Per-image scores; images where any method has NaN are left out.
    higher : bool
        Whether a higher score is better.
    n_boot : int
        Bootstrap resamples of the images; each re-ranks every method on the same resample.
    level : float
        Coverage of the rank interval (percentiles of the bootstrap ranks).
    k : float
        Paired standard errors for the ``tied with best`` column.
    seed : int
        Seed of the resampling.

    Returns
    -------
    pandas.DataFrame
        One row per method, sorted by ``rank``: ``mean``, ``rank`` (1 is best, equal means
        share the lower rank), ``rank low`` and ``rank high`` (the interval), and ``tied
        with best`` (True where :func:`paired` cannot tell the method from the best one at
        ``k`` paired standard errors, the best method included).
    """
    import pandas as pd

    frame = _frame(scores)
    x = frame.to_numpy(float)
    n, m = x.shape
    if n < 2:
        raise ValueError(f"expected at least two images scored by every method, got {n}")
    sign = 1.0 if higher else -1.0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    means = x[idx].mean(axis=1) * sign  # (n_boot, m)
    # rank 1 = best; ties share the lower rank ("min")
    boot_ranks = 1 + (means[:, None, :] > means[:, :, None]).sum(axis=2)
    lo, hi = np.percentile(boot_ranks, [50 * (1 - level), 50 * (1 + level)], axis=0)
    mean = x.mean(axis=0)
    point = pd.Series(mean * sign, index=frame.columns).rank(ascending=False, method="min")
    best = frame.columns[int(np.argmax(mean * sign))]
    tied = [bool(c == best or paired(frame[best], frame[c], k).verdict.startswith("not distinguishable"))
            for c in frame.columns]
    out = pd.DataFrame({"mean": mean, "rank": point.to_numpy(int), "rank low": np.floor(lo).astype(int),
                        "rank high": np.ceil(hi).astype(int), "tied with best": tied}, index=frame.columns)
    out.attrs["n_images"] = n
    return out.sort_values(["rank", "mean"], ascending=[True, not higher])


def separated_groups(scores, higher: bool = True, k: float = 2.0) -> "pandas.DataFrame":  # noqa: F821
    """Split methods into groups that :func:`paired` tells apart, best first.

    The methods are sorted by their mean score. The best one heads group 1; walking down,
    a method that scores lower than the head of the current group by more than ``k``
    paired standard errors heads the next group, and every other method joins the current
    one. So the heads of consecutive groups differ by more than ``k`` paired standard
    errors (a chain of significant gaps), and each method is indistinguishable from the
    head of its own group.

    Parameters
    ----------
    scores : pandas.DataFrame (images x methods) or mapping of method to (N,) scores
        Per-image scores; images where any method has NaN are left out.
    higher : bool
        Whether a higher score is better.
    k : float
        Paired standard errors a gap must exceed.

    Returns
    -------
    pandas.DataFrame
        One row per method, best first: ``mean``, ``group`` (1, 2, ...), ``head`` (the
        group's head), ``diff to head`` and ``paired se`` of that difference.
    """
    import pandas as pd

    frame = _frame(scores)
    order = frame.mean().sort_values(ascending=not higher).index
    rows, group, head = [], 1, order[0]
    for name in order:
        p = paired(frame[name], frame[head], k) if name != head else None
        if p is not None and p.verdict == ("lower" if higher else "higher"):
            group, head = group + 1, name
            p = None
        rows.append({"method": name, "mean": float(frame[name].mean()), "group": group, "head": head,
                     "diff to head": 0.0 if p is None else p.diff, "paired se": 0.0 if p is None else p.se})
    out = pd.DataFrame(rows).set_index("method")
    out.attrs["n_images"] = len(frame)
    return out


def rank_interval(row) -> str:
    """``"2 (1-4)"``: a row of :func:`bootstrap_ranks` as rank and interval, for tables."""
    r, lo, hi = int(row["rank"]), int(row["rank low"]), int(row["rank high"])
    return f"{r} ({lo}-{hi})" if lo != hi else f"{r} ({lo})"
