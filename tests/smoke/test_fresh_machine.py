"""`make smoke-test` in the two other data situations of a fresh machine (the first, Debian's Fashion-MNIST,
is test_make_smoke_test.py): no dataset at all with an empty Keras cache (the digits fallback), and `DATA=` an
MNIST-format folder of the user's own, which is neither MNIST nor Fashion-MNIST and is judged as `idx`.
Every workload must be judged (no "unchecked") and pass."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from smoke_tests.settings import HERE as SMOKE_DIR

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def make_smoke_test(*make_args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], Path]:
    proc = subprocess.run(["make", "smoke-test", *make_args], cwd=ROOT, capture_output=True, text=True,
                          timeout=1200, check=False, env={**os.environ, **env})  # fmt: skip
    found = re.search(r"smoke tests \(quick\) -> (\S+)", proc.stdout)
    assert found, f"no report folder announced:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc, Path(found.group(1))


def workload_datasets(out: Path) -> dict[str, dict]:
    report = json.loads((out / "report.json").read_text())
    checks = {c["name"]: c for c in report["checks"] if c["category"] == "workloads"}
    assert set(checks) == {f"workload[{n}]" for n in ("moons", "mnist", "convnet-viz", "transfer")}
    for name, check in checks.items():
        assert check["status"] == "passed", f"{name}: {check['message']}"
    return {name: json.loads((out / "workloads" / name[9:-1] / "result.json").read_text()) for name in checks}


def test_no_dataset_and_an_empty_keras_cache_uses_the_digits_and_passes(tmp_path: Path) -> None:
    # Hide Debian's Fashion-MNIST through the setting that names it (it stays installed).
    settings = tomllib.loads((SMOKE_DIR / "settings.toml").read_text())
    text = (SMOKE_DIR / "settings.toml").read_text()
    assert settings["data"]["default"] == "fashion_mnist"
    hidden = tmp_path / "settings.toml"
    hidden.write_text(text.replace('default = "fashion_mnist"', 'default = ""'))
    proc, out = make_smoke_test(env={"SMOKE_SETTINGS": str(hidden), "KERAS_HOME": str(tmp_path / "keras")})
    assert proc.returncode == 0, proc.stdout[-4000:]
    results = workload_datasets(out)
    for name in ("workload[mnist]", "workload[convnet-viz]", "workload[transfer]"):
        result = results[name]
        assert result["dataset"]["name"] == "digits_fallback" and result["dataset"]["fallback"], name
        assert result["status"] == "passed" and result["thresholds"], name
        assert all(t["passed"] for t in result["thresholds"].values()), name
    assert "FALLING BACK" in (out / "workloads" / "mnist.log").read_text()
    # the page says it too, as loudly as the terminal, with the data each workload was judged on
    assert "the workloads trained on the fallback digits_fallback" in proc.stdout
    page = (out / "report.html").read_text()
    assert '<p class="warn">The workloads trained on the fallback digits_fallback' in page
    assert "NOT MNIST" in page
    assert page.count("<td>digits_fallback</td>") == 3  # mnist, convnet-viz, transfer in the data table


def test_a_users_own_mnist_format_folder_is_judged_as_idx_and_passes(tmp_path: Path) -> None:
    from workloads.data.images import load_digits_fallback, write_idx_dir

    folder = write_idx_dir(load_digits_fallback(), tmp_path / "my-mnist")  # named like MNIST; it is not
    proc, out = make_smoke_test(f"DATA={folder}", env={"KERAS_HOME": str(tmp_path / "keras")})
    assert proc.returncode == 0, proc.stdout[-4000:]
    results = workload_datasets(out)
    for name in ("workload[mnist]", "workload[convnet-viz]", "workload[transfer]"):
        result = results[name]
        assert result["dataset"]["name"] == "idx" and result["dataset"]["source"] == f"idx:{folder}", name
        assert result["status"] == "passed" and result["thresholds"], name
