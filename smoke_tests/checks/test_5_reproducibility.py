"""Reproducibility: two seeded, deterministic tiny trainings in one process give identical weights."""

from __future__ import annotations

import hashlib

import numpy as np

from smoke_tests import framework_ops
from smoke_tests.plugin import CheckRecord


def _train_checksum(seed: int, device: str) -> str:
    import keras

    from workloads.training.backend import seed_everything

    seed_everything(seed, deterministic=True)
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((256, 16), dtype=np.float32), rng.integers(0, 2, 256)
    with keras.device(framework_ops.keras_device(device)):
        model = keras.Sequential(
            [
                keras.Input((16,)),
                keras.layers.Dense(32, activation="relu"),
                keras.layers.Dropout(0.2),
                keras.layers.Dense(1, activation="sigmoid"),
            ]
        )
        model.compile(optimizer="adam", loss="binary_crossentropy")
        model.fit(x, y, batch_size=32, epochs=3, shuffle=True, verbose=0)
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


def test_seeded_training_is_identical(check: CheckRecord, device: str, seed: int) -> None:
    first, second = _train_checksum(seed, device), _train_checksum(seed, device)
    check.detail("seed", seed)
    check.detail("checksums", [first, second])
    check.detail("device", device)
    assert first == second, f"two seeded deterministic trainings differ: {first[:16]} != {second[:16]}"
