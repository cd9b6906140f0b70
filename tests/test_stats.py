"""Paired differences and bootstrap ranks (xaihelpers.stats), against hand-worked cases and scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from xaihelpers import stats


def test_paired_by_hand():
    # differences 1, 2, 3: mean 2, sample sd 1, se 1/sqrt(3)
    p = stats.paired([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert p.diff == pytest.approx(2.0)
    assert p.se == pytest.approx(1 / np.sqrt(3))
    assert p.z == pytest.approx(2 * np.sqrt(3))
    assert p.n == 3 and p.verdict == "higher"
    assert (p.mean_a, p.mean_b) == (pytest.approx(4.0), pytest.approx(2.0))


def test_paired_matches_scipys_paired_t_statistic():
    # another library: scipy's ttest_rel's statistic is diff / paired se
    rng = np.random.default_rng(1)
    a = rng.normal(size=40)
    b = a + rng.normal(0.1, 0.3, size=40)
    assert stats.paired(a, b).z == pytest.approx(scipy_stats.ttest_rel(a, b).statistic, rel=1e-9)


def test_paired_sees_what_the_unpaired_error_hides():
    # catches the finding of the review: the same images, scores that move together;
    # the unpaired error hypot(se_a, se_b) is ~0.2 here, the paired one ~0.001
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 50)
    a, b = base + 0.02 + rng.normal(0, 0.002, 50), base
    unpaired = np.hypot(a.std(ddof=1), b.std(ddof=1)) / np.sqrt(50)
    assert abs(a.mean() - b.mean()) < 2 * unpaired
    assert stats.verdict(a, b) == "higher"
    # swapped, the verdict swaps
    assert stats.verdict(b, a) == "lower"


def test_paired_not_distinguishable_and_nans():
    a = np.array([1.0, 0.0, 1.0, 0.0, np.nan])
    b = np.array([0.0, 1.0, 1.0, 0.0, 5.0])
    p = stats.paired(a, b)
    assert p.n == 4 and p.diff == pytest.approx(0.0)
    assert p.verdict == stats.NOT_DISTINGUISHABLE


def test_paired_bad_input():
    with pytest.raises(ValueError, match="same images"):
        stats.paired([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="one score per image"):
        stats.paired(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="at least two images"):
        stats.paired([1.0, np.nan], [1.0, 2.0])


def test_bootstrap_ranks_order_intervals_and_ties():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 60)
    scores = pd.DataFrame({"clear best": base + 0.5, "a": base, "a twin": base + rng.normal(0, 1e-3, 60),
                           "worst": base - 0.5})
    r = stats.bootstrap_ranks(scores, n_boot=500)
    assert list(r.index[[0, -1]]) == ["clear best", "worst"]
    assert (r.loc["clear best", ["rank", "rank low", "rank high"]] == 1).all()
    assert (r.loc["worst", ["rank low", "rank high"]] == 4).all()
    # the twins cannot be told apart: their intervals both span ranks 2 and 3
    for m in ("a", "a twin"):
        assert (r.loc[m, "rank low"], r.loc[m, "rank high"]) == (2, 3)
    assert r["tied with best"].tolist() == [True, False, False, False]
    # lower is better reverses the order
    low = stats.bootstrap_ranks(scores, higher=False, n_boot=200)
    assert low.index[0] == "worst"
    assert stats.rank_interval(r.loc["a"]) == "2 (2-3)" or stats.rank_interval(r.loc["a"]) == "3 (2-3)"


def test_bootstrap_ranks_ties_share_the_lower_rank():
    x = np.arange(10.0)
    r = stats.bootstrap_ranks({"p": x, "q": x.copy(), "r": x - 1}, n_boot=100)
    assert r.loc["p", "rank"] == r.loc["q", "rank"] == 1
    assert r.loc["r", "rank"] == 3
    assert r.loc["q", "tied with best"] and not r.loc["r", "tied with best"]


def test_bootstrap_ranks_bad_input():
    with pytest.raises(ValueError, match="same images"):
        stats.bootstrap_ranks({"a": [1, 2, 3], "b": [1, 2]})
    with pytest.raises(ValueError, match="two methods"):
        stats.bootstrap_ranks({"a": [1, 2, 3]})
    with pytest.raises(TypeError, match="DataFrame"):
        stats.bootstrap_ranks([1, 2, 3])


def test_separated_groups_chains_the_gaps_a_hand_worked_case():
    # a: always 1; b: 1 on 9 of 10 images; c: 1 on 2 of 10; d: 1 on 1 of 10 (c and d differ on one image)
    scores = {"a": [1] * 10, "b": [1] * 9 + [0], "c": [1, 1] + [0] * 8, "d": [1] + [0] * 9}
    out = stats.separated_groups(scores)
    assert list(out.index) == ["a", "b", "c", "d"]
    # b - a: one image differs, d = (0,..,0,-1): mean -0.1, se 0.1 -> not separated
    assert out.loc["b", "group"] == 1 and abs(out.loc["b", "paired se"] - 0.1) < 1e-12
    # c - a: mean -0.8, se sqrt(0.8 * 0.2 * 10 / 9 / 10) = 0.133 -> a new group headed by c
    assert out.loc["c", "group"] == 2 and out.loc["c", "head"] == "c"
    # d - c: mean -0.1, se 0.1 -> same group as c
    assert out.loc["d", "group"] == 2 and out.loc["d", "head"] == "c"
    # lower is better: the order and the chain turn round
    low = stats.separated_groups(scores, higher=False)
    assert list(low.index) == ["d", "c", "b", "a"] and low["group"].max() == 2


def test_separated_groups_one_group_when_nothing_separates():
    rng = np.random.default_rng(0)
    same = rng.random(50)
    out = stats.separated_groups({"x": same, "y": same + 1e-3 * rng.standard_normal(50), "z": same[::-1]})
    assert out["group"].max() == 1
