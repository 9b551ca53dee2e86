"""The filter that enables contrib/non-free in Debian's own source entries (both apt formats), in place."""

from __future__ import annotations

import importlib.util

from .conftest import ANSIBLE_DIR

_spec = importlib.util.spec_from_file_location(
    "apt_components", ANSIBLE_DIR / "roles/nvidia_driver/filter_plugins/apt_components.py"
)
apt_components = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(apt_components)
WANTED = ["contrib", "non-free", "non-free-firmware"]

DEB822 = """Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

ONE_LINE = """deb http://deb.debian.org/debian/ bookworm main non-free-firmware
deb-src http://deb.debian.org/debian/ bookworm main
# deb http://deb.debian.org/debian/ bookworm-backports main
deb [signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/debian bookworm stable
deb http://security.debian.org/debian-security bookworm-security main
"""


def test_deb822_entries_get_the_components_once() -> None:
    out = apt_components.apt_debian_components(DEB822, WANTED)
    assert out.count("Components: main non-free-firmware contrib non-free\n") == 1
    assert out.count("Components: main contrib non-free non-free-firmware\n") == 1
    assert out.replace("contrib non-free", "").count("Signed-By") == 2  # everything else kept
    assert apt_components.apt_debian_components(out, WANTED) == out  # idempotent


def test_one_line_entries_of_debian_only() -> None:
    out = apt_components.apt_debian_components(ONE_LINE, WANTED, deb822=False)
    lines = out.splitlines()
    assert lines[0] == "deb http://deb.debian.org/debian/ bookworm main non-free-firmware contrib non-free"
    assert lines[1].endswith("/debian/ bookworm main contrib non-free non-free-firmware")
    assert lines[2] == "# deb http://deb.debian.org/debian/ bookworm-backports main"  # comments untouched
    assert lines[3].endswith("bookworm stable")  # Docker's .../linux/debian is not Debian's archive
    assert lines[4].endswith("bookworm-security main contrib non-free non-free-firmware")
    assert apt_components.apt_debian_components(out, WANTED, deb822=False) == out
