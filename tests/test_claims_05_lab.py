"""Claims of the chapter 5 lab (05_activation_matching) at the size a reader sees, checked against the
record of its default run (see ``test_default_run.py``: ``make book``, then
``python scripts/record_defaults.py``)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from xaihelpers import stats
from xaihelpers.results import read_table

from test_default_run import record, se  # noqa: E402


# ---------------------------------------------------------------- chapter 5

@pytest.fixture(scope="module")
def d5():
    return record("05_activation_matching")["glued"]


def test_ch5_photo_masks_are_larger_than_the_papers(d5):
    # "with the default CPU budget ... the masks are larger" than the paper's 2-5 % of the pixels;
    # bug caught: an area computed on the soft mask or over the wrong axis (a share near 0 or above 1)
    assert d5["photo_area"] > 0.05 and d5["photo_model"] == "efficientnet_lite0"


def ch5_claim_holds(images, a: str, b: str, score: str, claim: str, k: float = 2.0) -> bool:
    """Whether the prose's claim "row a's ``score`` is ``claim`` than row b's" holds on chapter 5's recorded
    per-image scores (a glued table with columns ``"<row> | <score>"``), paired image by image.

    ``claim`` is ``"higher"`` or ``"lower"`` (by more than ``k`` paired standard errors,
    :func:`xaihelpers.stats.paired`) or ``"tied"`` (within ``k``). Swapping a and b turns a
    "higher" that holds into one that fails (tested below).
    """
    p = stats.paired(images[f"{a} | {score}"], images[f"{b} | {score}"], k)
    outcome = {"higher": p.diff > k * p.se, "lower": p.diff < -k * p.se, "tied": abs(p.diff) <= k * p.se}
    if claim not in outcome:
        raise ValueError(f"expected a claim in {sorted(outcome)}, got {claim!r}")
    return bool(outcome[claim])


#: chapter 5's stated comparisons: (per-image table, row a, row b, score, claim, the bug the claim would catch)
CH5_CLAIMS = [
    # Table 5.11, the object mask against controls of exactly its area (finding 8). Would catch controls
    # that are not of the mask's area or shape (a necessity read off area alone), or a mask/complement swap.
    ("nec_object_images_json", "object mask", "scattered (object mask's area)", "sufficient", "higher",
     "the object mask alone keeps the label more often than scattered pixels of its area"),
    ("nec_object_images_json", "object mask", "blob (object mask's area)", "sufficient", "higher",
     "... than a blob of its area"),
    ("nec_object_images_json", "object mask", "shifted (object mask's area)", "sufficient", "higher",
     "... than its own shape shifted"),
    ("nec_object_images_json", "object mask", "blob (object mask's area)", "necessary", "higher",
     "hiding the object loses the label more often than hiding a blob of its area"),
    ("nec_object_images_json", "object mask", "shifted (object mask's area)", "necessary", "higher",
     "... than hiding its shape shifted"),
    ("nec_object_images_json", "object mask", "scattered (object mask's area)", "necessary", "tied",
     "the share of labels lost does not separate the object from scattered pixels of its area"),
    ("nec_object_images_json", "scattered (object mask's area)", "object mask", "p hidden", "higher",
     "only the probability left tells the object from scattered pixels"),
    ("nec_object_images_json", "blob (object mask's area)", "scattered (object mask's area)", "p hidden", "higher",
     "... by a smaller margin than the blob"),
    # Table 5.12, per-image masks at their own area (8 images). Would catch a control or a baseline cut to
    # another area, a kept/hidden swap, or a mask network that stopped training (no sufficiency gain).
    ('nec_am_images_json', 'Activation Matching (per image)', 'Mask (top pixels, same area)', 'p kept', 'higher',
     'the per-image masks keep more probability than Mask'),
    ('nec_am_images_json', 'Activation Matching (per image)', "scattered (Activation Matching (per image)'s area)", 'p kept', 'higher',
     'the per-image masks keep more probability than scattered'),
    ('nec_am_images_json', 'Activation Matching (per image)', "blob (Activation Matching (per image)'s area)", 'p kept', 'higher',
     'the per-image masks keep more probability than blob'),
    ('nec_am_images_json', 'Activation Matching (per image)', "shifted (Activation Matching (per image)'s area)", 'p kept', 'higher',
     'the per-image masks keep more probability than shifted'),
    ('nec_am_images_json', 'Activation Matching (per image)', 'GFI (top pixels, same area)', 'p kept', 'tied',
     "GFI's top pixels are not distinguishable when kept"),
    ('nec_am_images_json', "shifted (Activation Matching (per image)'s area)", 'Activation Matching (per image)', 'p hidden', 'higher',
     'hidden, they remove more of the class than their own shape moved elsewhere'),
    ('nec_am_images_json', 'Activation Matching (per image)', 'GFI (top pixels, same area)', 'p hidden', 'tied',
     'but not distinguishably more than GFI'),
    ('nec_am_images_json', 'Activation Matching (per image)', 'Mask (top pixels, same area)', 'p hidden', 'tied',
     'but not distinguishably more than Mask'),
    ('nec_am_images_json', 'Activation Matching (per image)', "scattered (Activation Matching (per image)'s area)", 'p hidden', 'tied',
     'but not distinguishably more than scattered'),
    ('nec_am_images_json', 'Activation Matching (per image)', "blob (Activation Matching (per image)'s area)", 'p hidden', 'tied',
     'but not distinguishably more than blob'),
    # Table 5.13, amortised masks at their own (larger) area
    ('nec_amort_images_json', 'Activation Matching (amortised)', 'Mask (top pixels, same area)', 'p kept', 'tied',
     "kept, amortised masks are not told apart from Mask's pixels"),
    ('nec_amort_images_json', 'Activation Matching (amortised)', 'GFI (top pixels, same area)', 'p kept', 'tied',
     "kept, amortised masks are not told apart from GFI's pixels"),
    ('nec_amort_images_json', 'Activation Matching (amortised)', "scattered (Activation Matching (amortised)'s area)", 'p kept', 'higher',
     'amortised masks beat scattered when kept'),
    ('nec_amort_images_json', 'Activation Matching (amortised)', "blob (Activation Matching (amortised)'s area)", 'p kept', 'higher',
     'amortised masks beat blob when kept'),
    ('nec_amort_images_json', 'Activation Matching (amortised)', "shifted (Activation Matching (amortised)'s area)", 'p kept', 'higher',
     'amortised masks beat shifted when kept'),
    ('nec_amort_images_json', 'Activation Matching (amortised)', "scattered (Activation Matching (amortised)'s area)", 'p hidden', 'higher',
     'hidden, amortised masks leave the class more probability than scattered pixels of their area'),
    ('nec_amort_images_json', 'Activation Matching (amortised)', "blob (Activation Matching (amortised)'s area)", 'p hidden', 'tied',
     'hidden, amortised masks are not told apart from blob'),
    ('nec_amort_images_json', 'Activation Matching (amortised)', "shifted (Activation Matching (amortised)'s area)", 'p hidden', 'tied',
     'hidden, amortised masks are not told apart from shifted'),
]


@pytest.mark.parametrize("key, a, b, score, claim, catches", CH5_CLAIMS, ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None)
def test_ch5_the_stated_comparisons_hold_paired(d5, key, a, b, score, claim, catches):
    # each sentence of chapter 5 that compares two masks (or two training variants) on the same images,
    # checked on the recorded per-image scores with the chapter's paired standard error
    assert ch5_claim_holds(read_table(d5, key), a, b, score, claim), catches


def test_ch5_claims_fail_with_the_compared_masks_swapped(d5):
    # the claim test must be able to fail: every stated "higher"/"lower" is false read the other way round
    for key, a, b, score, claim, _ in CH5_CLAIMS:
        if claim != "tied":
            assert not ch5_claim_holds(read_table(d5, key), b, a, score, claim), (a, b, score)


def test_ch5_claim_helper_on_constructed_scores():
    # a clear gap holds one way only; noise around equal means is tied; an unpaired reading of these
    # scores (large spread between images, small within pairs) would call the first gap a tie
    import pandas as pd

    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 40)
    tab = pd.DataFrame({"a | s": base + 0.05, "b | s": base + rng.normal(0, 0.01, 40), "c | s": base + rng.normal(0, 0.01, 40)})
    assert ch5_claim_holds(tab, "a", "b", "s", "higher") and ch5_claim_holds(tab, "b", "a", "s", "lower")
    assert not ch5_claim_holds(tab, "b", "a", "s", "higher") and not ch5_claim_holds(tab, "a", "b", "s", "tied")
    assert ch5_claim_holds(tab, "b", "c", "s", "tied")
    with pytest.raises(ValueError, match="claim"):
        ch5_claim_holds(tab, "a", "b", "s", "better")


def test_ch5_the_papers_small_mask_is_not_inside_the_photo_masks(d5):
    # Issue 33's headline row for Activation Matching, the prose under Table 5.4 and Figure 5.3.
    # Bug caught: an area curve that keeps the lowest-ranked pixels (the soft order would lose to random)
    # or a share that is not the share of the image kept (the paper's 2-5 % would be met by accident)
    sm = read_table(d5, "smallest_kept_json")
    soft, rnd = sm["smallest share kept, soft mask"].astype(float), sm["smallest share kept, random pixels"].astype(float)
    # "no photo keeps its label on a share that small (about 2-5 %), under either ranking"
    assert ((soft.isna()) | (soft > 0.05)).all() and ((rnd.isna()) | (rnd > 0.05)).all(), sm
    # "the best photo needs ... of its pixels in the soft mask's order": some photo keeps it at a share of the curve
    assert soft.notna().any(), sm
    # "random pixels keep no label at any share of Figure 5.3"
    assert rnd.isna().all(), sm
    # "at the larger shares the soft mask's order gives the class more probability than random pixels on every photo"
    curve = read_table(d5, "area_curve_json")
    wide = curve[curve["area"] >= 0.1].pivot_table(index=["image", "area"], columns="ranking", values="p_kept")
    assert (wide["soft mask"] > wide["random pixels"]).all(), wide


ROB_ROWS = ("survives: training fills", "survives: backgrounds", "area")  # "backgrounds": the unseen ones


def rob_claim(images) -> None:
    """The prose under Table 5.7: on these images the robustness gradient changes nothing measured,
    neither survival (on training-like fills and unseen backgrounds) nor the masks' area, each within
    two paired standard errors, recomputed from the per-image scores (not read from the verdicts)."""
    for row in ROB_ROWS:
        p = stats.paired(images[f"with gradient | {row}"], images[f"detached (reference) | {row}"])
        assert abs(p.diff) <= 2 * p.se, (row, p)


def test_ch5_the_robustness_gradient_changes_nothing_measured(d5):
    # finding 10: the old test re-derived the glued verdict from the same glued numbers and could not
    # fail; this one reads the per-image scores, and fails on a real gap (bug caught: survival scored
    # on the same explanation twice, or the detached run not detached)
    images = read_table(d5, "rob_images_json").astype(float)
    rob_claim(images)
    shifted = images.copy()
    for row in ROB_ROWS:
        shifted[f"with gradient | {row}"] = shifted[f"with gradient | {row}"] + 1.0
    with pytest.raises(AssertionError):
        rob_claim(shifted)


def sweep_claims(sweep: pd.DataFrame, steps: int) -> None:
    """The prose under Figure 5.4, on Table 5.5 (``steps``: PHOTO_STEPS of the record)."""
    area = sweep.pivot_table(index=["loss weights", "steps"], columns="photo", values="mask at 0.5: area")
    kept = sweep.pivot_table(index=["loss weights", "steps"], columns="photo", values="mask at 0.5: label kept")
    authors = [k for k in area.index if "authors'" in k[0]][0]
    short, long = [k for k in area.index if "authors'" not in k[0]]
    assert short[1] == steps and long[1] == 2 * steps
    # "With SWEEP_AREA both photos' masks at 0.5 are smaller than with the authors' weights and keep the label"
    assert (area.loc[[short]].to_numpy() < area.loc[[authors]].to_numpy()).all()
    assert kept.loc[[short, long]].to_numpy().all()
    # "which the authors' weights did not on every photo"
    assert not kept.loc[[authors]].to_numpy().all()
    # "after twice the steps they are less than half the size of the authors'-weight masks"
    assert (area.loc[[long]].to_numpy() < 0.5 * area.loc[[authors]].to_numpy()).all()
    # "a longer schedule is still shrinking the masks when it stops"
    assert (area.loc[[long]].to_numpy() < area.loc[[short]].to_numpy()).all()
    smallest = sweep["smallest share kept (soft order)"].astype(float)
    # "a tenth of the pixels keeps the label on one photo (Figure 5.4)": the longest run, some photo at 10 %
    last = sweep[sweep["steps"] == long[1]]["smallest share kept (soft order)"].astype(float)
    assert (last < 0.105).any(), sweep
    # "no setting here reaches it" (the paper's 2-5 %)
    assert ((smallest > 0.05) | smallest.isna()).all(), sweep


def test_ch5_knob_sweep_shrinks_the_masks_but_not_to_the_papers_size(d5):
    # Issue 33's diagnosis for Activation Matching's mask area. Bug caught: an area weight that is not passed
    # to the training (every row the same), or snapshots read from the wrong step
    sweep = read_table(d5, "am_sweep_json")
    steps = int(re.search(r"^PHOTO_STEPS = (\d+)", record("05_activation_matching")["parameters_cell"], re.M)[1])
    sweep_claims(sweep, steps)
    # the check can fail: with the two sweep runs swapped the schedule claim does
    swapped = sweep.copy()
    ours = ~swapped["loss weights"].str.contains("authors'")
    swapped.loc[ours, "steps"] = swapped.loc[ours, "steps"].map({steps: 2 * steps, 2 * steps: steps})
    with pytest.raises(AssertionError):
        sweep_claims(swapped, steps)


def test_ch5_photo_masks_do_not_always_keep_the_label(d5):
    # "Even so, they do not keep the label on every photo, and, as in the paper, an explanation is sometimes
    # more confident than the photo itself" (under Table 5.3)
    assert d5["photo_kept"] < 1 and d5["photo_above"] > 0
