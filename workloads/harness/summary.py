"""The one-screen summary printed at the end of a run."""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

_STYLE = {"passed": "bold green", "failed": "bold red", "unchecked": "bold yellow"}


def print_summary(result: dict, out_dir: str, console: Console | None = None, written: bool = True) -> None:
    """The run's verdict and figures; `written`: whether result.json is on disk (a full disk: it is not)."""
    console = console or Console()
    ds = result["dataset"]
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("workload", f"{result['workload']} {result['stage'] or ''} ({result['level']})")
    dataset = f"{ds['name']} from {ds['source']} ({ds['train_size']} train / {ds['test_size']} test)"
    if ds["fallback"]:
        dataset = f"[bold red]FALLBACK, NOT MNIST:[/] {dataset}"
    table.add_row("dataset", dataset)
    table.add_row("backend", f"{result['backend']} on {result['device']}  seed {result['seed']}")
    for name, verdict in result["thresholds"].items():
        mark = "[green]pass[/]" if verdict["passed"] else "[red]FAIL[/]"
        actual = "n/a" if verdict["actual"] is None else f"{verdict['actual']:.4f}"
        table.add_row(name, f"{actual}  (needs {verdict['op']} {verdict['value']})  {mark}")
    for name, value in result["metrics"].items():
        if name not in result["thresholds"] and isinstance(value, int | float):
            table.add_row(name, f"{value:.4f}" if isinstance(value, float) else str(value))
    t = result["timings"]
    speed = (
        f"{t['steady_ms_per_step']:.2f} ms/step, {t['samples_per_s']:.0f} samples/s"
        if t.get("samples_per_s")
        else "n/a"
    )
    first = f"{t['first_epoch_s']:.1f} s" if t.get("first_epoch_s") is not None else "n/a"
    table.add_row("time", f"{t['total_s']:.1f} s total, first epoch {first}, steady {speed}")
    saved = "" if written else " NOT written (out of space)"
    table.add_row("output", f"{out_dir}/result.json{saved} + {len(result['plots'])} plot(s)")
    status = result["status"]
    console.print(
        Panel(
            table,
            title=f"[{_STYLE.get(status, 'bold red')}]{status.upper()}[/]: {result['message']}",
            expand=False,
        )
    )
