"""Each notebook (a jupytext percent-format source in notebooks/) runs end to end in quick mode, no error.

The sources are converted in memory and executed by nbclient on the .venv's ipykernel with the TensorFlow
backend; a notebook must also show at least one figure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "notebooks").glob("*.py"))


def test_there_are_notebooks() -> None:
    assert [path.stem for path in SOURCES], "notebooks/ has no jupytext sources"


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES, ids=[path.stem for path in SOURCES])
def test_notebook_runs_in_quick_mode(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fashion_mnist: Path
) -> None:
    import jupytext
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = jupytext.read(source)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    # The kernel inherits this environment: quick settings, outputs in tmp_path, the TensorFlow backend.
    monkeypatch.setenv("KW_QUICK", "1")
    monkeypatch.setenv("KW_NOTEBOOK_OUT", str(tmp_path / "runs"))
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("KW_DATA", str(fashion_mnist))  # real images for the image notebooks
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    try:
        client.execute()
    except CellExecutionError as exc:
        pytest.fail(f"{source.name}: a cell failed:\n{str(exc)[-3000:]}")
    figures = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert figures, f"{source.name} showed no figure"
