"""Claims of chapter 2 (Guided Feature Inversion), read from the glued values of its SMOKE run."""


import numpy as np
import pytest

from xaihelpers import metrics, papers
from xaihelpers.runtime import read_table

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def g(glued):
    return glued("02_guided_feature_inversion")


def test_masks_keep_the_class_and_their_complement_loses_it(g):
    assert 0 < g["photo_area"] < 1
    assert g["photo_kept"] > g["photo_removed"]
    # stage 2 optimises exactly this difference (Eq. 3), so it must end above stage 1's
    assert g["photo_kept"] - g["photo_removed"] > g["photo_s1_kept"] - g["photo_s1_removed"]


def test_two_objects_two_explanations(g):
    assert g["duo_cat_points"] and g["duo_cup_points"]
    assert g["duo_cat_left"] > 0.5 and g["duo_cup_right"] > 0.5
    assert g["duo_corr"] < 0.5


def test_blur_does_not_remove_the_benchmark_items(g):
    # the reason the chapter changes the background on the benchmark
    assert 0 < g["blur_keeps"] < g["plain_right"]


def test_localisation_table(g):
    table = read_table(g, "loc_table_json")
    assert {"Grad", "GuidedBP", "LRP", "CAM", "Mask", "GFI (authors' layer and blur)", "GFI (benchmark setting)"} <= set(table.index)
    # the poster's whole table is beside ours: its one method we do not run has no row of ours
    ours = table.dropna(subset=["error (%)"])
    assert list(table.index.difference(ours.index)) == ["Real"]
    assert ours["error (%)"].between(0, 100).all() and ours["best alpha"].isin(metrics.ALPHAS).all()
    assert (ours["ms per image"] > 0).all()
    assert table["poster, ImageNet (%)"].notna().sum() == len(papers.GFI_LOCALISATION_ERROR)
    assert g["poster_best"] == "Real" and g["poster_gfi_rank"] == f"2 of {len(papers.GFI_LOCALISATION_ERROR)}"


def test_gfi_localises_better_than_the_gradient(g):
    # the poster's first claim; the bound allows for the few images of the SMOKE run:
    # two binomial standard errors of the gradient's error rate
    n, grad = g["n_loc_images"], g["loc_grad"]
    se = np.sqrt(max(grad * (1 - grad), 0.05) / n)
    assert g["loc_gfi"] < grad + 2 * se
