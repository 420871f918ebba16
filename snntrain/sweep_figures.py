"""A sweep's figures, drawn with matplotlib from the rows of its summary (:mod:`snntrain.sweep`).

* ``summary.png``: one panel per final metric (``test_acc``, ``best_test_acc``,
  ``test_loss``, ``train_acc``, ``train_time_s``), a point per setting at the mean over its
  seeds with an error bar of ± one sample standard deviation (none for one seed).
* ``curves.png``: the test accuracy after each epoch, one line per setting (the mean over
  seeds, a band of ± one standard deviation where there are several).

Settings are named by the overrides that set them apart (those all jobs share are in the title).
"""
from __future__ import annotations

import io
import statistics
from typing import Any, Callable

#: the metrics drawn, with their axis labels
LABELS = {"test_acc": "test accuracy", "best_test_acc": "best test accuracy", "test_loss": "test loss",
          "train_acc": "train accuracy", "train_time_s": "training time (s)"}


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def _name(setting: tuple[str, ...], common: list[str]) -> str:
    return " ".join(o for o in setting if o not in common) or "(all)"


def _title(common: list[str]) -> str:
    text = " ".join(common)
    return f"all jobs: {text[:110]}{'…' if len(text) > 110 else ''}" if text else ""


def summary_png(groups: list[dict[str, Any]], common: list[str]) -> bytes:
    """Each metric per setting, mean ± std over seeds (``groups`` from :func:`snntrain.sweep.groups`)."""
    from matplotlib.figure import Figure

    shown = [m for m in LABELS if any(g.get(m) for g in groups)] or ["test_acc"]
    names = [_name(g["setting"], common) for g in groups]
    fig = Figure(figsize=(max(6.4, 1.1 * len(groups) * len(shown) ** 0.5 + 2), 2.6 * len(shown) + 1.0), dpi=100)
    axes = fig.subplots(len(shown), 1, sharex=True, squeeze=False)[:, 0]
    x = list(range(len(groups)))
    for ax, m in zip(axes, shown):
        for i, g in enumerate(groups):
            v = g.get(m)
            if v is None:
                continue
            mean, std, n = v
            ax.errorbar([i], [mean], yerr=[std] if n > 1 else None, fmt="o", capsize=6, markersize=7, color=f"C{i % 10}")
            ax.annotate(f"{mean:.4g}" + (f" ± {std:.2g}" if n > 1 else "") + f"  (n={n})", (i, mean),
                        textcoords="offset points", xytext=(8, 4), fontsize=7)
        ax.set_ylabel(LABELS[m], fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(x)
    axes[-1].set_xticklabels(names, rotation=20 if len(groups) > 3 else 0, ha="right" if len(groups) > 3 else "center",
                             fontsize=8)
    axes[-1].set_xlim(-0.5, len(groups) - 0.5)
    axes[-1].set_xlabel("setting (mean ± std over seeds)")
    fig.suptitle(_title(common) or "sweep summary", fontsize=9)
    fig.tight_layout()
    return _png(fig)


def curves_png(rows: list[dict[str, Any]], setting: Callable[[dict[str, Any]], tuple[str, ...]],
               common: list[str]) -> bytes:
    """Test accuracy per epoch, one line per setting: the mean over its seeds, a band of ± std."""
    from matplotlib.figure import Figure

    by_setting: dict[tuple[str, ...], dict[int, list[float]]] = {}
    for row in rows:
        if row["status"] != "ok":
            continue
        per_epoch = by_setting.setdefault(setting(row), {})
        for epoch, acc in row.get("history") or []:
            per_epoch.setdefault(epoch, []).append(acc)
    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    ax = fig.subplots()
    for i, (s, per_epoch) in enumerate(by_setting.items()):
        if not per_epoch:
            continue
        epochs = sorted(per_epoch)
        mean = [statistics.fmean(per_epoch[e]) for e in epochs]
        std = [statistics.stdev(per_epoch[e]) if len(per_epoch[e]) > 1 else 0.0 for e in epochs]
        n = max(len(v) for v in per_epoch.values())
        ax.plot(epochs, mean, marker="o", color=f"C{i % 10}", label=f"{_name(s, common)} (n={n})")
        if n > 1:
            ax.fill_between(epochs, [m - d for m, d in zip(mean, std)], [m + d for m, d in zip(mean, std)],
                            color=f"C{i % 10}", alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
        epochs_all = sorted({e for p in by_setting.values() for e in p})
        if len(epochs_all) <= 20:
            ax.set_xticks(epochs_all)
    else:
        ax.text(0.5, 0.5, "no epoch records in the runs' metrics.json", ha="center", transform=ax.transAxes)
    ax.set_title(_title(common) or "test accuracy per epoch", fontsize=9)
    fig.tight_layout()
    return _png(fig)
