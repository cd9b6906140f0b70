"""APOP: the recorded pattern reproduces the logits on the original input."""

import pytest
import torch
import torchvision

from xaihelpers import apop, benchmark_models, occlusion


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return benchmark_models.BenchmarkCNN("relu").eval()


def test_pattern_on_the_original_input_reproduces_the_logits(cnn):
    x = torch.randn(3, 3, 64, 64)
    logits, pattern = apop.record_pattern(cnn, x)
    assert len(pattern) == 10  # 7 ReLUs and 3 max-pools
    for mode in apop.MODES:
        assert torch.allclose(apop.frozen_forward(cnn, x, pattern, mode), logits, atol=1e-5)


def test_resnet_with_inplace_relu_and_a_changed_input():
    m = torchvision.models.resnet18(num_classes=7).eval()
    x = torch.randn(2, 3, 64, 64)
    logits, pattern = apop.record_pattern(m, x)
    assert torch.allclose(apop.frozen_forward(m, x, pattern), logits, atol=1e-4)
    zero = apop.frozen_forward(m, torch.zeros_like(x), pattern)
    assert zero.shape == logits.shape and not torch.allclose(zero, logits)
    assert all(mod.inplace for mod in m.modules() if isinstance(mod, torch.nn.ReLU))


def test_agreement_table_and_binarisation(cnn):
    x = torch.randn(8, 3, 64, 64)
    table = apop.agreement(cnn, x, labels=torch.zeros(8, dtype=torch.long), verbose=False)
    assert table.loc[("image", "original"), "top1_agree"] == 1.0
    assert len(table) == 1 + len(occlusion.UNINFORMATIVE) * len(apop.MODES)
    assert ((table >= 0) & (table <= 1)).all().all()
    assert (table["top5_agree"] >= table["top1_agree"]).all()
    out = apop.frozen_forward(cnn, x, [], binarise=0)
    assert out.shape == (8, 10)
    with pytest.raises(ValueError, match="ReLU-family"):
        apop.record_pattern(benchmark_models.BenchmarkCNN("gelu").eval(), x)
    with pytest.raises(ValueError, match="input kind"):
        occlusion.uninformative(x, "checkerboard")


def test_replay_on_a_changed_input_by_hand():
    """APOP on a new input: the ReLU mask and the max-pool positions are the recorded ones, by explicit loops."""
    torch.manual_seed(3)
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                            torch.nn.Flatten(), torch.nn.Linear(2 * 2 * 2, 3)).eval()
    x, new = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4)
    _, pattern = apop.record_pattern(m, x)
    with torch.no_grad():
        z_old, z_new = m[0](x)[0], m[0](new)[0]  # (2, 4, 4) pre-activations
    for mode in apop.MODES:
        pooled = torch.zeros(2, 2, 2)
        for c in range(2):
            for py in range(2):
                for px in range(2):
                    window = [(2 * py + dy, 2 * px + dx) for dy in range(2) for dx in range(2)]
                    # the position max-pool picked on the original input (after its ReLU), first of ties
                    relu_old = [max(float(z_old[c, i, j]), 0.0) for i, j in window]
                    i, j = window[relu_old.index(max(relu_old))]
                    on = float(z_old[c, i, j]) > 0
                    v = float(z_new[c, i, j]) if mode == "apop" else max(float(z_new[c, i, j]), 0.0)
                    pooled[c, py, px] = v * on
        ref = m[4](pooled.flatten()[None])
        assert torch.allclose(apop.frozen_forward(m, new, pattern, mode), ref, atol=1e-5), mode
    # the replay is not the plain network on the new input
    assert not torch.allclose(apop.frozen_forward(m, new, pattern), m(new), atol=1e-3)


def test_per_image_outcomes_match_the_table_and_a_literal_loop(cnn):
    """Each per-image outcome is the frozen network's top-1 on that image alone (batches of 3 cross a boundary)."""
    torch.manual_seed(1)
    x, y = torch.randn(7, 3, 64, 64), torch.randint(0, 10, (7,))
    table, outcomes = apop.agreement(cnn, x, labels=y, batch_size=3, verbose=False, per_image=True)
    assert outcomes.shape == (7, len(table))
    assert (outcomes.mean() - table["top1_acc"].reindex(outcomes.columns)).abs().max() < 1e-12
    for i in range(7):
        logits, pattern = apop.record_pattern(cnn, x[i : i + 1])
        assert outcomes.loc[i, ("image", "original")] == float(logits.argmax(1).item() == y[i].item())
        frozen = apop.frozen_forward(cnn, torch.zeros_like(x[i : i + 1]), pattern, "apop")
        assert outcomes.loc[i, ("zeros", "apop")] == float(frozen.argmax(1).item() == y[i].item())
    _, agree = apop.agreement(cnn, x, batch_size=3, verbose=False, per_image=True)
    assert (agree[("image", "original")] == 1.0).all()  # without labels: agreement with the original top-1
