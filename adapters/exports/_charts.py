"""Charts as inline SVG, drawn by matplotlib without a display and the same bytes every time.

Values arrive exact (Decimal or int) and become floats here only to be drawn: no figure that
reaches a table or a total passes through this module.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, Final

import matplotlib

matplotlib.use("Agg")  # no display on a server; the SVG backend does the drawing for savefig

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from matplotlib.typing import RcKeyType

from adapters.exports._model import Chart

# rcParams are process-wide: charts drawn from two threads at once would see each other's settings.
_LOCK: Final = threading.Lock()
_RC: Final[dict[RcKeyType, Any]] = {
    "svg.hashsalt": "quipu",  # element ids from the content, not from a random salt
    "svg.fonttype": "path",  # glyphs as paths: the page needs no font at all
    "svg.image_inline": True,
    "font.family": "DejaVu Sans",  # shipped inside matplotlib, so every machine draws the same glyphs
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "path.simplify": True,
}
_PALETTE: Final = ("#2f6db5", "#e08a2c", "#3a9a5b", "#c8453c", "#7b5ea7", "#8c6d46", "#d46fb0", "#6f6f6f")
_XML_PROLOGUE: Final = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)
_METADATA: Final = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
_IDS: Final = re.compile(r'(\bid="|\bxlink:href="#|\bhref="#|url\(#)([^")]+)')


def chart_svg(chart: Chart, prefix: str, number: Callable[[Decimal], str] = str) -> str:
    """The chart as an ``<svg>`` element to inline in HTML, its element ids prefixed with ``prefix``.

    ``number`` writes tick and share labels, so the axes read like the tables (``1.234`` in pt_BR).
    """
    with _LOCK, matplotlib.rc_context():
        matplotlib.rcdefaults()  # a user's matplotlibrc must not change the report
        with matplotlib.rc_context(rc=_RC):
            # Margins from the labels' lengths rather than matplotlib's constrained layout, which drew
            # every chart twice and took a third of a chart's time (a console page has a 500 ms budget).
            fig = Figure(figsize=(7.5, 3.8))
            ax = fig.add_subplot()
            _draw(ax, chart, number)
            fig.subplots_adjust(**_margins(chart))
            ax.set_title(chart.title, loc="left", fontweight="bold")
            buf = io.StringIO()
            # Without a date (and the version stamp in the metadata) two runs give the same bytes.
            fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = _METADATA.sub("", _XML_PROLOGUE.sub("", buf.getvalue()))
    # Several charts share one page: ids such as a glyph's "DejaVuSans-30" must not collide.
    return _IDS.sub(lambda m: f"{m.group(1)}{prefix}{m.group(2)}", svg).strip()


def _draw(ax: Axes, chart: Chart, number: Callable[[Decimal], str]) -> None:
    labels = list(chart.labels)
    series = {name: [float(v) for v in values] for name, values in chart.series.items()}
    if chart.kind == "pie":
        values = next(iter(series.values()))
        ax.pie(
            values,
            labels=labels,
            colors=_colors(len(values)),
            autopct=lambda share: number(Decimal(f"{share:.1f}")) + "%",
            startangle=90,
            counterclock=False,
        )
        ax.set_aspect("equal")
        ax.grid(False)
        return
    positions = list(range(len(labels)))
    horizontal = chart.kind == "hbar"
    if chart.kind == "stacked_bar":
        above = [0.0] * len(labels)
        below = [0.0] * len(labels)
        for (name, values), color in zip(series.items(), _colors(len(series)), strict=False):
            bottoms = [below[i] if v < 0 else above[i] for i, v in enumerate(values)]
            ax.bar(positions, values, 0.7, bottom=bottoms, label=name, color=color)
            for i, v in enumerate(values):
                if v < 0:
                    below[i] += v
                else:
                    above[i] += v
    else:
        width = 0.8 / len(series)
        for n, ((name, values), color) in enumerate(zip(series.items(), _colors(len(series)), strict=False)):
            offsets = [p - 0.4 + width * (n + 0.5) for p in positions]
            if horizontal:
                ax.barh(offsets, values, width, label=name, color=color)
            else:
                ax.bar(offsets, values, width, label=name, color=color)
    value_axis = ax.xaxis if horizontal else ax.yaxis
    value_axis.set_major_formatter(FuncFormatter(_tick(series.values(), number)))
    if horizontal:
        ax.set_yticks(positions, labels)
        ax.invert_yaxis()  # first label on top, as in the table
        ax.set_xlabel(chart.unit)
        ax.grid(axis="y", visible=False)
        ax.axvline(0, color="#444", linewidth=0.8)
    else:
        long_labels = len(labels) > 6 or any(len(label) > 12 for label in labels)
        # Past 16 bars, every k-th label only: a month of days would otherwise print on top of itself.
        step = -(-len(labels) // 16)
        shown = [label if i % step == 0 else "" for i, label in enumerate(labels)]
        ax.set_xticks(positions, shown, rotation=35 if long_labels else 0, ha="right" if long_labels else "center")
        ax.set_ylabel(chart.unit)
        ax.grid(axis="x", visible=False)
        ax.axhline(0, color="#444", linewidth=0.8)
    if len(series) > 1:
        # Beside the plot, where it cannot cover a bar.
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _margins(chart: Chart) -> dict[str, float]:
    longest = max((len(label) for label in chart.labels), default=0)
    right = 0.72 if len(chart.series) > 1 and chart.kind != "pie" else 0.98
    if chart.kind == "pie":
        return {"left": 0.05, "right": 0.95, "bottom": 0.05, "top": 0.88}
    if chart.kind == "hbar":
        return {"left": min(0.5, max(0.12, 0.03 + 0.0095 * longest)), "right": right, "bottom": 0.14, "top": 0.88}
    rotated = len(chart.labels) > 6 or longest > 12
    bottom = min(0.45, 0.1 + 0.011 * longest) if rotated else 0.12
    return {"left": 0.1, "right": right, "bottom": bottom, "top": 0.88}


def _colors(n: int) -> list[str]:
    return [_PALETTE[i % len(_PALETTE)] for i in range(n)]


def _tick(values: Iterable[Sequence[float]], number: Callable[[Decimal], str]) -> Callable[[float, float], str]:
    flat = [v for vs in values for v in vs]
    largest = max((abs(v) for v in flat), default=0.0)
    # Counts (all whole numbers) and large figures get whole-number ticks.
    decimals = 0 if largest >= 100 or all(v == int(v) for v in flat) else 2

    def tick(value: float, _position: float) -> str:
        # Rounded to a tick's precision first: a float such as 0.30000000000000004 is no label.
        return number(Decimal(f"{value:.{decimals}f}"))

    return tick
