"""Claims of chapter 5 (Activation Matching), read from the glued values of its SMOKE run."""


import pytest
from xaihelpers.runtime import read_table

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
