"""Claims of chapter 6 (all methods side by side), read from the glued values of its SMOKE run."""


import numpy as np
import pytest

from xaihelpers import compare, papers
from xaihelpers.runtime import read_table

from conftest import GLUED_REL

pytestmark = pytest.mark.notebook

OURS = {"GFI", "SRD-input", "SRD-high", "SRD-low", "causal (ConvAD)", "Activation Matching", "Activation Matching (amortised)"}


@pytest.fixture(scope="module")
def g(glued):
    return glued("06_comparison")


def _frame(g, key):
    return read_table(g, key)


def test_every_method_is_compared_on_the_same_images(g):
    tab = _frame(g, "comparison_json")
    strongest = g["strongest"].split(", ")
    assert set(tab.index) == OURS | set(strongest) and len(tab) == g["n_methods"]
    assert (tab["n"] == g["n_images"]).all()
    assert np.allclose(tab["per_fwd_bwd"], tab["seconds"] / (g["fwd_bwd_ms"] / 1000))


def test_glued_winners_are_the_tables(g):
    tab = _frame(g, "comparison_json")
    for c, higher in compare.HIGHER_IS_BETTER.items():
        best = tab[c].max() if higher else tab[c].min()
        # the glued value and the glued table went through the same rounding (runtime.rounded),
        # so the best value and its ties are the table's entries equal to it
        assert g[f"best_{c}_value"] == pytest.approx(best, rel=GLUED_REL), c
        assert set(g[f"best_{c}_methods"]) == set(tab.index[tab[c] == g[f"best_{c}_value"]]), c
    ranks = _frame(g, "ranks_json")
    assert ranks.index[0] == g["best_mean_rank"] and ranks["mean rank"].is_monotonic_increasing


def test_costs_order_as_the_methods_work(g):
    tab = _frame(g, "comparison_json")
    # one decomposition pass vs hundreds of queries or optimisation steps
    for slow in ("GFI", "causal (ConvAD)", "Activation Matching"):
        assert tab.loc[slow, "seconds"] > tab.loc["SRD-input", "seconds"], slow
    # the amortised mask network is one forward pass; per-image training is many
    assert tab.loc["Activation Matching (amortised)", "seconds"] < tab.loc["Activation Matching", "seconds"]


def test_agreement_is_a_correlation_matrix(g):
    agree = _frame(g, "agreement_json")
    a = agree.to_numpy()
    assert np.allclose(a, a.T, equal_nan=True) and np.allclose(np.diag(a), 1)
    assert agree.to_numpy()[~np.eye(len(a), dtype=bool)].max() == pytest.approx(g["agree_most_value"])


def test_claims_are_checked_by_rank(g):
    claims = _frame(g, "claims_json")
    assert len(claims) == len(papers.COMPARISON_CLAIMS) == g["claims_total"]
    assert claims["best here"].sum() == g["claims_held"]
    assert (claims["best here"] == claims["rank"].str.startswith("1 of")).all()


def test_photo_scores(g):
    photos = _frame(g, "photo_json")
    assert {"GFI", "SRD-input", "causal (ConvAD)", "Activation Matching"} <= set(photos.index)


def test_sanity_checks_cover_every_method_and_the_shuffled_network_is_at_chance(g):
    tab = _frame(g, "sanity_json")
    assert OURS <= set(tab.index) and set(g["strongest"].split(", ")) <= set(tab.index)
    assert list(tab.columns) == ["head", "upper half", "all layers", "labels shuffled"]
    # the chapter: the shuffled-label network is at chance (0.1) on the test images, within three binomial SEs
    assert abs(g["sanity_shuffled_test"] - 0.1) <= 3 * np.sqrt(0.1 * 0.9 / g["n_images"])
    photo = _frame(g, "photo_sanity_json")
    assert {"GFI", "SRD-input"} <= set(photo.index)
