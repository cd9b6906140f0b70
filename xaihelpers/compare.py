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

:func:`table` turns the per-image scores into means with standard errors,
:func:`ranks` ranks the methods per metric, and :func:`agreement` measures how alike
two methods' maps are (Spearman rank correlation per image, averaged).
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


def ranks(tab: "pandas.DataFrame", columns=None) -> "pandas.DataFrame":  # noqa: F821
    """Rank of each method per metric (1 is best; ties share the lower rank), and the mean rank.

    Parameters
    ----------
    tab : pandas.DataFrame
        Output of :func:`table`.
    columns : sequence of str, optional
        Metrics to rank; default every column of :data:`HIGHER_IS_BETTER` present in ``tab``.

    Returns
    -------
    pandas.DataFrame
        One row per method, one column per metric and ``mean rank``, sorted by it.
    """
    columns = [c for c in (columns or HIGHER_IS_BETTER) if c in tab.columns]
    unknown = [c for c in columns if c not in HIGHER_IS_BETTER]
    if unknown:
        raise ValueError(f"no direction known for {unknown}; expected columns of {list(HIGHER_IS_BETTER)}")
    import pandas as pd

    out = pd.DataFrame({c: tab[c].rank(ascending=not HIGHER_IS_BETTER[c], method="min") for c in columns})
    out["mean rank"] = out.mean(axis=1)
    return out.sort_values("mean rank")


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


def rank_of(tab: "pandas.DataFrame", method: str, metric: str) -> str:  # noqa: F821
    """``"k of n"``: the rank of ``method`` on ``metric`` among the rows of ``tab`` (1 is best)."""
    r = ranks(tab, [metric])
    if method not in r.index:
        raise ValueError(f"expected a method of {list(r.index)}, got {method!r}")
    if not np.isfinite(r.loc[method, metric]):
        return "not measured"
    return f"{int(r.loc[method, metric])} of {int(r[metric].notna().sum())}"


#: baselines left out on photos because they cost minutes per photo on a CPU (see the speed table)
SLOW_ON_PHOTOS = ("scorecam", "ablationcam")


def claims(tab: "pandas.DataFrame", claims_list=None) -> "pandas.DataFrame":  # noqa: F821
    """Each paper's claim of :data:`xaihelpers.papers.COMPARISON_CLAIMS` checked against ``tab``.

    Returns
    -------
    pandas.DataFrame
        Columns ``paper``, ``claim``, ``method``, ``metric``, ``here`` (mean ±
        standard error), ``rank`` ("k of n") and ``best here`` (rank 1).
    """
    import pandas as pd

    from . import papers

    rows = []
    for paper, claim, method, metric in claims_list or papers.COMPARISON_CLAIMS:
        if method not in tab.index:
            continue
        r = rank_of(tab, method, metric)
        rows.append({"paper": paper, "claim": claim, "method": method, "metric": LABELS.get(metric, metric),
                     "here": with_errors(tab.loc[[method]], [metric]).iloc[0, 0], "rank": r,
                     "best here": r.startswith("1 of")})
    return pd.DataFrame(rows)


def best(tab: "pandas.DataFrame", metric: str) -> tuple[list[str], float, str]:  # noqa: F821
    """The methods with the best mean on ``metric`` (ties included), the value, and the names in words.

    Methods tie when their values agree to :data:`xaihelpers.results.GLUE_DIGITS` significant digits.

    Returns
    -------
    (list of str, float, str)
        The tied methods in table order, their value, and e.g. ``"occlusion"``,
        ``"SRD-high and occlusion"`` or ``"7 methods, tied"``.
    """
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"expected a metric of {list(HIGHER_IS_BETTER)}, got {metric!r}")
    col = tab[metric]
    value = float(col.max() if HIGHER_IS_BETTER[metric] else col.min())
    # tied: equal in every digit the book glues (results.rounded), so the tests that read
    # the glued table find the same ties
    from .results import rounded

    names = [str(m) for m, v in zip(tab.index, col.to_numpy(float)) if rounded(float(v)) == rounded(value)]
    words = names[0] if len(names) == 1 else " and ".join(names) if len(names) == 2 else f"{len(names)} methods, tied"
    return names, value, words
