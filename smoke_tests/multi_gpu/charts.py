"""The multi-GPU checks' plots: the P2P copy-bandwidth matrix as a heatmap, the all-reduce sweep."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from smoke_tests.report import _pyplot as pyplot  # matplotlib, headless


def p2p_heatmap(
    labels: list[str],
    gbs: dict[tuple[int, int], float],
    flagged: set[tuple[int, int]],
    title: str,
    path: Path,
) -> Path:
    """GB/s from each device (row) to each other (column); a flagged pair is outlined in red."""
    plt = pyplot()
    n = len(labels)
    grid = [[gbs.get((i, j), math.nan) for j in range(n)] for i in range(n)]
    size = max(3.2, 0.55 * n + 2.2)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(grid, cmap="viridis")
    fig.colorbar(image, ax=ax, label="GB/s")
    for i in range(n):
        for j in range(n):
            if i == j or math.isnan(grid[i][j]):
                continue
            value = grid[i][j]
            bright = image.norm(value) > 0.6  # viridis turns yellow: dark text there
            ax.text(
                j,
                i,
                f"{value:.3g}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if bright else "white",
            )
            if (i, j) in flagged:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", lw=2))
    ax.set_xticks(range(n), labels, fontsize=7, rotation=45, ha="right")
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_xlabel("to")
    ax.set_ylabel("from")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def all_reduce_chart(rows: list[dict[str, Any]], floor: float | None, title: str, path: Path) -> Path:
    """algbw and busbw against the message size, with the floor when there is one."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sizes = [r["mib"] for r in rows]
    ax.plot(sizes, [r["busbw_gbs"] for r in rows], marker="o", label="busbw")
    ax.plot(sizes, [r["algbw_gbs"] for r in rows], marker=".", ls="--", label="algbw")
    if floor:
        ax.axhline(floor, color="#c33", lw=1, label=f"floor {floor:.3g}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("MiB per device")
    ax.set_ylabel("GB/s")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
