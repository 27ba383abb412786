import statistics

import pytest

from hypersst.data.images import load_digits, load_idx_dataset
from hypersst.tasks.images import ImageRunConfig, train_image_classifier


def test_every_method_learns_digits():
    data = load_digits()
    config = ImageRunConfig(hidden_features=64, depth=2, epochs=3, steps_per_iteration=10, warmup_steps=2)
    for method in ("full", "lora", "relora", "sst", "galore"):
        result = train_image_classifier(data, method, 8, seed=0, config=config)
        # The majority class of digits is about 10% of the test set.
        assert result["test_accuracy"] > 0.5, method


def test_unknown_method_raises():
    with pytest.raises(ValueError, match="unknown method 'dora'"):
        train_image_classifier(load_digits(), "dora", 4)


def test_sst_closes_more_of_the_gap_than_lora_and_relora_on_mnist(shared_data):
    # MLP 784-256-256-256-10 on the first 10,000 MNIST training images, rank d/8 = 32, three seeds.
    data = load_idx_dataset("mnist", root=shared_data, limit_train=10000)
    config = ImageRunConfig(hidden_features=256, depth=3, epochs=3, batch_size=128, lr=1e-3)
    accuracy = {}
    for method in ("full", "lora", "relora", "sst"):
        runs = [train_image_classifier(data, method, 32, seed=seed, config=config) for seed in range(3)]
        accuracy[method] = statistics.mean(run["test_accuracy"] for run in runs)
    gap = {method: accuracy["full"] - accuracy[method] for method in ("lora", "relora", "sst")}
    assert gap["sst"] < gap["lora"], accuracy
    assert gap["sst"] < gap["relora"], accuracy
