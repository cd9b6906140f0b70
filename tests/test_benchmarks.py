"""The speed-table entry point: one case runs in its own process and reports a ratio and peak memory."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_one_case_reports_time_ratio_and_memory():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "_case.py"), "SRD (input)", "fmnist_cnn_relu", "cpu"],
                         capture_output=True, text=True, check=True)
    row = json.loads([l for l in out.stdout.splitlines() if l.startswith("{")][-1])
    assert row["seconds per image"] > 0 and row["/ forward+backward"] > 0
    assert row["first call, seconds per image"] > 0 and row["note"] == ""  # a fast method: its second call counts
    assert row["peak MB"] >= row["model fwd+bwd peak MB"] > 0


def test_entry_point_writes_the_table(tmp_path):
    subprocess.run([sys.executable, "-m", "benchmarks", "--models", "fmnist_cnn_relu", "--methods",
                    "pytorch-grad-cam Grad-CAM", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, check=True)
    md = (tmp_path / "speed.md").read_text()
    assert "Grad-CAM" in md and (tmp_path / "speed.csv").is_file()


def test_gfi_speed_prints_both_batch_ratios():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gfi_speed.py"), "--models", "cnn", "--iterations", "4",
                          "--batch", "2", "--rounds", "1"], capture_output=True, text=True, check=True).stdout
    row = [l for l in out.splitlines() if l.startswith("benchmark CNN")][-1].split()
    numbers = [float(v) for v in row[-7:]]  # input, reference ms, GFI alone, GFI batched, N, GFI batch/N, network batch/N
    assert numbers[0] == 64 and numbers[4] == 2 and all(v > 0 for v in numbers)
    assert "network alone" in out and "4 GFI iterations" in out
