"""The cluttered Fashion-MNIST CNN family: architecture, checkpoints, training, accuracy."""

import json

import pytest
import torch

from xaihelpers import benchmark, models


@pytest.mark.parametrize("act", list(models.ACTIVATIONS))
def test_family_shapes_and_activation(act):
    m = models.BenchmarkCNN(act)
    assert m(torch.zeros(2, 3, 64, 64)).shape == (2, 10)
    kinds = {type(mod) for mod in m.modules()}
    assert type(models.ACTIVATIONS[act]()) in kinds
    assert models.ResidualBlock in kinds and torch.nn.MaxPool2d in kinds and torch.nn.BatchNorm2d in kinds
    assert models.default_layer(m) == "features.res2"


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="activation"):
        models.BenchmarkCNN("softsign")


def test_committed_checkpoints_match_their_manifest():
    manifest = models.checkpoint_manifest()
    assert set(manifest) == set(models.ACTIVATIONS) | {models.SHUFFLED_NAME}
    for act, entry in ((a, manifest[a]) for a in models.ACTIVATIONS):
        path = models.checkpoint_path(act)
        assert models.file_sha256(path) == entry["sha256"]
        assert entry["script"] == "scripts/train_benchmark_models.py" and entry["seed"] == models.TRAIN_SEED
        assert path.stat().st_size < 2_000_000


@pytest.mark.parametrize("act", list(models.ACTIVATIONS))
def test_load_benchmark_model(act):
    model, prep, classes = models.load_benchmark_model(act, device="cpu")
    assert not model.training and classes == list(benchmark.FASHION_CLASSES)
    assert prep.size == 64 and model.xai_name == f"fmnist_cnn_{act}"
    assert models.load_model(f"fmnist_cnn_{act}", device="cpu").model.activation == act


def test_relu_model_reaches_85_percent_on_the_full_test_split():
    test = benchmark.cluttered_fashion_mnist("test", n=10000, verbose=False)
    model, prep, _ = models.load_benchmark_model("relu", device="cpu")
    assert models.accuracy(model, prep.normalize(test.images), test.labels) >= 0.85


def test_tampered_checkpoint_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "checkpoints"
    fake.mkdir()
    torch.save(models.BenchmarkCNN("relu").state_dict(), fake / "fmnist_cnn_relu.pt")
    (fake / "manifest.json").write_text(json.dumps({"relu": {"sha256": "0" * 64}}))
    monkeypatch.setattr(models, "CHECKPOINT_DIR", fake)
    with pytest.raises(models.WeightsUnavailableError, match="sha256"):
        models.load_benchmark_model("relu")


def test_missing_checkpoint_without_training_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "CHECKPOINT_DIR", tmp_path / "none")
    monkeypatch.setenv("XAI_DATA", str(tmp_path / "cache"))
    with pytest.raises(models.WeightsUnavailableError, match="train_benchmark_models.py"):
        models.load_benchmark_model("gelu", train_if_missing=False)


def test_train_classifier_learns_a_separable_problem():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 3, 32, 32, generator=gen)
    y = (x[:, 0].mean((1, 2)) > 0).long()
    x[:, 0] += (2 * y - 1)[:, None, None] * 0.5
    m = models.BenchmarkCNN("relu", width=4, num_classes=2)
    losses = models.train_classifier(m, (x, y), epochs=4, batch_size=32, lr=1e-2, verbose=False)
    assert losses[-1] < losses[0] and models.accuracy(m, x, y) > 0.9


def test_shuffled_label_model_memorised_its_labels_and_learned_nothing_else():
    entry = models.checkpoint_manifest()[models.SHUFFLED_NAME]
    path = models.CHECKPOINT_DIR / entry["file"]
    assert models.file_sha256(path) == entry["sha256"] and path.stat().st_size < 2_000_000
    model, prep, _ = models.load_shuffled_label_model(device="cpu", train_if_missing=False)
    x, y, true = models.shuffled_label_data(entry["seed"], entry["settings"]["n_train"])
    agree = float((y == true).float().mean())  # permuted labels that happen to be right
    # memorised: far above what the labels' agreement with the truth would give
    assert models.accuracy(model, x, y) >= 0.9 > agree + 0.5
    test = benchmark.cluttered_fashion_mnist("test", n=2000, verbose=False)
    acc = models.accuracy(model, prep.normalize(test.images), test.labels)
    # nothing generalises: within 3 binomial standard errors of chance (0.1) on 2000 images
    assert abs(acc - 0.1) < 3 * (0.1 * 0.9 / 2000) ** 0.5
