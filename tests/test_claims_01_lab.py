"""Claims of the chapter 1 lab (01_evaluating_explanations) at the size a reader sees, checked
against the record of its default run (see ``test_default_run.py``: ``make book``, then
``python scripts/record_defaults.py``). Each test quotes the sentences it pins."""

from __future__ import annotations

import numpy as np
import pytest

from xaihelpers import baselines, benchmark_models
from xaihelpers.results import read_table
from xaihelpers.validity import NOT_TESTABLE

from test_default_run import record, se, UPPER_BODY  # noqa: E402

EDGES = "edge detector (reference)"
RISE_ROWS = ("deletion, RISE's zero fill", "insertion, RISE's blur")
# the baseline table's columns and their validity rows (Table 1.8 against Table 1.5), higher is better
COLUMNS = {"pointing_game": ("pointing_game", True), "attribution_localisation": ("attribution_localisation", True),
           "sparseness": ("sparseness", True), "fidelity": ("fidelity", True), "stability": ("stability", False),
           "loc_error": ("localisation_error", False)}
# Du et al. 2018, the poster's quantitative evaluation table, row "Error (%)": Grad, GuidedBP, LRP, CAM
POSTER_LOC_ERROR = {"saliency": 0.417, "guided_backprop": 0.420, "lrp_epsilon_plus": 0.578, "cam": 0.481}


@pytest.fixture(scope="module")
def d1():
    return record("01_evaluating_explanations")["glued"]


# ---------------------------------------------------------------- the benchmark CNNs (Tables 1.1, 1.2)

def test_ch1_the_hardest_class_is_an_upper_body_garment(d1):
    # "Plain Fashion-MNIST has the same weak spot: its upper-body garments look alike"
    # (bug caught: a confusion matrix read by columns instead of rows, or labels shifted by one)
    assert d1["worst_class"] in UPPER_BODY


def test_ch1_accuracies_as_the_text_reads_them(d1):
    # "every network is far above chance (one class in ten), Tanh trails the others, and the ReLU
    # network ... is within a point of the best" (bug caught: a checkpoint loaded for the wrong
    # activation, or accuracies counted over the wrong labels)
    acc = {a: d1[f"acc_{a}"] for a in benchmark_models.ACTIVATIONS}
    n = d1["n_accuracy"]
    assert min(acc.values()) > 0.1 + 10 * se(0.1, n), acc
    # "trails": each other network above Tanh by more than two standard errors of the gap; the
    # images are the same, so the unpaired error used here is the larger, conservative one
    tanh = acc.pop("tanh")
    for a, v in acc.items():
        assert v - tanh > 2 * np.hypot(se(v, n), se(tanh, n)), (a, v, tanh)
    assert max(acc.values()) - acc["relu"] < 0.01, acc


def test_ch1_the_networks_classify_the_object(d1):
    # "removing the clutter costs none of the six networks more than three paired standard errors
    # ..., and with the clutter alone every network is within three standard errors of chance";
    # "the premise ... holds for all six" (bug caught: a benchmark whose networks read the clutter)
    # The paired comparison needs the per-image answers, which only the chapter's cell has: its verdict
    assert d1["gt_object_verdict"] == "none of them more than three paired standard errors"
    assert d1["gt_premise"] == "holds for all of them"
    gt = read_table(d1, "ground_truth_json")
    n = d1["n_ground_truth"]
    assert set(gt.index) == set(benchmark_models.ACTIVATIONS)
    # the clutter verdict, checked from the table itself at chance = 1/10 with the binomial error
    assert ((gt["clutter alone"] - 0.1).abs() <= 3 * np.sqrt(0.09 / n)).all(), gt


# ---------------------------------------------------------------- the validity check (Tables 1.4, 1.5)

def _wins(row, other: str) -> bool:
    """Whether the object mask beats ``other`` by more than two paired standard errors, in the metric's direction."""
    d, s = row[f"object - {other}"], row[f"se {other}"]
    return bool(d > 2 * s) if row["higher"] else bool(d < -2 * s)


def _z(row, other: str) -> float:
    d, s = abs(row[f"object - {other}"]), row[f"se {other}"]
    return float(d / s) if s > 0 else (np.inf if d > 0 else 0.0)


def test_ch1_blur_leaves_the_class_as_the_text_says(d1):
    # "After RISE's scaled blur the network still gets most of the evaluation images right ...
    # A blur of 5 px ... leaves far fewer, by many paired standard errors" (Table 1.4)
    # bug caught: a blur that is not applied, or a gap read against the unpaired error
    # sqrt(se_a^2 + se_b^2), which ignores that the images are the same
    b = read_table(d1, "blur_acc_json")
    n = d1["n_validity_images"]
    assert b.loc["RISE's blur, scaled", "share right"] > 0.5 + 2 * se(0.5, n), b
    gap, s = b.loc["the package's blur", "gap to RISE's"], b.loc["the package's blur", "paired se"]
    assert gap > 3 * s, b


def test_ch1_every_testable_metric_passes_and_rises_settings_fare_worse(d1):
    # "Every metric that can be tested this way passes at the package's defaults" (bug caught: a
    # metric that cannot tell the object from its controls ranking explainers all the same)
    v = read_table(d1, "validity_json")
    testable = [m for m in v.index if m not in NOT_TESTABLE and m not in RISE_ROWS]
    assert {"deletion", "insertion", "fidelity", "pointing_game"} <= set(testable)
    for m in testable:  # recomputed from the differences, not read from the table's verdict
        assert _wins(v.loc[m], "inverse") and _wins(v.loc[m], "random"), m
    # "RISE's settings fare worse: zero-fill deletion cannot tell the object mask from scattered
    # random pixels" (bug caught: deletion with zero fill, whose speckle removes the class wherever
    # it goes, taken as a faithfulness test; issue 32, finding 3)
    assert not _wins(v.loc["deletion, RISE's zero fill"], "random")
    # "insertion from RISE's blur passes by differences several times smaller than from the
    # package's blur": the two-standard-error intervals do not meet, and the ratio is below a third
    # (bug caught: insertion started from a blur that leaves the class, read as a strong test)
    ins, default = v.loc["insertion, RISE's blur"], v.loc["insertion"]
    for other in ("inverse", "random"):
        assert _wins(ins, other), other
        d, s = ins[f"object - {other}"], ins[f"se {other}"]
        d0, s0 = default[f"object - {other}"], default[f"se {other}"]
        assert d + 2 * s < d0 - 2 * s0 and d < d0 / 3, (other, d, s, d0, s0)



def test_ch1_validity_claim_fails_with_the_mask_and_its_controls_swapped(d1):
    # the claim test can fail (finding 10): with the object mask and its controls swapped (every
    # paired difference negated) no testable metric passes
    v = read_table(d1, "validity_json")
    testable = [m for m in v.index if m not in NOT_TESTABLE and m not in RISE_ROWS]
    for m in testable:
        row = v.loc[m].copy()
        for other in ("inverse", "random"):
            row[f"object - {other}"] = -row[f"object - {other}"]
        assert not _wins(row, "inverse") and not _wins(row, "random"), m

def test_ch1_validity_margins_follow_the_prose(d1):
    # "The localisation metrics pass by wide margins, those that ask the model by smaller ones,
    # deletion with the blur fill closest" (bug caught: a
    # validity check that passes a metric whatever the map, and prose that reads margins the table lacks)
    v = read_table(d1, "validity_json")
    margin = {m: min(_z(v.loc[m], o) for o in ("inverse", "random")) for m in v.index if m not in NOT_TESTABLE}
    localisation = ("pointing_game", "attribution_localisation", "localisation_error")
    model_based = ("fidelity", "deletion", "insertion", "size")
    assert min(margin[m] for m in localisation) > max(margin[m] for m in model_based), margin
    assert min(localisation + model_based, key=margin.get) == "deletion", margin
    # "a random mask of the object's area is exactly as sparse": sparseness cannot be tested
    assert abs(v.loc["sparseness", "object - random"]) < 1e-6


# ---------------------------------------------------------------- randomisation (Tables 1.6, 1.7)

def test_ch1_randomisation_on_absolute_maps_reads_as_the_text_says(d1):
    # bug caught: a cascade that re-initialises nothing (every method would keep its map) or
    # everything at once (every method would pass at once)
    tab = read_table(d1, "sanity_json")
    methods = tab.drop(index=EDGES)
    assert set(methods.index) == set(baselines.METHODS)
    # "once every layer is random, no map keeps much of its trained form"
    assert methods["all layers random"].abs().max() < 0.5, methods["all layers random"]
    mean = methods["mean over the cascade"]
    fail = set(mean.index[mean >= 0.5])
    # "Most methods pass. On absolute maps Score-CAM and the two LRP variants fail, and LayerCAM fails
    # by a hair; Grad-CAM++ and Guided Backprop pass by a hair, so ... these three could fall either way"
    assert len(fail) < len(mean) / 2, fail
    assert fail == {"scorecam", "lrp_epsilon_plus", "lrp_epsilon_plus_flat", "layercam"}, mean
    hair, clear = ("layercam", "gradcam_pp", "guided_backprop"), ("scorecam", "lrp_epsilon_plus", "lrp_epsilon_plus_flat")
    assert max(abs(mean[m] - 0.5) for m in hair) < min(abs(mean[m] - 0.5) for m in clear), mean
    # "The edge detector, which never looks at the network, keeps its map whatever the weights"
    assert tab.loc[EDGES, "mean over the cascade"] > 0.99 and tab.loc[EDGES, "all layers random"] > 0.99


def test_ch1_signed_randomisation_reads_what_absolute_hides(d1):
    # bug caught: a sanity check that scores |maps| only (issue 32, finding 2), or a sign lost on the way
    tab = read_table(d1, "sanity_json")
    # "The two LRP variants pass on them" (the signed maps)
    for m in ("lrp_epsilon_plus", "lrp_epsilon_plus_flat"):
        assert abs(tab.loc[m, "signed mean"]) < 0.5 <= tab.loc[m, "mean over the cascade"], m
    # "Input x Gradient keeps part of its form on absolute maps but almost none on signed ones"
    ixg = tab.loc["input_x_gradient"]
    assert ixg["absolute − signed"] > 2 * ixg["se"] and abs(ixg["signed mean"]) < 0.05, ixg
    # "Methods whose maps are non-negative by construction (the pytorch-grad-cam variants ... and the
    # gradient's magnitude) score the same both ways"
    for m in baselines.GRADCAM_METHODS + ("saliency",):
        assert abs(tab.loc[m, "absolute − signed"]) < 1e-6, m
    # "CAM, written here without the ReLU, does not"
    assert abs(tab.loc["cam", "absolute − signed"]) > 2 * tab.loc["cam", "se"]
    # "Guided Backprop goes the other way ... enough to fail on signed maps. On absolute maps this
    # classic failure of Adebayo et al.'s study passes by a hair" (the hair: the absolute-maps test)
    gbp = tab.loc["guided_backprop"]
    assert gbp["absolute − signed"] < -2 * gbp["se"] and gbp["signed mean"] >= 0.5 > gbp["mean over the cascade"], gbp


# ---------------------------------------------------------------- the baseline table (Tables 1.8-1.10)

def _validated(d1) -> list:
    v = read_table(d1, "validity_json")
    return [c for c, (row, _) in COLUMNS.items() if bool(v.loc[row, "valid"])]


def _tied(d1) -> dict:
    """The methods within two paired standard errors of each column's best, the best included."""
    pv = read_table(d1, "paired_vs_best_json")
    out = {}
    for c in COLUMNS:
        rows = pv[pv["metric"] == c]
        # recomputed from the differences: |diff| <= 2 se (the chapter's rule, xh.stats.paired)
        out[c] = set(rows.loc[rows["diff"].abs() <= 2 * rows["se"], "method"]) | set(rows["best"])
    return out


def test_ch1_baseline_winners_as_the_text_reads_them(d1):
    # "no method is best in every validated column. Occlusion has the best attribution localisation,
    # LRP with the flat rule the lowest localisation error and Score-CAM the highest fidelity"
    # (bug caught: a column sorted the wrong way, e.g. the localisation error ranked higher-is-better)
    t = read_table(d1, "baseline_table_json")
    assert _validated(d1) == ["pointing_game", "attribution_localisation", "fidelity", "loc_error"]
    assert t["attribution_localisation"].idxmax() == "occlusion"
    assert t["loc_error"].idxmin() == "lrp_epsilon_plus_flat"
    assert t["fidelity"].idxmax() == "scorecam"
    best = {c: (t[c].idxmax() if higher else t[c].idxmin()) for c, (_, higher) in COLUMNS.items()}
    assert len({best[c] for c in _validated(d1)}) > 1, best


def test_ch1_the_pointing_game_saturates(d1):
    # "the pointing game saturates, every method but SmoothGrad finding the object on nearly every
    # image" (bug caught: a tolerance disk far too large, which would let SmoothGrad's scattered
    # maxima hit too, or hits counted on the inverse mask, which would sink every method)
    pg = read_table(d1, "baseline_table_json")["pointing_game"]
    assert (pg.drop(index="smoothgrad") >= 0.95).all() and pg["smoothgrad"] < 0.95, pg


def test_ch1_ties_with_the_best_as_the_text_reads_them(d1):
    # Table 1.9: "Every method but SmoothGrad ties with the best pointing game, and most, every CAM
    # variant and occlusion among them, with the best fidelity. None comes close to occlusion's
    # attribution localisation, and only occlusion and the other LRP variant tie with the best
    # localisation error. Occlusion is the one method tied with the best in every validated column."
    # (bug caught: the unpaired sqrt(se_a^2 + se_b^2), far wider than the paired error on the same
    # images, made every best "have company", issue 32, finding 1; a localisation error paired at
    # thresholds chosen on the scored images would flatter the uninformative maps)
    tied, n = _tied(d1), len(baselines.METHODS)
    assert tied["pointing_game"] == set(baselines.METHODS) - {"smoothgrad"}, tied["pointing_game"]
    cams = {"cam", "gradcam", "gradcam_pp", "scorecam", "ablationcam", "xgradcam", "layercam"}
    assert len(tied["fidelity"]) > n / 2 and cams | {"occlusion"} <= tied["fidelity"], tied["fidelity"]
    assert tied["attribution_localisation"] == {"occlusion"}, tied["attribution_localisation"]
    assert tied["loc_error"] == {"lrp_epsilon_plus_flat", "occlusion", "lrp_epsilon_plus"}, tied["loc_error"]
    assert set.intersection(*(tied[c] for c in _validated(d1))) == {"occlusion"}


def test_ch1_beside_the_poster(d1):
    # Table 1.10: "our errors for the gradient and LRP are lower than the poster's by more than two
    # standard errors, while Guided Backprop and CAM are within two of theirs. The order differs:
    # LRP, the poster's worst, ties with our best" (bug caught: a localisation error that counts hits
    # as errors, or an IoU computed on boxes in (x, y) against (row, column) order)
    t = read_table(d1, "baseline_table_json")
    gap = {m: (theirs - t.loc[m, "loc_error"]) / t.loc[m, "loc_error_sem"] for m, theirs in POSTER_LOC_ERROR.items()}
    assert gap["saliency"] > 2 and gap["lrp_epsilon_plus"] > 2, gap
    assert abs(gap["guided_backprop"]) <= 2 and abs(gap["cam"]) <= 2, gap
    assert max(POSTER_LOC_ERROR, key=POSTER_LOC_ERROR.get) == "lrp_epsilon_plus"
    assert "lrp_epsilon_plus" in _tied(d1)["loc_error"]
