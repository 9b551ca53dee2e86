"""No dataset unjudged: every workload has thresholds for every dataset it can run on, at both levels."""

from __future__ import annotations

import pytest

from workloads.data.images import KNOWN_DATASETS
from workloads.harness import thresholds

LEVELS = ("quick", "full")
# Every MNIST-format dataset the image workloads can meet: MNIST, Fashion-MNIST, the digits fallback and
# `idx` (a user's own folder that is neither), as workloads/data/datasets.toml names them.
IMAGE_DATASETS = tuple(KNOWN_DATASETS)
# (workload, variant, datasets it runs on). Left out on purpose, reported as "unchecked": a user's own
# image folder (transfer --base inception_v3), photo (convnet-viz --model xception) or model (--model PATH).
CASES = (
    ("moons", "default", ("generated",)),
    *(("mnist", f"stage{stage}", IMAGE_DATASETS) for stage in range(1, 6)),
    ("convnet_viz", "canvas", IMAGE_DATASETS),
    ("transfer", "self", IMAGE_DATASETS),
)
EXPECTED = {(w, v, level, d) for w, v, datasets in CASES for level in LEVELS for d in datasets}


def test_the_dataset_names_are_the_ones_the_data_layer_gives():
    assert set(IMAGE_DATASETS) == {"mnist", "fashion_mnist", "idx", "digits_fallback"}


def test_the_mnist_stages_are_the_ladder():
    from workloads.recipes.mnist import STAGES

    assert sorted(STAGES) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("level", LEVELS)
def test_no_gap(level):
    table = thresholds.load_thresholds()
    gaps = [
        f"{w}.{v}.{lvl}.{d}"
        for w, v, lvl, d in sorted(EXPECTED)
        if lvl == level and not thresholds.thresholds_for(w, v, lvl, d, table)
    ]
    assert not gaps, f"workloads/harness/thresholds.toml has no thresholds for: {', '.join(gaps)}"


def test_no_stray_entry():
    """A misspelt dataset or level (`fashion-mnist`, `Quick`) would be a silent gap: refuse it."""
    table = thresholds.load_thresholds()
    found = {
        (w, v, level, d)
        for w, variants in table.items()
        for v, levels in variants.items()
        for level, datasets in levels.items()
        for d in datasets
    }
    assert found - EXPECTED == set()


def test_each_quick_table_cites_the_calibration():
    text = thresholds.THRESHOLDS_FILE.read_text()
    assert "benchmarks/results/calibration/calibration.md" in text
