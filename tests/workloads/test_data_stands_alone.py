"""workloads/data stands on its own: datasets, image folders, the assets and the Keras cache need nothing of
the harness, the training helpers or the recipes above them (which import data/, never the other way)."""

from __future__ import annotations

from tests.conftest import REPO
from tests.gpu_doctor.test_ground_floor import imported, loaded_along

ABOVE = {"workloads.harness", "workloads.training", "workloads.recipes", "workloads.cli"}
DATA = REPO / "workloads" / "data"


def test_data_imports_nothing_above_it() -> None:
    sources = sorted(DATA.glob("*.py"))
    above = {p.name: sorted(imported(p.read_text(), parts=2) & ABOVE) for p in sources}
    assert len(sources) >= 5 and not {name: found for name, found in above.items() if found}


def test_the_scan_sees_a_reach_up() -> None:
    """Negative control: what data/images.py and data/assets.py imported before they stood alone."""
    source = (
        "from workloads.training.backend import keras_home\ndef f():\n"
        "    from workloads.harness.results import now\nimport workloads.recipes.transfer\n"
    )
    expected = {"workloads.training", "workloads.harness", "workloads.recipes"}
    assert imported(source, parts=2) & ABOVE == expected


def test_every_data_module_loads_nothing_above_it() -> None:
    """Each module imported in a fresh interpreter: none of the packages above it comes along."""
    modules = sorted(f"workloads.data.{p.stem}" for p in DATA.glob("*.py") if p.stem != "__init__")
    assert loaded_along(modules, ABOVE) == []
    assert loaded_along(["workloads.harness.results"], ABOVE)  # negative control: a reach-up is seen
