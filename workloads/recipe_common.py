"""What every workload recipe does the same way, written once: the level's name, image preparation, a recipe
with the user's overrides, the pretrained-weights option, and the timings of a run that trained nothing.

Imports no Keras: the harness (workloads/run.py) uses it before the backend is chosen.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TypeVar

import numpy as np

from workloads.errors import InputError

Recipe = TypeVar("Recipe")


def level(quick: bool) -> str:
    """The run's level as thresholds.toml and result.json name it."""
    return "quick" if quick else "full"


def prepare_images(images: np.ndarray) -> np.ndarray:
    """uint8 grey images (N, H, W) to float32 in [0, 1] with a channel axis (N, H, W, 1)."""
    return (images.astype("float32") / 255.0)[..., None]


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


def no_timings(total_s: float) -> dict:
    """result.json `timings` of a run without a training loop to time (only its total is known)."""
    return {
        "total_s": round(total_s, 3),
        "first_epoch_s": None,
        "steady_ms_per_step": None,
        "samples_per_s": None,
    }
