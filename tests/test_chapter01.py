"""Claims of chapter 1, read from the glued values of its SMOKE run."""


import numpy as np
import pytest

from xaihelpers import baselines, models
from xaihelpers.runtime import read_table

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def g(glued):
    return glued("01_evaluating_explanations")


def test_every_benchmark_cnn_is_far_above_chance(g):
    for act in models.ACTIVATIONS:
        assert g[f"acc_{act}"] > 0.5  # chance is 0.1 for ten balanced classes


def test_relu_model_meets_the_accuracy_target(g):
    # SMOKE measures 500 test images; the full split is checked in test_benchmark_models
    assert g["acc_relu"] >= 0.85 - 3 * np.sqrt(0.85 * 0.15 / g["n_accuracy"])


def test_toy_maps_score_as_the_definitions_say(g):
    assert g["toy_al_mask"] == pytest.approx(1.0)
    assert 0 < g["toy_al_flat"] < 0.7  # the object's share of the image


def test_randomisation_check(g):
    means = {m: g[f"random_mean_{m}"] for m in baselines.METHODS}
    finals = {m: g[f"random_final_{m}"] for m in baselines.METHODS}
    # Adebayo et al. (2018): the plain gradient depends on the weights and passes
    assert means["saliency"] < 0.5
    failing = {m for m, v in means.items() if v >= 0.5}
    assert g["random_pass_count"] == len(means) - len(failing)
    assert (g["random_fail"] == "none") == (not failing)
    assert g["gbp_verdict"].startswith("fails") == ("guided_backprop" in failing)


def test_baseline_table(g):
    table = read_table(g, "baseline_table_json")
    assert set(table.index) == set(baselines.METHODS)
    assert (table["n"] == g["n_table_images"]).all() and (table["n_stability"] == g["n_stability_images"]).all()
    for col in ("pointing_game", "attribution_localisation", "fidelity", "loc_error"):
        assert g[f"best_{col}"] in baselines.METHODS
