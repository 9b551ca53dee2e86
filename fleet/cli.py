"""`python -m fleet` (`make fleet-smoke`): the smoke test on every host of an Ansible inventory, and the
report that compares them, in reports/fleet/<UTC timestamp>/ (a new folder for every run, never reused).
`python -m fleet report RUN_DIR [--baseline old/fleet.json]`: write a run's report again from its folder.

Exit codes: 0 every host passed; 1 a host failed, was unreachable or was not installed; 2 bad input (nothing
ran); 130 / 143 / 129 interrupted by SIGINT / SIGTERM / SIGHUP (the report says what came back).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from fleet import report
from fleet.baseline import BaselineError, load_baseline
from fleet.inventory import InventoryError, inventory_hosts
from fleet.playbook import PLAYBOOK, Stop, run_playbook
from gpu_doctor.exit_codes import EXIT_BAD_INPUT, EXIT_OK, EXIT_THRESHOLD_FAILED
from smoke_tests.settings import DEFAULT_LEVEL, level_settings
from workloads.atomic import write_json

RUNS_ROOT = Path("reports/fleet")
# Beyond the level's own suite_timeout_s: the smoke test's start and its report after the suite stopped.
TIMEOUT_MARGIN_S = 600


class UsageError(Exception):
    """Bad input: one line to the user, exit 2, nothing run."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and exit 2, not argparse's usage block
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = _Parser(prog="python -m fleet", description=__doc__.splitlines()[0])
    p.add_argument(
        "-i", "--inventory", type=Path, required=True, help="an Ansible inventory of provisioned hosts"
    )
    p.add_argument("--level", default=DEFAULT_LEVEL, help=f"the smoke test's level (default {DEFAULT_LEVEL})")
    p.add_argument("--limit", help="only the hosts matching this Ansible pattern")
    p.add_argument("--baseline", type=Path, help="an earlier fleet.json to compare each host with")
    p.add_argument(
        "--settings",
        type=Path,
        help="smoke settings (TOML) copied to every host, e.g. with a level of your own",
    )
    p.add_argument("-k", dest="select", help="only the checks matching this pytest -k expression")
    p.add_argument("--require-gpu", action="store_true", help="a host without an NVIDIA GPU fails")
    p.add_argument("--forks", type=int, help="hosts at a time (default: ansible/ansible.cfg's forks)")
    p.add_argument(
        "--timeout", type=int, help="seconds for one host's smoke test (default: the level's + 600)"
    )
    p.add_argument(
        "--out", type=Path, help="the run's folder; must not exist (default reports/fleet/<timestamp>)"
    )
    return p.parse_args(argv)


def _level_timeout(level: str, settings_file: Path | None) -> int:
    """The level's suite_timeout_s (+ margin), from --settings or this checkout's smoke settings."""
    if settings_file is None:
        try:
            return int(level_settings(level)["suite_timeout_s"]) + TIMEOUT_MARGIN_S
        except ValueError as err:
            raise UsageError(f"--level: {err}; or give --settings with that level") from None
    try:
        levels = tomllib.loads(settings_file.read_text()).get("levels", {})
    except OSError as err:
        raise UsageError(f"--settings {settings_file}: cannot read it ({err.strerror})") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise UsageError(f"--settings {settings_file}: not valid TOML ({str(err)[:160]})") from None
    limit = levels.get(level, {}).get("suite_timeout_s") if isinstance(levels.get(level), dict) else None
    if type(limit) is not int or limit <= 0:
        raise UsageError(f"--settings {settings_file}: no level {level!r} with a positive suite_timeout_s")
    return limit + TIMEOUT_MARGIN_S


def _tool(name: str) -> Path:
    """An Ansible command: beside this interpreter (the Ansible environment), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = beside if beside.is_file() else (Path(p) if (p := shutil.which(name)) else None)
    if found is None:
        raise UsageError(f"{name} not found: run `make fleet-smoke`, which installs Ansible from uv.lock")
    return found


def new_run_dir(out: Path | None) -> Path:
    """A folder of its own: --out (which must not exist), or reports/fleet/<UTC timestamp>[-N]."""
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.mkdir()
        except FileExistsError:
            raise UsageError(f"--out {out}: it exists, and a run's folder is never reused") from None
        except OSError as err:
            raise UsageError(f"--out {out}: cannot make it ({err.strerror})") from None
        return out.resolve()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        RUNS_ROOT.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"{RUNS_ROOT}: cannot make it ({err.strerror})") from None
    for n in range(1, 1000):
        path = RUNS_ROOT / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()
            return path.resolve()
        except FileExistsError:
            continue
    raise UsageError(f"{RUNS_ROOT}: no free folder name for {stamp}")


def _prepare(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any] | None, Path, Path]:
    """Everything checked before anything runs: (plan, baseline, ansible-playbook, run folder)."""
    if not args.inventory.exists():
        raise UsageError(f"--inventory {args.inventory}: no such file")
    if args.forks is not None and args.forks < 1:
        raise UsageError(f"--forks {args.forks}: must be at least 1")
    if args.timeout is not None and args.timeout < 1:
        raise UsageError(f"--timeout {args.timeout}: must be at least 1 second")
    if args.settings is not None and not args.settings.is_file():
        raise UsageError(f"--settings {args.settings}: no such file")
    timeout = args.timeout or _level_timeout(args.level, args.settings)
    baseline = load_baseline(args.baseline) if args.baseline else None
    playbook, inventory_tool = _tool("ansible-playbook"), _tool("ansible-inventory")
    hosts = inventory_hosts(inventory_tool, args.inventory.resolve(), args.limit)
    plan = {
        "inventory": str(args.inventory.resolve()),
        "limit": args.limit,
        "level": args.level,
        "settings": str(args.settings.resolve()) if args.settings else None,
        "select": args.select,
        "require_gpu": args.require_gpu,
        "forks": args.forks,
        "timeout_s": timeout,
        "baseline": str(args.baseline) if args.baseline else None,
        "hosts": hosts,
    }
    return plan, baseline, playbook, new_run_dir(args.out)


def _playbook_argv(playbook: Path, plan: dict[str, Any], variables: Path) -> list[str]:
    return [
        str(playbook),
        "-i",
        plan["inventory"],
        str(PLAYBOOK),
        "-e",
        f"@{variables}",
        *(["--limit", plan["limit"]] if plan["limit"] else []),
        *(["--forks", str(plan["forks"])] if plan["forks"] else []),
    ]


def _finish(
    run_dir: Path, plan: dict[str, Any], ansible: dict[str, Any], baseline: dict[str, Any] | None
) -> str:
    data = report.build(run_dir, plan, ansible, baseline, plan.get("baseline"))
    report.write(run_dir, data)
    with contextlib.suppress(OSError):  # a closed terminal: the files above are the report
        print(report.summary_text(data, run_dir), flush=True)
    return data["verdict"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["report"]:
        return report_again(argv[1:])
    args = parse_args(argv)
    stop = Stop()
    stop.install()
    try:
        plan, baseline, playbook, run_dir = _prepare(args)
    except (UsageError, BaselineError, InventoryError) as err:
        if stop.signum is not None:  # Ctrl-C while the inventory was read: nothing ran
            return 128 + stop.signum
        print(f"fleet: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    write_json(run_dir / "plan.json", plan)
    variables = write_json(
        run_dir / "ansible-vars.json",
        {
            "fleet_smoke_run_dir": str(run_dir),
            "fleet_smoke_level": plan["level"],
            "fleet_smoke_settings": plan["settings"] or "",
            "fleet_smoke_select": plan["select"] or "",
            "fleet_smoke_require_gpu": plan["require_gpu"],
            "fleet_smoke_timeout_s": plan["timeout_s"],
        },
    )
    print(f"fleet smoke test of {len(plan['hosts'])} host(s), level {plan['level']} -> {run_dir}", flush=True)
    if stop.signum is None:
        ansible = run_playbook(_playbook_argv(playbook, plan, variables), run_dir / "ansible.log", stop)
    else:
        ansible = {"rc": None, "interrupted": stop.name, "seconds": 0.0, "log": None}
    write_json(run_dir / "ansible.json", ansible)
    verdict = _finish(run_dir, plan, ansible, baseline)
    if ansible["rc"] not in (0, None) and not ansible["interrupted"]:
        print(
            f"fleet: ansible-playbook exited {ansible['rc']}: see {run_dir / 'ansible.log'}", file=sys.stderr
        )
    if ansible["interrupted"]:
        return 128 + (stop.signum or 2)
    return EXIT_OK if verdict == "PASSED" else EXIT_THRESHOLD_FAILED


def report_again(argv: list[str]) -> int:
    p = _Parser(
        prog="python -m fleet report", description="Write a fleet run's report again from its folder."
    )
    p.add_argument("run_dir", type=Path, help="a folder of reports/fleet/")
    p.add_argument("--baseline", type=Path, help="an earlier fleet.json to compare each host with")
    args = p.parse_args(argv)
    try:
        plan = json.loads((args.run_dir / "plan.json").read_text())
        ansible = json.loads((args.run_dir / "ansible.json").read_text())
        if (
            not isinstance(plan, dict)
            or not isinstance(plan.get("hosts"), list)
            or not isinstance(ansible, dict)
        ):
            raise ValueError("plan.json or ansible.json is not what `python -m fleet` writes")
        baseline = load_baseline(args.baseline) if args.baseline else None
    except (OSError, ValueError) as err:
        print(f"fleet: error: {args.run_dir}: not a fleet run's folder ({err})", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BaselineError as err:
        print(f"fleet: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    plan["baseline"] = str(args.baseline) if args.baseline else None
    verdict = _finish(args.run_dir.resolve(), plan, ansible, baseline)
    return EXIT_OK if verdict == "PASSED" else EXIT_THRESHOLD_FAILED
