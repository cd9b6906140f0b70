"""Claims of chapter 3 (Sharing Ratio Decomposition, APOP), read from the glued values of its SMOKE run."""


import numpy as np
import pytest

from xaihelpers import models
from xaihelpers.runtime import read_table

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def g(glued):
    return glued("03_sharing_ratio_decomposition")


def test_fast_path_is_the_literal_decomposition(g):
    assert g["toy_max_diff"] < 1e-5 and g["toy_col_sum"] < 1e-5  # Eq. 6: the ratios of one output sum to 1


def test_class_contrastive_maps_point_at_their_object(g):
    assert g["duo_cat_share"] > 0.5 and g["duo_cup_share"] > 0.5


def test_apop(g):
    table = read_table(g, "apop_table_json").set_index(["input", "mode"])
    assert table.loc[("image", "original"), "top1_agree"] == 1.0
    n = g["n_apop"]
    # the paper's claim: from an empty input with the pattern frozen, far above chance (10 classes)
    chance = 0.1 + 3 * np.sqrt(0.1 * 0.9 / n)
    assert g["apop_zeros_apop_top1"] > chance and g["apop_zeros_apop_relu_top1"] > chance
    assert ((table >= 0) & (table <= 1)).all().all()
    assert 0 <= g["binarise_min"] <= g["binarise_max"] <= 1


def test_table2_and_the_pointing_game_claim(g):
    table = read_table(g, "table2_json")
    assert {"srd_low", "srd_high", "srd_input", "gradcam"} <= set(table.index)
    for col in ("pointing_game", "attribution_localisation", "sparseness"):
        assert table[col].between(0, 1).all(), col
    assert table["fidelity"].between(-1, 1).all() and (table["stability"] >= 0).all()
    # SRD-high's pointing game is at least Grad-CAM's, up to two standard errors of a proportion
    n = g["n_table2"]
    pg = g["t2_pg_gradcam"]
    assert g["t2_pg_srd_high"] >= pg - 2 * np.sqrt(max(pg * (1 - pg), 0.05) / n)


def test_table4_covers_every_activation(g):
    table = read_table(g, "table4_json")
    assert list(table.columns) == list(models.ACTIVATIONS) and "srd_input" in table.index
    assert table.abs().le(1).all().all()
    assert 0 <= g["t4_srd_wins"] <= g["t4_n_acts"] == 6


def test_ablation_variants_are_measured(g):
    for key in ("vector", "post", "scalar"):
        assert 0 <= g[f"abl_spa_{key}"] <= 1


def test_global_view_neighbours_share_the_class(g):
    # nearest PFVs of the most relevant one come from same-class images more often than chance
    assert g["nn_same_class"] > 0.1


@pytest.mark.parametrize("key", ["atk", "atk_photo"])
def test_manipulation_attack_table(g, key):
    atk = read_table(g, f"{key}_json")
    from xaihelpers import attack

    assert list(atk.index) == list(attack.METHODS)
    assert atk[["SSIM", "PCC", "PCC with the target"]].stack().between(-1, 1).all()
    assert (atk["largest RGB change (/255)"] <= 8 + 1e-3).all()  # the perturbation stays within 8/255
    assert (atk["largest RGB change (/255)"] > 0).all()  # and the attack moved every method's images
    assert atk["label kept"].mean() >= 0.5  # the logit term keeps the prediction
    assert g[f"{key}_best_pcc"] == atk["PCC"].idxmax()
    assert g[f"{key}_srd_rank_ssim"].endswith(f"of {len(atk)}")
