"""`assets install` killed at random points, by SIGINT (Ctrl-C) and by SIGKILL (nothing runs after it): the
Keras cache is the old state or the new one, never a mix, and no staging file is left after the next run.

SIGINT is handled by the install itself (staging thrown away, or the renames finished with Ctrl-C held
back), so the cache is whole at once. After SIGKILL during the renames the next `assets install` finishes
them first, before it even looks at its own bundle (here: a broken one, so it installs nothing itself).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.workloads.test_assets import cache_state, make_bundle, tar_of
from workloads.data import assets

pytestmark = pytest.mark.slow
SEED = int(os.environ.get("KW_SIGNAL_SEED") or time.time())  # printed in every failure: rerun with it
NAMES = ["cats_and_dogs_filtered", "horse_or_human", "validation_horse_or_human"]  # no pinned hash
TRIALS = 6


def bundle_of(where: Path, version: str) -> Path:
    rng = random.Random(version)
    files = {}
    for name in NAMES:
        spec = assets.asset_table()[name]
        files[name] = (f"{spec['subdir']}/{spec['file']}", rng.randbytes(6 << 20))
    return tar_of(make_bundle(where / version, files), where / f"{version}.tar")


def install(archive: Path, home: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "workloads", "assets", "install", "--archive", str(archive),
         "--keras-home", str(home)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def staging(home: Path) -> list[Path]:
    return list(home.glob(f"{assets.STAGING_PREFIX}*"))


def handlers_installed(pid: int) -> bool:
    """The CLI catches SIGTERM from the moment it takes over (Python itself does not): before that, a signal
    meets the bare interpreter start-up, which no program controls."""
    try:
        caught = Path(f"/proc/{pid}/status").read_text().split("SigCgt:")[1].split()[0]
    except (OSError, IndexError):
        return False
    return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    where = tmp_path_factory.mktemp("interrupt")
    old, new = bundle_of(where, "old"), bundle_of(where, "new")
    template = where / "home-old"
    assets.install(old, template)
    broken = where / "broken.tar"
    broken.write_bytes(b"not a tar at all" * 100)
    fresh = where / "home-new"
    assets.install(new, fresh)
    # How long the staging folder exists (copying, hashing, renaming): the window the kills aim at.
    home = where / "calibrate"
    shutil.copytree(template, home)
    proc = install(new, home)
    while not staging(home) and proc.poll() is None:
        time.sleep(0.002)
    start = time.monotonic()
    while staging(home) and proc.poll() is None:
        time.sleep(0.002)
    window = max(time.monotonic() - start, 0.05)
    proc.wait(timeout=120)
    return {"where": where, "new": new, "broken": broken, "template": template, "window": window,
            "old_state": cache_state(template), "new_state": cache_state(fresh)}  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_a_killed_install_leaves_the_old_cache_or_the_new_one(setup: dict, sig: int) -> None:
    rng = random.Random(SEED + sig)
    old, new = setup["old_state"], setup["new_state"]
    seen = []
    for trial in range(TRIALS):
        home = setup["where"] / f"home-{sig}-{trial}"
        shutil.copytree(setup["template"], home)
        proc = install(setup["new"], home)
        if trial == 0:  # once during the start-up (imports, reading the archive), before anything is staged
            while not (handlers_installed(proc.pid) or staging(home)) and proc.poll() is None:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 1.0))
        else:
            while not staging(home) and proc.poll() is None:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, setup["window"]))
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=120)
        where = f"{signal.Signals(sig).name}, trial {trial} (KW_SIGNAL_SEED={SEED}): {output[-500:]}"
        now = {k: v for k, v in cache_state(home).items() if not k.startswith(assets.STAGING_PREFIX)}
        committed = bool(list(home.glob(f"{assets.STAGING_PREFIX}*/{assets.COMMIT}")))
        if sig == signal.SIGINT:
            # -2: the signal came after the install had finished and reported, while Python was exiting
            # (finalization restores the default handlers); what matters is the cache, checked next.
            assert proc.returncode in (0, 130, -signal.SIGINT) and "Traceback" not in output, where
            assert now in (old, new), f"a mix of old and new after {where}"
            assert not staging(home), f"staging left after {where}"
        else:
            assert now in (old, new) or committed, f"a mix without a commit record after {where}"
        # The next run: it recovers first, then fails on its own (broken) bundle.
        after = subprocess.run(
            [sys.executable, "-m", "workloads", "assets", "install", "--archive", str(setup["broken"]),
             "--keras-home", str(home)],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert after.returncode == 2 and "not a readable bundle archive" in after.stderr, after.stderr
        if committed:  # killed after the commit point: the next run finished the renames
            assert cache_state(home) == new, where
        assert cache_state(home) in (old, new), f"a mix after the next run: {where}"
        assert not staging(home), f"staging left after the next run: {where}"
        seen.append("new" if cache_state(home) == new else "old")
        shutil.rmtree(home)
    print(f"{signal.Signals(sig).name}: {seen} (window {setup['window']:.2f} s, KW_SIGNAL_SEED={SEED})")
