"""Claims of chapter 2 (Guided Feature Inversion), read from the glued values of its SMOKE run."""


import pytest

from xaihelpers import papers
from xaihelpers.results import read_table

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def g(glued):
    return glued("02_guided_feature_inversion")


def test_masks_keep_the_class_and_their_complement_loses_it(g):
    assert g["photo_kept"] > g["photo_removed"]
    # stage 2 optimises this difference (Eq. 3); the chapter says it ends above stage 1's
    assert g["photo_kept"] - g["photo_removed"] > g["photo_s1_kept"] - g["photo_s1_removed"]


def test_two_objects_two_explanations(g):
    assert g["duo_cat_points"] and g["duo_cup_points"]
    assert g["duo_cat_left"] > 0.5 and g["duo_cup_right"] > 0.5
    assert g["duo_corr"] < 0.5


def test_localisation_table(g):
    table = read_table(g, "loc_table_json")
    assert {"Grad", "GuidedBP", "LRP", "CAM", "Mask", "GFI (authors' layer and blur)", "GFI (benchmark setting)"} <= set(table.index)
    # the poster's whole table is beside ours: its one method we do not run has no row of ours
    ours = table.dropna(subset=["error (%)"])
    assert list(table.index.difference(ours.index)) == ["Real"]
    # the poster's numbers beside ours are the paper's (papers.py), row for row
    poster = table["poster, ImageNet (%)"].dropna()
    assert len(poster) == len(papers.GFI_LOCALISATION_ERROR)
    # every method carries its standard error and a rank interval (a bootstrap over the images)
    assert ours["s.e. (%)"].notna().all() and ours["rank (interval)"].notna().all()
    # the comparisons the prose makes are glued as paired differences of the same test images
    pairs = read_table(g, "loc_pairs_json")
    assert (pairs["n"] == g["n_loc_images"]).all() and (pairs["paired s.e."] >= 0).all()
    gfi = read_table(g, "gfi_pairs_json")
    assert {"free mask - best Eq. 4", "authors' code - benchmark setting", "last block - middle block"} <= set(gfi.index)
    assert (gfi["n"] == g["n_tune"]).all()
    # the localisation claims at default size are in test_default_run.py
