"""workloads/notebook.py: the settings the notebooks take from the environment (the notebooks themselves run
in tests/notebooks/)."""

from __future__ import annotations

from workloads import notebook


def test_the_settings_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("KW_QUICK", raising=False)
    monkeypatch.delenv("KW_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert not notebook.quick() and notebook.data_dir() is None
    assert notebook.out_dir("moons") == tmp_path.joinpath("runs", "notebooks", "moons").relative_to(tmp_path)
    assert (tmp_path / "runs" / "notebooks" / "moons").is_dir()
    monkeypatch.setenv("KW_QUICK", "1")
    monkeypatch.setenv("KW_DATA", "/usr/share/datasets/fashion-mnist")
    monkeypatch.setenv("KW_NOTEBOOK_OUT", str(tmp_path / "elsewhere"))
    assert notebook.quick() and str(notebook.data_dir()) == "/usr/share/datasets/fashion-mnist"
    assert (
        notebook.out_dir("mnist") == tmp_path / "elsewhere" / "mnist"
        and (tmp_path / "elsewhere/mnist").is_dir()
    )
