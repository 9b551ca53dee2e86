"""Did the check process finish? A run that did not finish is never a pass.

The check process can die (a framework that aborts: XLA's "LLVM ERROR: PTX version 8.5 does not support target
'sm_120'", tensorflow/tensorflow#111958; a segfault; ``os._exit`` in a check), be killed by a signal, or exit
while checks are still unrun. The plugin's journal (smoke_tests/plugin.py) lists the checks collected and each
check as it starts; the results list those that finished. From the three this module says which check was
running, what it said last (its output after its ``--- smoke check started:`` line in pytest.log) and which
checks never ran, as the report's records: the running check as an error, and a ``suite`` error that makes the
verdict FAILED.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
from pathlib import Path
from typing import Any

from smoke_tests.plugin import STARTED

JOURNAL = "journal.jsonl"  # the plugin's --smoke-journal, in the report folder
LOG = "pytest.log"  # the check process's stdout and stderr
LAST_WORDS = 12  # lines of a dying check's output kept in the report
# Python's fault handler follows a fatal signal with every thread's stack (kept in pytest.log): not words.
_STACK_DUMP = re.compile(
    r'^\s+File "|^Fatal Python error|^Current thread|^Thread 0x|^Extension modules|^Stack \(most recent|'
    r"^\s*<no Python frame>|^\s*\(total: \d+\)"
)


def read_journal(out: Path) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """(the checks collected, or None when collection never finished; the checks that started, in order)."""
    collected, started = None, []
    with contextlib.suppress(OSError):
        for line in (out / JOURNAL).read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("event") == "collected":
                    collected = record["checks"]
                elif record.get("event") == "started":
                    started.append(record)
    return collected, started


def last_words(out: Path, check_id: str | None) -> list[str]:
    """The last lines the check process wrote after ``check_id`` started (after collection when None)."""
    try:
        lines = (out / LOG).read_text(errors="replace").splitlines()
    except OSError:
        return []
    if check_id is not None:
        marks = [i for i, line in enumerate(lines) if line == STARTED + check_id]
        lines = lines[marks[-1] + 1 :] if marks else lines
    said = [line.rstrip()[:300] for line in lines if line.strip() and not _STACK_DUMP.match(line)]
    return said[-LAST_WORDS:]


def how_it_ended(code: int | None, note: str) -> str:
    """ "was killed by SIGABRT", "exited (code 1)", or the runner's own note (stopped, timed out)."""
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    if code is not None:
        return f"exited (code {code})"
    return note or "stopped"


def unfinished(
    out: Path, finished: list[dict[str, Any]], code: int | None, note: str
) -> dict[str, Any] | None:
    """Why the run did not finish, or None when every collected check reported and pytest ended normally.

    Returns {"how", "running" (the check that was running: id, name, category), "last_words", "not_run"
    (ids), "exit", "message"}."""
    collected, started = read_journal(out)
    done = {c["id"] for c in finished}
    running = next((s for s in reversed(started) if s["id"] not in done), None)
    not_run = [
        c["id"] for c in collected or [] if c["id"] not in done and c["id"] != (running or {}).get("id")
    ]
    if code in (0, 1) and running is None and not not_run and not note:
        return None
    if code in (2, 3, 4, 5) and not started:
        return None  # pytest could not run the checks at all: the runner says so (exit 2)
    how = how_it_ended(code, note)
    words = last_words(out, running["id"] if running else None)
    where = f" while {running['category']}/{running['name']} ran" if running else ""
    message = f"the check process {how}{where}" if code is not None else how
    if not_run:
        message += f"; {len(not_run)} check(s) did not run"
    if running and words:
        message += f". Its last words: {words[-1]}"
    return {
        "how": how,
        "running": running,
        "last_words": words,
        "not_run": not_run,
        "exit": code,
        "message": message,
    }


def records(state: dict[str, Any], interrupted: bool) -> list[dict[str, Any]]:
    """The report's records of an unfinished run: the check that was running (an error, unless the user
    interrupted the run: then only the checks that finished are listed) and the ``suite`` error."""
    found = []
    running = state["running"]
    if running and not interrupted:
        said = state["last_words"][-1] if state["last_words"] else "no output"
        found.append({
            "id": running["id"], "name": running["name"], "category": running["category"], "status": "error",
            "duration_s": 0, "message": f"the check process {state['how']} while this check ran: {said}",
            "details": {"last_words": state["last_words"]},
        })  # fmt: skip
    found.append({
        "id": "suite", "name": "suite", "category": "suite", "status": "error", "duration_s": 0,
        "message": state["message"],
        "details": {k: state[k] for k in ("running", "last_words", "not_run", "exit")},
    })  # fmt: skip
    return found
