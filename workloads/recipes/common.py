"""What every workload recipe does the same way, written once: image preparation, a recipe with the user's
overrides, and the pretrained-weights option. (The level's name and the timings of a run that trained nothing
belong to the run record: workloads/harness/run.py.) And the regime a run trains in.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TypeVar

import numpy as np

from workloads.errors import InputError

Recipe = TypeVar("Recipe")


def prepare_images(images: np.ndarray) -> np.ndarray:
    """uint8 grey images (N, H, W) to float32 in [0, 1] with a channel axis (N, H, W, 1)."""
    return (images.astype("float32") / 255.0)[..., None]


def regime(train_images: int, epochs: int, batch_size: int) -> dict:
    """What a run trains on and for how long (result.json `hyperparameters.regime`): a quick threshold holds
    only for the regimes `make calibrate` ran, so each recipe also says which one a dataset would take."""
    steps = epochs * math.ceil(train_images / batch_size)
    return {"train_images": train_images, "epochs": epochs, "steps": steps}


def with_overrides(recipe: type[Recipe] | Recipe, **overrides) -> Recipe:
    """A recipe dataclass (a class: its defaults; an instance: a copy of it) with the options the user gave;
    an option left at None keeps the recipe's value."""
    given = {name: value for name, value in overrides.items() if value is not None}
    return recipe(**given) if isinstance(recipe, type) else dataclasses.replace(recipe, **given)


def check_weights(weights: str | Path | None) -> None:
    """Pretrained weights as Keras takes them: "imagenet", None (random), or a local file that must exist."""
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise InputError(f"--weights {weights}: no such file")


def weights_option(option: str | None) -> str | None:
    """`--weights` as Keras takes it: not given means "imagenet", "none" means None; checked."""
    weights = None if option == "none" else (option or "imagenet")
    check_weights(weights)
    return weights
