"""Claims of chapter 0, read from the glued values of its SMOKE run."""

import pytest

CAT_CLASSES = {281, 282, 283, 284, 285}

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def g(glued):
    return glued("00_getting_started")


def test_coffee_is_espresso_and_chelsea_a_cat(g):
    assert g["top1_coffee"] == "espresso" and g["top1_index_coffee"] == 967
    assert g["top1_index_chelsea"] in CAT_CLASSES


def test_cat_runners_up_are_cats(g):
    assert set(g["top3_index_chelsea"]) <= CAT_CLASSES


def test_model_size_is_lite0(g):
    assert 4.6 < g["n_params_millions"] < 4.7


def test_hand_written_grad_cam_equals_the_package(g):
    assert g["gradcam_rel_gap"] < 1e-5


def test_top1_fits_the_labelled_photos(g):
    assert g["n_labelled"] >= 2
    assert g["n_top1_fits"] >= 2  # coffee and chelsea at least


def test_coffee_grad_cam_peak_is_on_the_cup(g):
    row, col = g["coffee_peak"]
    # the cup fills the centre of the 224x224 crop of skimage's coffee photo
    assert 0.15 < row < 0.85 and 0.15 < col < 0.85
