"""The cluttered Fashion-MNIST CNN family: architecture, checkpoints, training, accuracy."""

import json

import pytest
import torch

from xaihelpers import benchmark, benchmark_models, models


@pytest.mark.parametrize("act", list(benchmark_models.ACTIVATIONS))
def test_family_shapes_and_activation(act):
    m = benchmark_models.BenchmarkCNN(act)
    assert m(torch.zeros(2, 3, 64, 64)).shape == (2, 10)
    kinds = {type(mod) for mod in m.modules()}
    assert type(benchmark_models.ACTIVATIONS[act]()) in kinds
    assert benchmark_models.ResidualBlock in kinds and torch.nn.MaxPool2d in kinds and torch.nn.BatchNorm2d in kinds
    assert models.default_layer(m) == "features.res2"


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="activation"):
        benchmark_models.BenchmarkCNN("softsign")


def test_committed_checkpoints_match_their_manifest():
    manifest = benchmark_models.checkpoint_manifest()
    assert set(manifest) == set(benchmark_models.ACTIVATIONS) | {benchmark_models.SHUFFLED_NAME, benchmark_models.SMALL_NAME}
    assert manifest[benchmark_models.SMALL_NAME]["benchmark_setting"] == "small"
    for act, entry in ((a, manifest[a]) for a in (*benchmark_models.ACTIVATIONS, benchmark_models.SMALL_NAME)):
        path = benchmark_models.checkpoint_path(act)
        assert benchmark_models.file_sha256(path) == entry["sha256"]
        assert entry["script"] == "scripts/train_benchmark_models.py" and entry["seed"] == benchmark_models.TRAIN_SEED
        assert path.stat().st_size < 2_000_000


@pytest.mark.parametrize("act", list(benchmark_models.ACTIVATIONS))
def test_load_benchmark_model(act):
    model, prep, classes = benchmark_models.load_benchmark_model(act, device="cpu")
    assert not model.training and classes == list(benchmark.FASHION_CLASSES)
    assert prep.size == 64 and model.xai_name == f"fmnist_cnn_{act}"
    assert models.load_model(f"fmnist_cnn_{act}", device="cpu").model.activation == act


def test_small_setting_model_classifies_its_own_images_not_just_the_standard_ones():
    # the CNN of the small-object setting: 79 % on its 10,000 test images (manifest); on 2,000 of them
    # above 75 % (about 4 standard errors below), and on its own images better than the standard CNN is
    small = benchmark.cluttered_fashion_mnist("test", n=2000, setting="small", verbose=False)
    own = models.load_model("fmnist_cnn_relu_small", device="cpu")
    other = models.load_model("fmnist_cnn_relu", device="cpu")
    x = own.preprocess.normalize(small.images)
    acc = {k: benchmark_models.accuracy(m.model, x, small.labels) for k, m in (("own", own), ("standard", other))}
    assert acc["own"] > 0.75 and acc["own"] > acc["standard"] + 0.1, acc
    assert own.model.xai_name == "fmnist_cnn_relu_small" and own.model.activation == "relu"


def test_relu_model_reaches_85_percent_on_the_full_test_split():
    test = benchmark.cluttered_fashion_mnist("test", n=10000, verbose=False)
    model, prep, _ = benchmark_models.load_benchmark_model("relu", device="cpu")
    assert benchmark_models.accuracy(model, prep.normalize(test.images), test.labels) >= 0.85


def test_tampered_checkpoint_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "checkpoints"
    fake.mkdir()
    torch.save(benchmark_models.BenchmarkCNN("relu").state_dict(), fake / "fmnist_cnn_relu.pt")
    (fake / "manifest.json").write_text(json.dumps({"relu": {"sha256": "0" * 64}}))
    monkeypatch.setattr(benchmark_models, "CHECKPOINT_DIR", fake)
    with pytest.raises(models.WeightsUnavailableError, match="sha256"):
        benchmark_models.load_benchmark_model("relu")


def test_missing_checkpoint_without_training_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark_models, "CHECKPOINT_DIR", tmp_path / "none")
    monkeypatch.setenv("XAI_DATA", str(tmp_path / "cache"))
    with pytest.raises(models.WeightsUnavailableError, match="train_benchmark_models.py"):
        benchmark_models.load_benchmark_model("gelu", train_if_missing=False)


def test_train_classifier_learns_a_separable_problem():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 3, 32, 32, generator=gen)
    y = (x[:, 0].mean((1, 2)) > 0).long()
    x[:, 0] += (2 * y - 1)[:, None, None] * 0.5
    m = benchmark_models.BenchmarkCNN("relu", width=4, num_classes=2)
    losses = benchmark_models.train_classifier(m, (x, y), epochs=4, batch_size=32, lr=1e-2, verbose=False)
    assert losses[-1] < losses[0] and benchmark_models.accuracy(m, x, y) > 0.9


def test_shuffled_label_model_memorised_its_labels_and_learned_nothing_else():
    entry = benchmark_models.checkpoint_manifest()[benchmark_models.SHUFFLED_NAME]
    path = benchmark_models.CHECKPOINT_DIR / entry["file"]
    assert benchmark_models.file_sha256(path) == entry["sha256"] and path.stat().st_size < 2_000_000
    model, prep, _ = benchmark_models.load_shuffled_label_model(device="cpu", train_if_missing=False)
    x, y, true = benchmark_models.shuffled_label_data(entry["seed"], entry["settings"]["n_train"])
    agree = float((y == true).float().mean())  # permuted labels that happen to be right
    # memorised: far above what the labels' agreement with the truth would give
    assert benchmark_models.accuracy(model, x, y) >= 0.9 > agree + 0.5
    test = benchmark.cluttered_fashion_mnist("test", n=2000, verbose=False)
    acc = benchmark_models.accuracy(model, prep.normalize(test.images), test.labels)
    # nothing generalises: within 3 binomial standard errors of chance (0.1) on 2000 images
    assert abs(acc - 0.1) < 3 * (0.1 * 0.9 / 2000) ** 0.5
