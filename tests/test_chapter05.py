"""Claims of chapter 5 (Activation Matching), read from the glued values of its SMOKE run."""

import io

import pandas as pd
import pytest

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def g(glued):
    return glued("05_activation_matching")


def test_photo_masks_are_shares(g):
    assert 0 <= g["photo_area"] <= 1 and 0 <= g["photo_kept"] <= 1


def test_robustness_table(g):
    rob = pd.read_json(io.StringIO(g["rob_json"]), orient="split")
    assert set(rob.index) == {"with gradient", "detached (reference)"}
    assert ((rob >= 0) & (rob <= 1)).all().all()
    assert g["rob_on"] == rob.loc["with gradient", "survives on new backgrounds"]


def test_benchmark_and_amortised_tables(g):
    bench = pd.read_json(io.StringIO(g["bench_json"]), orient="split")
    assert {"Activation Matching", "GFI", "Mask"} <= set(bench.index)
    assert 0 <= bench.loc["Activation Matching", "area"] <= 1
    am = pd.read_json(io.StringIO(g["amortised_json"]), orient="split")
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
