"""Chapter 6's comparison of every method on the same images: tables, ranks, agreement, claims.

Chapter 6 (``notebooks/06_comparison.ipynb``) puts the four papers' methods and the
strongest baselines of chapter 1 side by side. Each method is an *explainer* of
:mod:`xaihelpers.explainers`; :func:`xaihelpers.evaluation.score` scores them all on
the same images with the metrics grouped by the question they answer (:data:`QUESTIONS`):

- where they point: pointing game, attribution localisation, localisation error;
- how faithful: fidelity, deletion and insertion AUC;
- how robust: stability under input noise, and the planting test of chapter 4 (the
  smallest top fraction of the map that keeps the label, pasted on backgrounds that
  carry no information);
- how sparse: sparseness (Gini) and the size of that smallest sufficient top fraction;
- how fast: seconds per image of the explainer call.

:func:`table` turns the per-image scores into means with standard errors. Every
ranking and every "best" reads the per-image scores (:func:`per_image`): methods are
scored on the same images, so :func:`rank_intervals` ranks them with a bootstrap over
images (:func:`xaihelpers.stats.bootstrap_ranks`) and calls two methods tied when the
paired standard error of their per-image differences cannot tell them apart;
:func:`ranks`, :func:`rank_of`, :func:`best` and :func:`claims` build on it, and leave
out any metric that fails the validity check on the benchmark's ground truth (it is
reported as :data:`UNINFORMATIVE`). :func:`agreement` measures how alike two methods'
maps are (Spearman rank correlation per image, averaged).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from . import metrics
from .evaluation import summarise

#: the metrics of chapter 6, grouped by the question they answer, and whether higher is better
QUESTIONS = {
    "where do they point?": {"pointing_game": True, "attribution_localisation": True, "loc_error": False},
    "how faithful?": {"fidelity": True, "deletion": False, "insertion": True},
    "how robust?": {"stability": False, "planted_survival": True},
    "how sparse?": {"sparseness": True, "size": False},
    "how fast?": {"seconds": False, "per_fwd_bwd": False},
}
HIGHER_IS_BETTER = {k: v for group in QUESTIONS.values() for k, v in group.items()}


def table(results: Mapping[str, "pandas.DataFrame"], fwd_bwd: float | None = None) -> "pandas.DataFrame":  # noqa: F821
    """Mean and standard error of every column of :func:`score` per method.

    The localisation error is taken at its best threshold, as
    :func:`xaihelpers.evaluation.summarise` does; ``per_fwd_bwd`` is the time per image
    divided by ``fwd_bwd`` (seconds of one forward+backward pass of the model).

    Returns
    -------
    pandas.DataFrame
        One row per method: each metric of :data:`HIGHER_IS_BETTER`, ``<metric>_sem``,
        ``alpha`` and ``n``.
    """
    import pandas as pd

    base = summarise(results)
    rows = {}
    for name, df in results.items():
        row = {c: base.loc[name, c] for c in ("loc_error", "loc_error_sem", "alpha", "n")}
        for c in ("pointing_game", "attribution_localisation", "fidelity", "stability", "sparseness", "deletion",
                  "insertion", "size", "planted_survival", "seconds"):
            row[c], row[f"{c}_sem"] = df[c].mean(), df[c].sem()
        if fwd_bwd:
            row["per_fwd_bwd"], row["per_fwd_bwd_sem"] = row["seconds"] / fwd_bwd, row["seconds_sem"] / fwd_bwd
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def with_errors(tab: "pandas.DataFrame", columns, digits: int = 3) -> "pandas.DataFrame":  # noqa: F821
    """The ``columns`` of :func:`table` as strings "mean ± standard error", for display."""
    import pandas as pd

    return pd.DataFrame({c: tab[c].map(lambda v: f"{v:.{digits}g}" if abs(v) >= 100 else f"{v:.{digits}f}")
                         + " ± " + tab[f"{c}_sem"].map(lambda v: f"{v:.{digits}f}" if np.isfinite(v) else "n/a")
                         for c in columns})


#: what a ranking prints for a metric that fails the validity check on the benchmark's ground truth
UNINFORMATIVE = "uninformative (fails the validity check)"


#: chapter 6's names of the metrics :func:`xaihelpers.validity.metric_validity` names otherwise
VALIDITY_NAMES = {"localisation_error": "loc_error"}


def validity_flags(table: "pandas.DataFrame") -> dict:  # noqa: F821
    """Which of chapter 6's metrics may rank, from a :func:`xaihelpers.validity.metric_validity` table.

    A metric the check judged keeps its ``valid``; a metric the check cannot judge (its
    :data:`xaihelpers.validity.NOT_TESTABLE`: a property of the map, not where it points)
    and a metric it does not list are not ruled out by it.

    Returns
    -------
    dict of str to bool
        Chapter 6's metric name (:data:`HIGHER_IS_BETTER`) to whether it may rank methods.
    """
    from .validity import NOT_TESTABLE

    if "valid" not in getattr(table, "columns", ()):
        raise ValueError("expected a table from metric_validity (with a 'valid' column)")
    flags = {m: True for m in HIGHER_IS_BETTER}
    for name, ok in table["valid"].items():
        flags[VALIDITY_NAMES.get(str(name), str(name))] = bool(ok) or str(name) in NOT_TESTABLE
    return flags


def _valid_set(valid, metrics) -> list:
    """The metrics of ``metrics`` that ``valid`` does not mark invalid (a metric it does not list is kept)."""
    if valid is None:
        return list(metrics)
    import pandas as pd

    if isinstance(valid, pd.DataFrame):
        if "valid" not in valid.columns:
            raise ValueError(f"expected a validity table with a boolean column 'valid', got columns {list(valid.columns)}")
        valid = validity_flags(valid)
    flags = {str(k): bool(v) for k, v in dict(valid).items()}
    return [m for m in metrics if flags.get(m, True)]


def is_valid(metric: str, valid=None) -> bool:
    """Whether ``valid`` (a validity table or mapping from metric to bool) lets ``metric`` rank methods."""
    return bool(_valid_set(valid, [metric]))


def per_image(results: Mapping[str, "pandas.DataFrame"], metric: str,  # noqa: F821
              fwd_bwd: float | None = None) -> "pandas.DataFrame":  # noqa: F821
    """Per-image scores of every method on ``metric``: images x methods, the input of every ranking.

    Parameters
    ----------
    results : mapping of str to pandas.DataFrame
        Per-image results of :func:`xaihelpers.evaluation.score`, keyed by method, all on
        the same images in the same order.
    metric : str
        A metric of :data:`HIGHER_IS_BETTER`. ``loc_error`` is each method's error at the
        threshold α that :func:`xaihelpers.evaluation.summarise` reports for it (the one
        :func:`table` shows); ``per_fwd_bwd`` is ``seconds / fwd_bwd``.
    fwd_bwd : float, optional
        Seconds of one forward+backward pass, needed for ``per_fwd_bwd``.

    Returns
    -------
    pandas.DataFrame
        One row per image, one column per method; NaN where a method has no value
        (stability is measured on fewer images).
    """
    import pandas as pd

    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"expected a metric of {list(HIGHER_IS_BETTER)}, got {metric!r}")
    if not isinstance(results, Mapping) or not results:
        raise TypeError(f"expected a non-empty mapping of method to per-image results, got {type(results).__name__}")
    lengths = {len(df) for df in results.values()}
    if len(lengths) > 1:
        raise ValueError(f"expected every method scored on the same images, got {sorted(lengths)} images")
    cols = {}
    alphas = summarise(results)["alpha"] if metric == "loc_error" else None
    for name, df in results.items():
        if metric == "loc_error":
            col = df[f"loc_error@{alphas[name]:g}"]
        elif metric == "per_fwd_bwd":
            if not fwd_bwd:
                raise ValueError("per_fwd_bwd needs fwd_bwd, the seconds of one forward+backward pass")
            col = df["seconds"] / fwd_bwd
        else:
            col = df[metric]
        cols[name] = col.to_numpy(dtype=float)
    return pd.DataFrame(cols)


def _rankable(frame: "pandas.DataFrame", min_images: int = 2) -> "pandas.DataFrame":  # noqa: F821
    """Methods with at least ``min_images`` values, on the images every one of them has."""
    keep = [c for c in frame.columns if frame[c].notna().sum() >= min_images]
    return frame[keep].dropna(axis=0, how="any")


def rank_intervals(results: Mapping[str, "pandas.DataFrame"], metrics=None, valid=None,  # noqa: F821
                   fwd_bwd: float | None = None, n_boot: int = 2000, seed: int = 0) -> "pandas.DataFrame":  # noqa: F821
    """Each method's rank per metric with a bootstrap interval over images (:func:`xaihelpers.stats.bootstrap_ranks`).

    Parameters
    ----------
    results : mapping of str to pandas.DataFrame
        Per-image results of :func:`xaihelpers.evaluation.score`.
    metrics : sequence of str, optional
        Metrics to rank; default every metric of :data:`HIGHER_IS_BETTER` the results hold.
    valid : pandas.DataFrame or mapping of str to bool, optional
        A :func:`xaihelpers.validity.metric_validity` table (read by :func:`validity_flags`)
        or a mapping from metric to bool; a metric marked invalid is left out (it cannot
        tell the object from its inverse or from random pixels).
    fwd_bwd : float, optional
        Seconds of one forward+backward pass, for ``per_fwd_bwd``.
    n_boot, seed
        Bootstrap resamples over images, and their seed.

    Returns
    -------
    pandas.DataFrame
        One row per (metric, method): ``metric``, ``method``, ``mean``, ``rank`` (1 is
        best, equal means share the lower rank), ``rank low``, ``rank high`` (95 %
        interval), ``tied with best`` (not distinguishable from the best at two paired
        standard errors) and ``n`` (images ranked). A method with fewer than two values on
        a metric (stability on one image) is left out of that metric.
    """
    import pandas as pd

    from . import stats

    rows = []
    for m in _valid_set(valid, _metrics(results, metrics, fwd_bwd)):
        frame = _rankable(per_image(results, m, fwd_bwd))
        if frame.shape[1] < 2 or len(frame) < 2:
            continue
        r = stats.bootstrap_ranks(frame, higher=HIGHER_IS_BETTER[m], n_boot=n_boot, seed=seed)
        rows.append(r.rename_axis("method").reset_index().assign(metric=m, n=len(frame)))
    if not rows:
        return pd.DataFrame(columns=["metric", "method", "mean", "rank", "rank low", "rank high", "tied with best", "n"])
    out = pd.concat(rows, ignore_index=True)
    return out[["metric", "method", "mean", "rank", "rank low", "rank high", "tied with best", "n"]]


def _metrics(results, metrics, fwd_bwd) -> list:
    first = next(iter(results.values()))
    have = set(first.columns) | ({"loc_error"} if any(str(c).startswith("loc_error@") for c in first.columns) else set())
    if fwd_bwd and "seconds" in have:
        have.add("per_fwd_bwd")
    wanted = list(metrics) if metrics is not None else [m for m in HIGHER_IS_BETTER if m in have]
    unknown = [m for m in wanted if m not in HIGHER_IS_BETTER]
    if unknown:
        raise ValueError(f"no direction known for {unknown}; expected metrics of {list(HIGHER_IS_BETTER)}")
    return wanted


def ranks(scores, columns=None, valid=None, fwd_bwd: float | None = None, n_boot: int = 2000,
          seed: int = 0) -> "pandas.DataFrame":  # noqa: F821
    """Rank of each method per metric (1 is best; ties share the lower rank), and the mean rank.

    Parameters
    ----------
    scores : mapping of str to pandas.DataFrame, or pandas.DataFrame
        Per-image results of :func:`xaihelpers.evaluation.score` (the book's rankings:
        ranks from :func:`rank_intervals`, and an interval for the mean rank from a
        bootstrap over images that re-ranks every metric on the same resample), or a
        table of means (:func:`table`): then ranks of the means only, with no interval.
    columns : sequence of str, optional
        Metrics to rank; default every metric of :data:`HIGHER_IS_BETTER` present.
    valid : pandas.DataFrame or mapping of str to bool, optional
        Validity of each metric (see :func:`rank_intervals`); invalid metrics are left out.
    fwd_bwd : float, optional
        Seconds of one forward+backward pass, for ``per_fwd_bwd`` from per-image results.
    n_boot, seed
        Bootstrap resamples over images, and their seed.

    Returns
    -------
    pandas.DataFrame
        One row per method, one column per metric and ``mean rank``, sorted by it; from
        per-image results also ``mean rank low`` and ``mean rank high`` (95 % interval
        over images, of the metrics measured on every image).
    """
    import pandas as pd

    if isinstance(scores, pd.DataFrame):
        cols = [c for c in (columns or HIGHER_IS_BETTER) if c in scores.columns]
        unknown = [c for c in cols if c not in HIGHER_IS_BETTER]
        if unknown:
            raise ValueError(f"no direction known for {unknown}; expected columns of {list(HIGHER_IS_BETTER)}")
        cols = _valid_set(valid, cols)
        out = pd.DataFrame({c: scores[c].rank(ascending=not HIGHER_IS_BETTER[c], method="min") for c in cols})
        out["mean rank"] = out.mean(axis=1)
        return out.sort_values("mean rank")
    long = rank_intervals(scores, columns, valid, fwd_bwd, n_boot, seed)
    methods = list(scores)
    out = long.pivot(index="method", columns="metric", values="rank").reindex(index=methods)
    out = out[[m for m in dict.fromkeys(long["metric"])]].astype(float)
    out.columns.name = None
    out["mean rank"] = out.mean(axis=1)
    lo, hi = _mean_rank_interval(scores, [m for m in out.columns if m != "mean rank"], fwd_bwd, n_boot, seed)
    out["mean rank low"], out["mean rank high"] = lo.reindex(methods), hi.reindex(methods)
    return out.sort_values("mean rank")


def _mean_rank_interval(results, metrics, fwd_bwd, n_boot, seed, level: float = 0.95):
    """95 % interval of each method's mean rank over the metrics every method has on every image."""
    import pandas as pd

    methods = list(results)
    full = []
    for m in metrics:
        frame = per_image(results, m, fwd_bwd)
        if frame.notna().all().all():
            full.append(frame.to_numpy(float) * (1.0 if HIGHER_IS_BETTER[m] else -1.0))
    if not full:
        nan = pd.Series(np.nan, index=methods)
        return nan, nan
    x = np.stack(full)  # (metrics, images, methods), higher is better
    n = x.shape[1]
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    means = x[:, idx].mean(axis=2)  # (metrics, n_boot, methods)
    rk = 1 + (means[..., None, :] > means[..., :, None]).sum(axis=-1)  # rank 1 = best, ties share the lower rank
    mean_rank = rk.mean(axis=0)  # (n_boot, methods)
    lo, hi = np.percentile(mean_rank, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return pd.Series(lo, index=methods), pd.Series(hi, index=methods)


def with_intervals(long: "pandas.DataFrame") -> "pandas.DataFrame":  # noqa: F821
    """:func:`rank_intervals` as a display table: methods x metrics of ``"rank (low-high)"``, ``=`` marking a tie with the best."""
    from . import stats

    shown = long.assign(shown=[stats.rank_interval(r) + (" =" if r["tied with best"] else "") for _, r in long.iterrows()])
    out = shown.pivot(index="method", columns="metric", values="shown")
    out = out.reindex(index=list(dict.fromkeys(long["method"])), columns=list(dict.fromkeys(long["metric"])))
    out.columns.name = None
    return out.rename(columns=LABELS).fillna("")


def tied_with_best(results: Mapping[str, "pandas.DataFrame"], metric: str, valid=None,  # noqa: F821
                   fwd_bwd: float | None = None) -> list[str]:
    """Methods not distinguishable from the best mean at two paired standard errors (the best included)."""
    r = rank_intervals(results, [metric], valid, fwd_bwd, n_boot=200)
    return [str(m) for m in r.loc[r["tied with best"], "method"]]

def agreement(maps: Mapping[str, object]) -> "pandas.DataFrame":  # noqa: F821
    """Mean Spearman rank correlation between every two methods' maps of the same images.

    Parameters
    ----------
    maps : mapping of str to (N, H, W) maps
        Prepared maps per method, all of the same images and shape.

    Returns
    -------
    pandas.DataFrame
        Symmetric (methods x methods), 1 on the diagonal; nan where a map is constant
        on every image.
    """
    import pandas as pd

    names = list(maps)
    out = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            with np.errstate(invalid="ignore"):
                r = float(np.nanmean(metrics.spearman(maps[a], maps[b]))) if len(maps[a]) else float("nan")
            out.loc[a, b] = out.loc[b, a] = r
    return out


LABELS = {"pointing_game": "pointing game", "attribution_localisation": "attribution localisation",
          "loc_error": "localisation error", "fidelity": "fidelity", "deletion": "deletion AUC",
          "insertion": "insertion AUC", "stability": "stability (max-sensitivity)",
          "planted_survival": "planted: label kept", "sparseness": "sparseness (Gini)",
          "size": "smallest sufficient share", "seconds": "seconds per image", "per_fwd_bwd": "/ forward+backward"}


#: baselines left out on photos because they cost minutes per photo on a CPU (see the speed table)
SLOW_ON_PHOTOS = ("scorecam", "ablationcam")


def rank_of(results: Mapping[str, "pandas.DataFrame"], method: str, metric: str, valid=None,  # noqa: F821
            fwd_bwd: float | None = None) -> str:
    """``"2 (1-4) of 11"``: the rank of ``method`` on ``metric`` with its bootstrap interval over images.

    Parameters
    ----------
    results : mapping of str to pandas.DataFrame
        Per-image results of :func:`xaihelpers.evaluation.score`.
    method, metric : str
        The method and a metric of :data:`HIGHER_IS_BETTER`.
    valid : pandas.DataFrame or mapping of str to bool, optional
        Validity of each metric; an invalid metric gives :data:`UNINFORMATIVE`.
    fwd_bwd : float, optional
        Seconds of one forward+backward pass, for ``per_fwd_bwd``.

    Returns
    -------
    str
        ``"k (lo-hi) of n"`` (``"k (lo) of n"`` when the interval is one rank),
        :data:`UNINFORMATIVE`, or ``"not measured"`` where the method has fewer than
        two values on the metric.
    """
    from . import stats

    if method not in results:
        raise ValueError(f"expected a method of {list(results)}, got {method!r}")
    if not is_valid(metric, valid):
        return UNINFORMATIVE
    r = rank_intervals(results, [metric], None, fwd_bwd)
    row = r[r["method"] == method]
    if row.empty:
        return "not measured"
    return f"{stats.rank_interval(row.iloc[0])} of {len(r)}"


def best(results: Mapping[str, "pandas.DataFrame"], metric: str, valid=None,  # noqa: F821
         fwd_bwd: float | None = None) -> tuple[list[str], float, str]:
    """The best method on ``metric`` and every method tied with it, the best mean, and the names in words.

    Methods tie with the best when :func:`xaihelpers.stats.paired` cannot tell them from it
    at two paired standard errors on the same images.

    Parameters
    ----------
    results : mapping of str to pandas.DataFrame
        Per-image results of :func:`xaihelpers.evaluation.score`.
    metric : str
        A metric of :data:`HIGHER_IS_BETTER`.
    valid : pandas.DataFrame or mapping of str to bool, optional
        Validity of each metric: an invalid metric names no method.
    fwd_bwd : float, optional
        Seconds of one forward+backward pass, for ``per_fwd_bwd``.

    Returns
    -------
    (list of str, float, str)
        The best method first, then those tied with it in rank order; the best mean; and
        e.g. ``"occlusion"``, ``"SRD-high and occlusion"``, ``"7 methods, tied"``, or
        :data:`UNINFORMATIVE` (no names, NaN) for an invalid metric.
    """
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"expected a metric of {list(HIGHER_IS_BETTER)}, got {metric!r}")
    if not is_valid(metric, valid):
        return [], float("nan"), UNINFORMATIVE
    r = rank_intervals(results, [metric], None, fwd_bwd, n_boot=200)
    if r.empty:
        return [], float("nan"), "not measured"
    tied = r[r["tied with best"]]
    names = [str(m) for m in tied["method"]]
    value = float(r["mean"].iloc[0])
    words = names[0] if len(names) == 1 else " and ".join(names) if len(names) == 2 else f"{len(names)} methods, tied"
    return names, value, words


def claims(results: Mapping[str, "pandas.DataFrame"], valid=None, claims_list=None,  # noqa: F821
           fwd_bwd: float | None = None) -> "pandas.DataFrame":  # noqa: F821
    """Each paper's claim of :data:`xaihelpers.papers.COMPARISON_CLAIMS` checked on the per-image ``results``.

    A claim of being best holds when the method is the best or not distinguishable from
    the best at two paired standard errors; it cannot be tested on a metric that fails
    the validity check.

    Returns
    -------
    pandas.DataFrame
        Columns ``paper``, ``claim``, ``method``, ``metric``, ``here`` (mean ± standard
        error), ``rank`` ("k (lo-hi) of n", the 95 % bootstrap interval over images) and
        ``verdict`` ("holds", "does not hold" or :data:`UNINFORMATIVE`).
    """
    import pandas as pd

    from . import papers

    rows = []
    for paper, claim, method, metric in claims_list or papers.COMPARISON_CLAIMS:
        if method not in results:
            continue
        scores = per_image(results, metric, fwd_bwd)[method]
        here = f"{scores.mean():.3f} ± {scores.sem():.3f}" if scores.notna().sum() > 1 else f"{scores.mean():.3f} ± n/a"
        if not is_valid(metric, valid):
            word = UNINFORMATIVE
        else:
            names = best(results, metric, fwd_bwd=fwd_bwd)[0]
            word = "holds" if method in names else "does not hold" if names else "not measured"
        rows.append({"paper": paper, "claim": claim, "method": method, "metric": LABELS.get(metric, metric),
                     "here": here, "rank": rank_of(results, method, metric, valid, fwd_bwd), "verdict": word})
    return pd.DataFrame(rows)
