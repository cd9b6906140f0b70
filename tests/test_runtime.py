import random

import numpy as np
import pytest
import torch

import xaihelpers as xh
from xaihelpers import results


def test_device_defaults_to_an_available_one():
    dev = xh.device()
    assert isinstance(dev, torch.device)
    if torch.cuda.is_available():
        assert dev.type == "cuda"
    else:
        assert dev.type in ("mps", "cpu")
    assert xh.device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_device_refuses_missing_cuda():
    with pytest.raises(ValueError, match="cuda"):
        xh.device("cuda")


def test_device_rejects_non_string():
    with pytest.raises(TypeError):
        xh.device(3)


def test_seed_everything_makes_runs_repeat():
    xh.seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(3))
    xh.seed_everything(123)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    with pytest.raises(ValueError):
        xh.seed_everything(-1)
    with pytest.raises(ValueError):
        xh.seed_everything(1.5)


@pytest.mark.parametrize("raw,expected", [("1", True), ("true", True), ("Yes", True), ("0", False), ("off", False)])
def test_smoke_reads_environment(monkeypatch, raw, expected):
    monkeypatch.setenv("XAI_SMOKE", raw)
    assert xh.smoke() is expected


def test_smoke_default_and_bad_value(monkeypatch):
    monkeypatch.delenv("XAI_SMOKE", raising=False)
    assert xh.smoke() is False and xh.smoke(default=True) is True
    monkeypatch.setenv("XAI_SMOKE", "maybe")
    with pytest.raises(ValueError, match="XAI_SMOKE"):
        xh.smoke()


def test_plain_turns_numpy_and_torch_into_python():
    value = results._plain({"a": np.float32(0.5), "b": torch.tensor([1, 2]), "c": (np.int64(3),)})
    assert value == {"a": 0.5, "b": [1, 2], "c": (3,)}
    assert type(value["a"]) is float and type(value["c"][0]) is int


def test_rounded_keeps_six_significant_digits_and_makes_last_bit_twins_equal():
    assert results.rounded(0.9500000000000001) == results.rounded(0.95) == 0.95
    assert results.rounded(123456789.0) == 123457000.0 and results.rounded(1.23456789e-9) == 1.23457e-09
    assert results.rounded({"a": [np.float32(1 / 3)], "b": "text", "c": 7, "d": True}) == {"a": [0.333333], "b": "text", "c": 7, "d": True}
    nan = results.rounded(float("nan"))
    assert nan != nan and results.rounded(float("inf")) == float("inf")


def test_glued_table_reads_back_rounded_like_a_glued_scalar():
    import pandas as pd

    table = pd.DataFrame({"score": [0.1 + 0.2, 1 / 3], "name": ["a", "b"], "n": [3, 4]}, index=["x", "y"])
    back = results.read_table({"t": results.table_json(table)}, "t")
    assert back.loc["x", "score"] == results.rounded(0.1 + 0.2) == 0.3  # 0.30000000000000004 in the table
    assert back.loc["y", "score"] == results.rounded(1 / 3) and list(back["name"]) == ["a", "b"]
    assert list(back["n"]) == [3, 4]
    with pytest.raises(KeyError, match="no glued table"):
        results.read_table({}, "t")
    with pytest.raises(TypeError, match="DataFrame"):
        results.table_json([1, 2])


def test_seed_everything_asks_for_deterministic_kernels():
    before = torch.are_deterministic_algorithms_enabled()
    try:
        xh.seed_everything(0)
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    finally:
        torch.use_deterministic_algorithms(before)


def test_duration_in_words():
    from xaihelpers.results import duration

    assert duration(45) == "45 s" and duration(200) == "about 3 min" and duration(4200) == "about 1 h 10 min"
    with pytest.raises(ValueError, match="non-negative"):
        duration(-1)


def _parameters_cell(path) -> str:
    import json

    cells = json.loads(path.read_text())["cells"]
    return next("".join(c["source"]) for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))


def test_run_times_are_recorded_for_every_chapter():
    from conftest import NOTEBOOKS

    from xaihelpers.results import run_times

    df = run_times()
    # the modes scripts/run_times.py writes: SMOKE=True, the defaults, and FULL=True (the papers' sizes)
    assert set(df["mode"]) <= {"smoke", "default", "full"}, set(df["mode"])
    for nb in NOTEBOOKS:  # scripts/run_times.py --mode smoke; default and full runs are recorded where they were measured
        modes = set(run_times(nb.stem)["mode"])
        assert "smoke" in modes, nb.stem
        if "FULL" not in _parameters_cell(nb):  # a chapter without a FULL switch has no full-size time
            assert "full" not in modes, nb.stem
    assert not df.duplicated(["chapter", "mode", "device"]).any()
    with pytest.raises(ValueError, match="no run time recorded"):
        run_times("99_missing")
