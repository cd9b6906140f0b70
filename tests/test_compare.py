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


def _results(columns: dict, n: int | None = None) -> dict:
    """Per-image results of several methods (as evaluation.score returns) from method -> metric -> scores."""
    return {m: pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in cols.items()}) for m, cols in columns.items()}


def test_ranks_of_a_table_follow_each_metrics_direction():
    # a table of means (the exercise's input) is ranked without intervals
    tab = pd.DataFrame({"pointing_game": [0.9, 0.5], "loc_error": [0.2, 0.1]}, index=["a", "b"])
    r = compare.ranks(tab)
    assert r.loc["a", "pointing_game"] == 1 and r.loc["b", "loc_error"] == 1  # higher PG, lower error is better
    assert r["mean rank"].tolist() == pytest.approx([1.5, 1.5], abs=1e-12)  # means of small integers
    with pytest.raises(ValueError, match="no direction"):
        compare.ranks(tab.assign(mystery=1.0), ["mystery"])


def test_rank_intervals_come_from_the_per_image_scores_and_show_ties_as_ties():
    rng = np.random.default_rng(0)
    hard = rng.random(40)  # how hard each image is: shared by every method
    res = _results({"a": {"insertion": hard + 0.3, "deletion": hard},
                    "b": {"insertion": hard + 0.3 + 0.01 * rng.standard_normal(40), "deletion": hard + 0.2},
                    "c": {"insertion": hard, "deletion": hard + 0.5}})
    long = compare.rank_intervals(res, ["insertion", "deletion"], n_boot=300)
    ins = long[long["metric"] == "insertion"].set_index("method")
    # a and b are the same up to noise: tied with the best, and their intervals span ranks 1-2
    assert ins.loc[["a", "b"], "tied with best"].all() and not ins.loc["c", "tied with best"]
    assert set(ins.loc[["a", "b"], "rank low"]) == {1} and set(ins.loc[["a", "b"], "rank high"]) == {2}
    assert ins.loc["c", ["rank", "rank low", "rank high"]].tolist() == [3, 3, 3]
    dele = long[long["metric"] == "deletion"].set_index("method")  # lower is better
    assert dele.loc["a", "rank"] == 1 and dele.loc["c", "rank"] == 3
    wide = compare.ranks(res, ["insertion", "deletion"], n_boot=300)
    assert wide.index[0] == "a" and {"mean rank low", "mean rank high"} <= set(wide.columns)
    assert wide.loc["c", "mean rank low"] == pytest.approx(3.0, abs=1e-9)  # last on both, on every resample


def test_a_metric_measured_on_one_image_ranks_nothing():
    res = _results({"a": {"stability": [0.1, 0.2, np.nan]}, "b": {"stability": [0.3, 0.2, np.nan]},
                    "c": {"stability": [0.5, np.nan, np.nan]}})
    assert compare.rank_of(res, "c", "stability") == "not measured"
    assert compare.rank_of(res, "a", "stability").endswith("of 2")


def test_finding_1_best_ties_follow_the_paired_error_not_two_independent_ones():
    """Finding 1: two methods scored on the same images are told apart by the per-image
    differences. Here b beats a on every image by 0.02 while the images spread the scores
    by 0.3: the unpaired width (2 * hypot of the two standard errors, about 0.15) calls it a
    tie, the paired one (0) does not."""
    from xaihelpers import stats

    rng = np.random.default_rng(1)
    hard = rng.random(16)
    a, b = hard + 0.5, hard + 0.52 + 0.002 * rng.standard_normal(16)
    res = _results({"a": {"insertion": a}, "b": {"insertion": b}})
    unpaired_width = 2 * np.hypot(pd.Series(a).sem(), pd.Series(b).sem())
    assert abs(b.mean() - a.mean()) < unpaired_width  # the old reading: not distinguishable
    assert compare.best(res, "insertion")[0] == ["b"]  # the paired reading: b alone
    assert stats.verdict(b, a) == "higher"
    # and the other way: means that differ in the fourth digit, with noise per image, are tied
    noisy = _results({"a": {"insertion": hard}, "b": {"insertion": hard + 0.0004 + 0.05 * rng.standard_normal(16)}})
    assert compare.best(noisy, "insertion")[0] == ["b", "a"] or compare.best(noisy, "insertion")[0] == ["a", "b"]


def test_finding_3_a_metric_that_fails_the_validity_check_ranks_nothing():
    """Finding 3: chapter 6 named a "best insertion" method although insertion cannot tell the
    object from its inverse at this resolution. An invalid metric is left out of every ranking
    and names no best method."""
    rng = np.random.default_rng(2)
    res = _results({m: {"insertion": rng.random(8) + i, "fidelity": rng.random(8) + i} for i, m in enumerate("abc")})
    valid = pd.DataFrame({"valid": [False, True]}, index=["insertion", "fidelity"])
    assert compare.best(res, "insertion", valid=valid) == ([], pytest.approx(np.nan, nan_ok=True), compare.UNINFORMATIVE)
    assert compare.best(res, "fidelity", valid=valid)[0] == ["c"]
    assert "insertion" not in compare.ranks(res, valid=valid).columns
    assert set(compare.rank_intervals(res, valid={"insertion": False})["metric"]) == {"fidelity"}
    assert compare.rank_of(res, "c", "insertion", valid=valid) == compare.UNINFORMATIVE
    claims = compare.claims(res, valid=valid, claims_list=[("P", "best insertion", "c", "insertion"),
                                                           ("P", "best fidelity", "c", "fidelity"),
                                                           ("P", "best fidelity", "a", "fidelity")])
    assert claims["verdict"].tolist() == [compare.UNINFORMATIVE, "holds", "does not hold"]
    with pytest.raises(ValueError, match="valid"):
        compare.ranks(res, valid=pd.DataFrame({"ok": [True]}, index=["fidelity"]))


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
    res = _results({"a": {"pointing_game": [1, 1, 1, 1], "loc_error": [0.3, 0.4, 0.2, 0.3]},
                    "b": {"pointing_game": [1, 1, 1, 1], "loc_error": [0.1, 0.2, 0.0, 0.1]},
                    "c": {"pointing_game": [0, 0, 0, 0], "loc_error": [0.2, 0.3, 0.1, 0.2]}})
    # the columns evaluation.summarise reads, to choose each method's threshold (one here)
    res = {m: df.rename(columns={"loc_error": "loc_error@1"}).assign(
        attribution_localisation=0.5, sparseness=0.5, fidelity=0.5, stability=0.5, seconds=0.1) for m, df in res.items()}
    assert compare.best(res, "pointing_game") == (["a", "b"], 1.0, "a and b")
    assert compare.best(res, "loc_error")[0] == ["b"]  # lower is better, by 0.1 on every image
    with pytest.raises(ValueError, match="metric"):
        compare.best(res, "colour")


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
