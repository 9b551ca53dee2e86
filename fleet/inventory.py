"""The hosts Ansible will visit: the inventory as Ansible reads it (ansible-inventory --list, --limit)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ANSIBLE_DIR = Path(__file__).resolve().parents[1] / "ansible"


class InventoryError(Exception):
    """The inventory cannot be used: one line for the user."""


def inventory_hosts(ansible_inventory: Path, inventory: Path, limit: str | None) -> list[str]:
    """Every host of `inventory` that `limit` selects, sorted; InventoryError when there is none."""
    argv = [str(ansible_inventory), "-i", str(inventory), "--list", *(["--limit", limit] if limit else [])]
    try:
        proc = subprocess.run(argv, cwd=ANSIBLE_DIR, capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise InventoryError(f"ansible-inventory could not read {inventory}: {err}") from None
    warnings = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode != 0:
        raise InventoryError(f"{inventory}: {(warnings or ['ansible-inventory failed'])[-1][:300]}")
    try:
        groups = json.loads(proc.stdout)
    except ValueError:
        raise InventoryError(f"{inventory}: ansible-inventory printed no inventory") from None
    hosts = sorted(
        {
            h
            for name, group in groups.items()
            if name != "_meta" and isinstance(group, dict)
            for h in group.get("hosts", [])
        }
    )
    if not hosts:
        unparsed = next((w for w in warnings if "Unable to parse" in w or "No inventory" in w), None)
        if unparsed:
            raise InventoryError(f"{inventory}: Ansible could not read it as an inventory ({unparsed[:200]})")
        raise InventoryError(f"no host of {inventory} matches" + (f" --limit {limit!r}" if limit else ""))
    return hosts
