"""The parts of the timeline decided in Python: the palette of the lanes and the plotly layout
template. viewer/js/timeline.js adds the rows, ticks, labels and arrows to the figure, and
paints the lanes (one pixel column per server cell) on a canvas under it.

A cell's colour index into `colors` is:
  thread colours   0 .. P-1       (light variant P .. 2P-1: column less than half covered)
  state colours    2P .. 2P+4     (light 2P+5 .. 2P+9)
  other            2P+10          (light 2P+11): keys lumped beyond the top ones
  dimmed           2P+12          threads outside the current thread filter
"""

from __future__ import annotations

from typing import Any

from osvtrace.model.sched import STATE_NAMES

# Tableau 20, reordered so neighbours differ in hue
THREAD_COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7",
                 "#9c755f", "#499894", "#d37295", "#8cd17d", "#b6992d", "#a0cbe8", "#ffbe7d", "#79706e",
                 "#86bcb6", "#f1ce63", "#d4a6c8", "#bab0ac"]
STATE_COLORS = {"running": "#2e9e44", "runnable": "#4f8fe0", "waiting": "#e8833a", "sleeping": "#c9d1dc",
                "dead": "#444444"}
OTHER_COLOR = "#8a8a8a"
DIM_COLOR = "#e4e4e4"
ARROW_COLORS = {"wake": "#d62728", "handoff": "#7b3fb5", "packet": "#138a8a"}
LIGHTEN = 0.55  # the light variant: this much of the way to white
ROW_HEIGHT = 22  # px per lane


def lighten(color: str, amount: float = LIGHTEN) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    mix = [round(c + (255 - c) * amount) for c in (r, g, b)]
    return "#" + "".join(f"{c:02x}" for c in mix)


def palette() -> dict[str, Any]:
    p = len(THREAD_COLORS)
    states = [STATE_COLORS[STATE_NAMES[k]] for k in sorted(STATE_NAMES)]
    colors = (THREAD_COLORS + [lighten(c) for c in THREAD_COLORS] + states + [lighten(c) for c in states]
              + [OTHER_COLOR, lighten(OTHER_COLOR), DIM_COLOR])
    n = len(colors)
    return {"colors": colors, "n": n, "threads": p, "thread_light": p, "states": 2 * p,
            "state_light": 2 * p + len(states), "other": 2 * p + 2 * len(states),
            "other_light": 2 * p + 2 * len(states) + 1, "dim": n - 1,
            "state_names": [STATE_NAMES[k] for k in sorted(STATE_NAMES)], "state_colors": states,
            "arrow_colors": ARROW_COLORS, "row_height": ROW_HEIGHT}


def layout_template() -> dict[str, Any]:
    """What every timeline figure shares; the rows, ranges and ticks are added per view."""
    return {
        "margin": {"l": 190, "r": 16, "t": 34, "b": 10},
        # transparent: the lanes are painted on a canvas under the figure (viewer/js/timeline.js)
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "lanes_bgcolor": "#f7f9fb",
        "font": {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12, "color": "#1f2933"},
        "showlegend": False,
        "dragmode": "pan",
        "hovermode": "closest",
        "xaxis": {"side": "top", "showgrid": True, "gridcolor": "rgba(31,41,51,0.09)", "zeroline": False, "ticks": "outside",
                  "ticklen": 4, "tickcolor": "#9aa5b1", "linecolor": "#9aa5b1", "showline": True,
                  "tickfont": {"size": 11}},
        "yaxis": {"fixedrange": True, "autorange": False, "showgrid": False, "zeroline": False, "ticks": "",
                  "tickfont": {"size": 12}, "automargin": False},
    }
