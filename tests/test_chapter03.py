"""Claims of chapter 3 (Sharing Ratio Decomposition, APOP), read from the glued values of its SMOKE run."""


import numpy as np
import pytest

from xaihelpers import benchmark_models
from xaihelpers.results import read_table

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
    n = g["n_apop"]
    # the paper's claim: from an empty input with the pattern frozen, far above chance (10 classes)
    chance = 0.1 + 3 * np.sqrt(0.1 * 0.9 / n)
    assert g["apop_zeros_apop_top1"] > chance and g["apop_zeros_apop_relu_top1"] > chance
    # the ordering the chapter reads in the paper's tables and in ours: Gaussian noise is the
    # hardest input for plain APOP, and APOP & relu agrees with the model at least as often as
    # plain APOP on every input (up to two standard errors of the difference of two proportions)
    agree = table["top1_agree"]
    plain = agree.xs("apop", level="mode")
    assert plain.idxmin() == "normal", plain
    for inp, p_plain in plain.items():
        p_relu = agree[(inp, "apop_relu")]
        se = np.sqrt((max(p_plain * (1 - p_plain), 0.01) + max(p_relu * (1 - p_relu), 0.01)) / n)
        assert p_relu >= p_plain - 2 * se, inp


def test_table2_and_the_pointing_game_claim(g):
    table = read_table(g, "table2_json")
    assert {"srd_low", "srd_high", "srd_input", "gradcam"} <= set(table.index)
    # Table 3.1 ranks the same methods, and its ties include each column's best
    tied = read_table(g, "table2_tied_json")
    assert set(tied.index) == set(table.index) and list(tied.columns) == list(table[tied.columns].columns)
    for col in tied.columns:
        best = table[col].idxmin() if col == "stability" else table[col].idxmax()
        assert tied.loc[best, col] == 1, col


def test_table4_covers_every_activation(g):
    table = read_table(g, "table4_json")
    assert list(table.columns) == list(benchmark_models.ACTIVATIONS) and "srd_input" in table.index
    # the chapter's claim: SRD runs on every activation unchanged (a fidelity for each of the six)
    assert np.isfinite(table.loc["srd_input"].to_numpy(dtype=float)).all()


def test_ablation_switches_change_the_maps(g):
    # unit="scalar" and vectors="post" are different decompositions: their sparseness differs
    # from the vector, pre-activation default by more than the glued rounding
    for key in ("post", "scalar"):
        assert abs(g[f"abl_spa_{key}"] - g["abl_spa_vector"]) > 1e-3, key


def test_global_view_neighbours_share_the_class(g):
    # nearest PFVs of the most relevant one come from same-class images more often than the
    # chance of 10 % (ten balanced classes), by three standard errors of the queries (one query's
    # 8 neighbours are not independent draws)
    chance = 0.1 + 3 * np.sqrt(0.1 * 0.9 / g["nn_queries"])
    assert g["nn_same_class"] > chance


@pytest.mark.parametrize("key", ["atk"])
def test_manipulation_attack_table(g, key):
    atk = read_table(g, f"{key}_json")
    from xaihelpers import attack

    assert set(atk.index) == set(attack.METHODS)
    assert (atk["largest RGB change (/255)"] > 0).all()  # the attack moved every method's images
    assert atk["label kept"].mean() >= 0.5  # the logit term keeps the prediction


def test_relevance_is_lost_only_never_created(g):
    # the chapter: conservation breaks only where a window's PFVs have zero norm, which drops relevance;
    # float32 sums over 4096 pixels stay within 1e-4 of the total
    assert g["srd_conserved_n"] > 0
    assert g["srd_conserved_max"] <= 1 + 1e-4


def test_table4_runs_the_papers_competitors_on_every_activation(g):
    # FullGrad (the paper's nearest competitor in Table 4) needs the biases of every layer: it must
    # give a fidelity for all six benchmark CNNs, like SRD (the SMOKE run keeps the first two baselines)
    table = read_table(g, "table4_json")
    assert np.isfinite(table.loc["fullgrad"].to_numpy(dtype=float)).all()


def full_sizes(stem: str) -> tuple[dict, dict, str]:
    """The parameters cell's defaults, the values after its ``if FULL:`` block, and the FULL comment."""
    import json
    import textwrap
    from pathlib import Path

    nb = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / f"{stem}.ipynb").read_text(encoding="utf-8"))
    src = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in nb["cells"] if c["cell_type"] == "code"]
    params = next(s for c, s in zip([c for c in nb["cells"] if c["cell_type"] == "code"], src)
                  if "parameters" in c.get("metadata", {}).get("tags", []))
    defaults: dict = {}
    exec(params, {}, defaults)
    setup = next(s for s in src if "\nif FULL:" in s)
    block = setup.split("\nif FULL:", 1)[1].split("\n", 1)[1]
    body = []
    for line in block.splitlines():
        if line and not line.startswith(" "):
            break
        body.append(line)
    full = dict(defaults)
    exec(textwrap.dedent("\n".join(body)), {}, full)
    comment = next(line for line in params.splitlines() if line.startswith("FULL ="))
    return defaults, full, comment


def test_full_scales_the_sizes():
    # Finding 11 of issue 32: FULL kept ATTACK_PAIRS at its default of 4 (the paper attacks 100 pairs);
    # every size the FULL branch sets must exceed the default, and the parameters cell must name it
    defaults, full, comment = full_sizes("03_sharing_ratio_decomposition")
    for name in ("ATTACK_PAIRS", "N_IMAGES", "N_APOP", "N_FIDELITY", "STABILITY_IMAGES", "FIDELITY_SUBSETS",
                 "ATTACK_ITERS", "PHOTO_ATTACK_ITERS"):
        assert full[name] > defaults[name], name
        assert f"{name}={full[name]}" in comment, name
    assert full["ATTACK_PAIRS"] >= 100  # the paper's 100 pairs
    assert full["ATTACK_PAIRS"] <= full["N_IMAGES"]  # the pairs are drawn from the Table 2 images
