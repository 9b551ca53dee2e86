"""Files written in the mounted /work belong to the host user, both documented ways."""

from __future__ import annotations

import pytest

from .conftest import HOST_UID, host_workdir

pytestmark = pytest.mark.image

WRITE = ["bash", "-c", "echo hello > /work/written.txt && id -u && id -g"]


def test_user_flag(containers, tmp_path_factory) -> None:
    work = host_workdir(tmp_path_factory, "user-flag")
    result = containers.run_to_end("--user", f"{HOST_UID}:{HOST_UID}", "-v", f"{work}:/work", command=WRITE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(HOST_UID), str(HOST_UID)]
    stat = (work / "written.txt").stat()
    assert (stat.st_uid, stat.st_gid) == (HOST_UID, HOST_UID)


def test_root_start_remaps_to_the_owner_of_work(containers, tmp_path_factory) -> None:
    # Started as root, the entrypoint drops to the owner of /work: no flag to get right.
    work = host_workdir(tmp_path_factory, "remap")
    result = containers.run_to_end("--user", "root", "-v", f"{work}:/work", command=WRITE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(HOST_UID), str(HOST_UID)]
    stat = (work / "written.txt").stat()
    assert (stat.st_uid, stat.st_gid) == (HOST_UID, HOST_UID)


def test_root_start_never_stays_root(containers, tmp_path_factory) -> None:
    work = tmp_path_factory.mktemp("root-owned")  # owned by root, like a root host user's directory
    result = containers.run_to_end("--user", "root", "-v", f"{work}:/work", command=["id", "-u"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1000"


def test_bad_nb_uid_is_a_clear_error(containers) -> None:
    result = containers.run_to_end("--user", "root", "-e", "NB_UID=bob", command=["id"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: NB_UID and NB_GID must be numbers")
