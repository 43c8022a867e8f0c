"""Writing figures (core layer): numerics/ and the commands save their matplotlib plots here."""

from __future__ import annotations

from popgrad.errors import PopgradError


def save_figure(fig, path: str, dpi: int = 120) -> None:
    """Write a matplotlib figure to --plot PATH (one-line PopgradError if it cannot), then close it."""
    import matplotlib.pyplot as plt  # heavy optional dependency: loaded only when a figure is written

    try:
        fig.savefig(path, dpi=dpi)
    except OSError as exc:
        raise PopgradError(f"--plot: cannot write {path!r}: {exc.strerror}") from None
    finally:
        plt.close(fig)
