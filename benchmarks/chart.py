"""``chart.png``: per-call overhead and delivered events/s side by side (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _bars(
    ax: Any,
    labels: list[str],
    meds: list[float],
    los: list[float],
    his: list[float],
    colors: list[str],
    fmt: str,
) -> None:
    y = list(range(len(labels)))
    err = [
        [m - lo for m, lo in zip(meds, los, strict=True)],
        [hi - m for m, hi in zip(meds, his, strict=True)],
    ]
    ax.barh(y, meds, xerr=err, color=colors, capsize=3, error_kw={"elinewidth": 0.8})
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.grid(axis="x", which="both", alpha=0.25)
    for yi, m, hi in zip(y, meds, his, strict=True):
        ax.text(max(m, hi) * 1.12, yi, fmt.format(m), va="center", fontsize=7)
    ax.set_xlim(right=max(his) * 4)


def _series(
    subjects: dict[str, Any], key: str, keep: Any
) -> tuple[list[str], list[float], list[float], list[float], list[str]]:
    labels, meds, los, his, colors = [], [], [], [], []
    palette = {"ours": "#2b8a3e", "peer": "#868e96", "floor": "#74c0fc"}
    for sid, sub in subjects.items():
        sm = sub["summary"].get(key) or {}
        if not keep(sid) or sm.get("median") is None:
            continue
        labels.append(sub["label"])
        meds.append(sm["median"])
        los.append(sm["min"])
        his.append(sm["max"])
        colors.append(palette.get(sub["group"], "#868e96"))
    return labels, meds, los, his, colors


def write(results: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    suites = results["suites"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    if "percall" in suites:
        labels, meds, los, his, colors = _series(
            suites["percall"]["subjects"], "p50_us", lambda sid: True
        )
        _bars(axes[0], labels, meds, los, his, colors, "{:.3g} µs")
        axes[0].set_title(
            "Per-call overhead of tracking one message\n(p50 µs, log scale; lower is better)",
            fontsize=10,
        )
    if "e2e" in suites:
        labels, meds, los, his, colors = _series(
            suites["e2e"]["subjects"], "events_per_s", lambda sid: True
        )
        if "capacity" in suites:
            cl, cm, clo, chi, _ = _series(
                suites["capacity"]["subjects"],
                "events_per_s",
                lambda sid: sid.startswith("ingest_100"),
            )
            labels += [f"{x} → discarding sink" for x in cl]
            meds, los, his, colors = meds + cm, los + clo, his + chi, colors + ["#94d82d"] * len(cm)
        _bars(axes[1], labels, meds, los, his, colors, "{:,.0f}")
        axes[1].set_title(
            "Delivered events/s into the local collector\n(log scale; higher is better)",
            fontsize=10,
        )
    mode = (
        "quick check - not numbers to quote" if results["quick"] else f"{results['rounds']} rounds"
    )
    fig.suptitle(
        f"agentsight-async vs the original SDK and peers · {results['machine']['cpus']} CPUs · "
        f"{mode} · bars: median, whiskers: min-max over rounds",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
