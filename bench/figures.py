"""What every bench figure with one labelled panel does last: its axis labels and title, a small
legend, a tight layout, the PNG saved and the figure closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def finish(fig: Any, ax: Any, path: Path, *, ylabel: str, title: str, dpi: int,
           xlabel: str | None = None) -> None:
    """Label `ax` (x only when `xlabel` is given: tick labels may say it), add its legend in
    7-point type and save `fig` to `path` at `dpi`, then close it."""
    import matplotlib.pyplot as plt

    if xlabel is not None:
        ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
