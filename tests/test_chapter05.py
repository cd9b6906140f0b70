"""Claims of chapter 5 (Activation Matching), read from the glued values of its SMOKE run."""


import numpy as np
import pytest
from xaihelpers.results import read_table

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def g(glued):
    return glued("05_activation_matching")


def test_photo_masks_are_larger_than_the_papers(g):
    # the prose: with the CPU budget the photo masks are larger than the paper's 2-5 % of the pixels
    assert g["photo_area"] > 0.05


def test_robustness_table_compares_both_variants_on_the_same_images(g):
    rob = read_table(g, "rob_json")
    assert set(rob.index) == {"with gradient", "detached (reference)"}
    # each share comes with its standard error, on fills the term trains on and on fills it never saw
    for col in ("area", "survives: training fills", "survives: unseen backgrounds"):
        assert f"{col} se" in rob.columns
    # the verdicts follow the glued shares and their standard errors
    for short in ("rob", "rob_unseen"):
        gap, width = g[f"{short}_on"] - g[f"{short}_off"], 2 * np.hypot(g[f"{short}_on_se"], g[f"{short}_off_se"])
        expected = "not distinguishable at two standard errors" if abs(gap) <= width else ("higher" if gap > 0 else "lower")
        assert g[f"{short}_verdict"] == expected


def test_tv_rescaling_restores_the_authors_balance(g):
    # the rescaled weight makes the 64-px ratio equal the 224-px one: tv_matched * r64 / 500 = r224
    assert g["tv_matched"] * g["tv_ratio_64"] / 500 == pytest.approx(g["tv_ratio_224"], rel=1e-3)
    # and TV scales as one over the side for the same shape: the ratio is about 224 / 64 larger at 64 px
    assert g["tv_ratio_64"] / g["tv_ratio_224"] == pytest.approx(224 / 64, rel=0.1)


def test_figure2_explains_images_of_one_class(g):
    assert g["fig2_class"] in ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                               "Bag", "Ankle boot")


def test_equal_area_control_and_necessity_table(g):
    rep = read_table(g, "necessity_json")
    am = rep.loc["Activation Matching (per image)"]
    for k in ("GFI (top pixels, same area)", "Mask (top pixels, same area)"):
        # exactly the per-image mask's pixel count, image by image: equal means, to rounding of whole pixels
        assert abs(rep.loc[k, "area"] - am["area"]) <= 0.5 / 64 ** 2 + 1e-9


def test_loss_weights_order_the_mask_sizes(g):
    areas = g["fig4_areas"]
    # Figure 4's claim: heavier area and smoothness weights give a smaller mask than the most relaxed setting
    assert areas["compact: area x4, tv x2"] <= areas["whole object: area / 20, no robustness"]


def test_speed(g):
    assert g["speed_per_image"] > g["steps_used"]  # each step costs more than one forward+backward pass
