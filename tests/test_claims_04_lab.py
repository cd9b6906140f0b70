"""Claims of the chapter 4 lab (04_activation_deactivation) at the size a reader sees, checked against the
record of its default run (see ``test_default_run.py``: ``make book``, then
``python scripts/record_defaults.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from xaihelpers.results import read_table

from test_default_run import record, se  # noqa: E402


# ---------------------------------------------------------------- chapter 4

@pytest.fixture(scope="module")
def d4():
    return record("04_activation_deactivation")["glued"]


def test_ch4_confidence_drop_by_rule_with_paired_errors(d4):
    """Finding 9 of issue 32, the prose after Tables 4.2-4.3: lenient's explanations lose the least
    confidence of the three rules, by more than four paired standard errors each; strict and majority
    cannot be told apart; painting 0 loses more than lenient by about two paired standard errors.
    Catches a drop computed against the wrong reference or under another rule's occlusion (the rules
    would swap places), and prose that again orders the drops by the number of positions switched off."""
    pairs = read_table(d4, "drop_pairs_json")
    assert "confidence drop se" in read_table(d4, "quality_json").columns  # Table 4.2 carries its error

    def z(name):
        return float(pairs.loc[name, "difference"]) / float(pairs.loc[name, "paired se"])

    assert z("ConvAD (strict) - ConvAD (lenient)") > 4 and z("ConvAD (majority) - ConvAD (lenient)") > 4
    assert abs(z("ConvAD (majority) - ConvAD (strict)")) <= 2
    assert 1 < z("zero - ConvAD (lenient)") < 3  # "at the edge of two paired standard errors"
    # "although strict switches off far more positions" (Figure 4.3, the 4 x 4 square)
    assert d4["last_active_strict"] < d4["last_active_majority"] - 0.5


def test_ch4_lenient_and_painting_zero_part_only_where_a_window_is_all_hidden(d4):
    """Finding 9 of issue 32, the section on lenient ConvAD against painting 0 (Figure 4.8).

    Catches a ConvAD whose input deactivation is not painting 0 (the logits would differ where
    nothing is switched off), and an agreement that does not fall with the size of the hidden square
    (e.g. masks passed as 1 = hidden, or lenient switching off what saw visible input)."""
    assert d4["lz_gap_nothing_off"] < 1e-4
    t = read_table(d4, "lz_table_json")
    scattered = t[t["shape"] == "scattered pixels"].sort_values("hidden")
    square = t[t["shape"] == "one square"].sort_values("hidden")
    # "with up to a quarter of the image hidden that way the two never part"
    assert (scattered.loc[scattered["hidden"] <= 0.25 + 1e-9, "agreement"] > 1 - 1e-9).all()
    # "one hidden square switches off the positions whose windows lie inside it": more, the larger it is
    assert (np.diff(square["switched off"].to_numpy()) > 0).all() and square["switched off"].min() > 0
    # "less the larger the square", and scattered pixels above one square at the largest share,
    # "each many paired standard errors wide"
    pairs = read_table(d4, "lz_pairs_json")
    for name in ("smallest square - largest square", "scattered - square, largest share"):
        assert float(pairs.loc[name, "difference"]) > 4 * float(pairs.loc[name, "paired se"]), name
