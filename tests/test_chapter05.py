"""Claims of chapter 5 (Activation Matching), read from the glued values of its SMOKE run."""


import pytest
from xaihelpers.runtime import read_table

from conftest import GLUED_REL

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def g(glued):
    return glued("05_activation_matching")


def test_photo_masks_are_shares(g):
    assert 0 <= g["photo_area"] <= 1 and 0 <= g["photo_kept"] <= 1


def test_robustness_table(g):
    rob = read_table(g, "rob_json")
    assert set(rob.index) == {"with gradient", "detached (reference)"}
    assert ((rob >= 0) & (rob <= 1)).all().all()
    # both sides are glued at runtime.GLUE_DIGITS significant digits: equal up to one unit in the last
    assert g["rob_on"] == pytest.approx(rob.loc["with gradient", "survives on new backgrounds"], rel=GLUED_REL)


def test_benchmark_and_amortised_tables(g):
    bench = read_table(g, "bench_json")
    assert {"Activation Matching", "GFI", "Mask"} <= set(bench.index)
    assert 0 <= bench.loc["Activation Matching", "area"] <= 1
    am = read_table(g, "amortised_json")
    assert set(am.index) == {"per image", "amortised"} and (am["activation distance"] >= 0).all()
    assert 0 <= g["am_area"] <= 1 and 0 <= g["bench_kept"] <= 1


def test_loss_weights_order_the_mask_sizes(g):
    areas = g["fig4_areas"]
    # Figure 4's claim: heavier area and smoothness weights give a smaller mask than the most relaxed setting
    assert areas["compact: area x4, tv x2"] <= areas["whole object: area / 20, no robustness"]


def test_speed_and_circuit(g):
    assert g["speed_per_image"] > g["steps_used"]  # each step costs more than one forward+backward pass
    assert g["speed_amortised"] > 0
    assert 0 <= g["circuit_shared"] <= 1
