"""The comparison machinery of chapter 6: explainers behind one call, scores, ranks and agreement."""

import numpy as np
import pandas as pd
import pytest
import torch

from xaihelpers import benchmark, benchmark_models, compare, evaluation, explainers, occlusion


@pytest.fixture(scope="module")
def bench():
    cnn, prep, _ = benchmark_models.load_benchmark_model("relu")
    ds = benchmark.cluttered_fashion_mnist("test", n=3, verbose=False)
    return cnn, prep.normalize(ds.images), ds.labels, ds.masks, ds.boxes, prep


def test_top_masks_keep_the_requested_share_of_the_top_pixels():
    maps = torch.arange(16.0).reshape(1, 4, 4).repeat(2, 1, 1)
    out = evaluation.top_masks(maps, [0.25, 0.5], (4, 4))
    assert out.shape == (2, 4, 4) and out[0].sum() == 4 and out[1].sum() == 8
    assert torch.all(out[0].flatten()[-4:] == 1)  # the four largest values
    with pytest.raises(ValueError, match="one fraction per map"):
        evaluation.top_masks(maps, [0.5], (4, 4))


def test_top_masks_break_ties_at_random_not_in_raster_order():
    const = torch.ones(1, 32, 32)
    out = evaluation.top_masks(const, [0.25], (32, 32))[0]
    assert out.sum() == 256  # exactly the requested share
    rows = out.nonzero()[:, 0].double()
    # raster order would keep rows 0-7 (mean 3.5); a random quarter of the pixels has mean
    # row 15.5 with standard error 9.2 / sqrt(256) = 0.58: 15.5 +- 3 is over 5 of them
    assert abs(rows.mean().item() - 15.5) < 3
    # a map with three values: the top 40 % takes the top level (25 %) and part of the next
    levels = torch.zeros(1, 32, 32)
    levels[0, :8] = 2.0
    levels[0, 8:20] = 1.0
    top = evaluation.top_masks(levels, [0.4], (32, 32))[0]
    assert top.sum() == round(0.4 * 1024) and top[:8].all() and top[20:].sum() == 0


def test_ranks_follow_each_metrics_direction():
    tab = pd.DataFrame({"pointing_game": [0.9, 0.5], "loc_error": [0.2, 0.1]}, index=["a", "b"])
    r = compare.ranks(tab)
    assert r.loc["a", "pointing_game"] == 1 and r.loc["b", "loc_error"] == 1  # higher PG, lower error is better
    assert r["mean rank"].tolist() == pytest.approx([1.5, 1.5], abs=1e-12)  # means of small integers
    with pytest.raises(ValueError, match="no direction"):
        compare.ranks(tab.assign(mystery=1.0), ["mystery"])


def test_agreement_is_symmetric_and_one_for_identical_or_monotone_maps():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(4, 8, 8, generator=g)
    agree = compare.agreement({"a": a, "a squared": a ** 2, "noise": torch.rand(4, 8, 8, generator=g)})
    assert np.allclose(agree.to_numpy(), agree.to_numpy().T)
    assert agree.loc["a", "a squared"] == pytest.approx(1.0)  # a rank correlation ignores monotone rescaling
    assert abs(agree.loc["a", "noise"]) < 0.3


def test_score_gives_every_metric_in_its_range(bench):
    cnn, x, y, masks, boxes, prep = bench
    bg = occlusion.solid_backgrounds(4, (64, 64), prep.normalize)
    ex = {"SRD-input": explainers.get("srd_input"), "gradient": explainers.get("saliency")}
    results, maps = evaluation.score(ex, cnn, x, y, masks, boxes, bg, stability_images={"gradient": 1},
                                  stability_samples=2, fidelity_subsets=10, verbose=False)
    assert set(results) == set(ex) and maps["SRD-input"].shape == (3, 64, 64)
    for df in results.values():
        for c in ("pointing_game", "attribution_localisation", "size", "planted_survival", "deletion", "insertion"):
            assert df[c].between(0, 1).all(), c
    assert results["SRD-input"]["stability"].isna().all() and results["gradient"]["stability"].notna().sum() == 1
    tab = compare.table(results, fwd_bwd=0.01)
    assert tab.loc["gradient", "per_fwd_bwd"] == pytest.approx(tab.loc["gradient", "seconds"] / 0.01)
    shown = compare.with_errors(tab, ["pointing_game", "stability"])
    assert " ± " in shown.loc["gradient", "pointing_game"] and shown.loc["SRD-input", "stability"].endswith("n/a")


def test_best_names_every_tied_method():
    tab = pd.DataFrame({"pointing_game": [1.0, 1.0, 0.5], "loc_error": [0.3, 0.1, 0.2]}, index=["a", "b", "c"])
    assert compare.best(tab, "pointing_game") == (["a", "b"], 1.0, "a and b")
    assert compare.best(tab, "loc_error")[0] == ["b"]
    with pytest.raises(ValueError, match="metric"):
        compare.best(tab, "colour")


def test_srd_claims_are_those_its_table_supports():
    # each "best" claim names the method that the paper's own Table 2 ranks first on that metric
    # (stability: lower is better), on ResNet-50 unless the claim names another network
    from xaihelpers import papers

    cols = papers.SRD_TABLE2_COLUMNS
    names = {"SRD-high": "srd_high", "SRD-input": "srd_input", "SRD-low": "srd_low"}
    for paper, claim, method, metric in papers.COMPARISON_CLAIMS:
        if not paper.startswith("Han"):
            continue
        for net, table in (("ResNet-50", papers.SRD_TABLE2_RESNET50), ("VGG-16", papers.SRD_TABLE2_VGG16)):
            col = {m: v[cols.index(metric)] for m, v in table.items()}
            best = (min if metric == "stability" else max)(col, key=col.get)
            if "both networks" in claim or (net == "ResNet-50" and "ResNet-50" in claim):
                assert best == names[method], (claim, net, best)
            elif net == "VGG-16":
                assert best != names[method] or "both" in claim


def test_gfi_poster_table_is_whole():
    from xaihelpers import papers

    assert set(papers.GFI_LOCALISATION_ERROR) == set(papers.GFI_POSTER_ALPHA)
    # the poster's own table: GFI ("Ours") is second, "Real" has the lowest error
    err = papers.GFI_LOCALISATION_ERROR
    assert min(err, key=err.get) == "Real" and sorted(err.values()).index(err["GFI"]) == 1
