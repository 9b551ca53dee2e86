"""One screen: each layer OK / WARN / BROKEN / n/a with what was found, then the cause and what to run."""

from __future__ import annotations

import textwrap

from gpu_doctor.model import BROKEN, OK, WARN, Diagnosis

WIDTH = 110
NAME_W, STATUS_W = 16, 12


def _wrap(text: str, indent: int) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=" " * indent, subsequent_indent=" " * (indent + 2)) or [
        ""
    ]


def render(diagnosis: Diagnosis, prefix: str = "") -> str:
    """The diagnosis as text; ``prefix`` starts every line (e.g. "[keras-workstation] ")."""
    lines = [f"GPU diagnosis (backend {diagnosis.backend or '?'}; {diagnosis.duration_s:.1f} s)"]
    if diagnosis.staged_root:
        lines.append(
            f"!! staged root {diagnosis.staged_root} (test hook GPU_DOCTOR_ROOT): not this machine's hardware"
        )
    pad = 2 + NAME_W + STATUS_W
    for layer in diagnosis.layers:
        head = f"  {layer.title:<{NAME_W}}{layer.status:<{STATUS_W}}"
        body = _wrap(layer.summary or "", pad)
        lines.append(head + body[0].lstrip())
        lines.extend(body[1:])
        if layer.status in (BROKEN, WARN):
            if layer.cause and layer.cause != layer.summary:
                lines.extend(_wrap(f"cause: {layer.cause}", pad))
            if layer.remedy:
                lines.extend(_wrap(f"run:   {layer.remedy}", pad))
        for note in layer.notes if layer.status in (OK, WARN) else []:
            if note != layer.cause:
                lines.extend(_wrap(f"note:  {note}", pad))
    first = diagnosis.first_broken
    if first is not None:
        lines.append(f"verdict: BROKEN at the {first.title} layer")
        lines.extend(_wrap(f"cause: {first.cause}", 2))
        lines.extend(_wrap(f"run:   {first.remedy}", 2))
    elif not diagnosis.gpu_found:
        lines.extend(_wrap(f"verdict: no NVIDIA GPU found ({diagnosis.no_gpu_reason})", 0))
    else:
        warned = [layer.title for layer in diagnosis.layers if layer.status == WARN]
        lines.append("verdict: OK" + (f" (warnings: {', '.join(warned)})" if warned else ""))
    return "\n".join(prefix + line for line in lines)
