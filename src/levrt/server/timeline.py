"""A task's runs on a time axis: a Gantt-style SVG drawn on the server (no script library),
for the task page and its ``/tasks/{id}/timeline.svg`` route.

The runs are grouped by namespace (``with lev / "scan":``), in the order each group first
started. Up to :data:`ROW_PER_RUN` runs each get a row with their label on the left; more are
packed into lanes (a run takes the first lane of its group free at its start, at most
:data:`MAX_LANES` lanes a group, the rest overlapping on the last) with labels inside the bars
that are wide enough. At most :data:`MAX_BARS` bars are drawn, so thousands of runs give an
SVG of bounded size; the group header says how many runs were left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from html import escape
from typing import Any

from levrt.server.labels import run_label

ROW_PER_RUN = 40
MAX_LANES = 8
MAX_BARS = 800
MAX_GROUPS = 30

WIDTH = 960  # px, the whole drawing
_LABEL_W = 230  # the label column (a row per run) or the group names (packed)
_ROW_H = 18
_BAR_H = 12
_AXIS_H = 24
_MIN_BAR = 2  # px: a run that took no time still shows
_CHAR_W = 6.6  # px per character of the 11 px font, to fit labels
# Tick steps in seconds; the smallest that leaves at most _MAX_TICKS ticks is taken.
_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200,
          10800, 21600, 43200, 86400, 172800, 604800)
_MAX_TICKS = 8
# No wider than its box: a narrow window scales the drawing down.
_FIT = "max-width:100%;height:auto"
_COLOURS = {"running": "#2b6cb0", "done": "#2f855a", "failed": "#c53030",
            "cancelled": "#718096", "queued": "#a0aec0"}


@dataclass
class _Group:
    name: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    lanes: list[list[dict[str, Any]]] = field(default_factory=list)
    left_out: int = 0


def _clock(moment: datetime, step: float, span: float) -> str:
    if span >= 86400:
        return moment.strftime("%m-%d %H:%M")
    if step < 1:
        return f"{moment:%H:%M:%S}.{moment.microsecond // 100_000}"
    return moment.strftime("%H:%M" if step >= 60 and moment.second == 0 else "%H:%M:%S")


def _seconds(delta: timedelta) -> str:
    """``0.25 s``, ``42 s``, ``3m05s``, ``1h02m03s``."""
    total = delta.total_seconds()
    if total < 10:
        return f"{total:.2f} s"
    minutes, seconds = divmod(int(total), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds} s"


def _ticks(start: datetime, end: datetime) -> tuple[float, list[datetime]]:
    span = (end - start).total_seconds()
    step = next((s for s in _STEPS if span / s <= _MAX_TICKS), _STEPS[-1])
    # Ticks on whole multiples of the step since midnight UTC (10:20, 10:25, ...).
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    first = midnight + timedelta(seconds=-(-(start - midnight).total_seconds() // step) * step)
    ticks = []
    moment = first
    while moment <= end:
        ticks.append(moment)
        moment += timedelta(seconds=step)
    return step, ticks


def _group_name(run: dict[str, Any]) -> str:
    return " / ".join(str(part) for part in run.get("namespace") or [])


def _groups(runs: list[dict[str, Any]]) -> list[_Group]:
    """The runs by namespace, each group in the order it first started; past
    :data:`MAX_GROUPS`, the remaining namespaces share one last group."""
    groups: dict[str, _Group] = {}
    for run in sorted(runs, key=lambda r: (r["started_at"], r.get("run_id") or 0)):
        name = _group_name(run)
        groups.setdefault(name, _Group(name)).runs.append(run)
    shown = list(groups.values())
    if len(shown) <= MAX_GROUPS:
        return shown
    rest = shown[MAX_GROUPS - 1:]
    merged = _Group(f"{len(rest)} more namespaces",
                    sorted((run for group in rest for run in group.runs),
                           key=lambda r: r["started_at"]))
    return [*shown[:MAX_GROUPS - 1], merged]


def _text(x: float, y: float, text: str, css: str, anchor: str = "start") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" class="{css}" text-anchor="{anchor}">'
            f"{escape(text)}</text>")


def _fit(text: str, width: float) -> str:
    """``text`` cut to ``width`` px (with an ellipsis), or empty when not even that fits."""
    room = int(width / _CHAR_W)
    if len(text) <= room:
        return text
    return text[:room - 1] + "…" if room >= 4 else ""


def timeline_svg(runs: list[dict[str, Any]], now: datetime | None = None) -> str:
    """The runs (as :meth:`~levrt.store.Store.list_runs` gives them: ``name``, ``spec``,
    ``namespace``, ``status``, timezone-aware ``started_at`` and ``finished_at``) as an SVG
    document, :data:`WIDTH` px wide. A run still going ends at ``now`` (default: the
    clock); runs not started are left out. Every text is escaped."""
    now = now or datetime.now(timezone.utc)
    started = [run for run in runs if run.get("started_at") is not None]
    if not started:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{WIDTH}" '
                f'height="{_ROW_H * 2}" viewBox="0 0 {WIDTH} {_ROW_H * 2}" style="{_FIT}" '
                f'role="img" aria-label="timeline: no runs yet"><style>{_STYLE}</style>'
                f'{_text(4, _ROW_H + 4, "No runs have started yet.", "tl-label")}</svg>')

    def end_of(run: dict[str, Any]) -> datetime:
        return max(run["finished_at"] or now, run["started_at"])

    start = min(run["started_at"] for run in started)
    end = max(end_of(run) for run in started)
    span = max((end - start).total_seconds(), 0.5)
    end = start + timedelta(seconds=span)
    per_run = len(started) <= ROW_PER_RUN
    plot_x = _LABEL_W + 8
    plot_w = WIDTH - plot_x - 12

    def x_of(moment: datetime) -> float:
        return plot_x + (moment - start).total_seconds() / span * plot_w

    groups = _groups(started)
    # Each group its share of the bars, so that a large fan-out leaves the others drawn.
    share = MAX_BARS // len(groups)
    for group in groups:
        lane_ends: list[float] = []
        for drawn, run in enumerate(group.runs):
            if drawn >= share:
                group.left_out += 1
                continue
            if per_run:
                group.lanes.append([run])
                continue
            left = x_of(run["started_at"])
            # The first lane free at the run's start (a pixel apart), else the last one.
            lane = next((i for i, lane_end in enumerate(lane_ends) if lane_end < left),
                        None)
            if lane is None and len(lane_ends) < MAX_LANES:
                lane_ends.append(0.0)
                group.lanes.append([])
                lane = len(lane_ends) - 1
            lane = len(lane_ends) - 1 if lane is None else lane
            right = max(x_of(end_of(run)), left + _MIN_BAR)
            lane_ends[lane] = max(lane_ends[lane], right)
            group.lanes[lane].append(run)

    body: list[str] = []
    y = _AXIS_H
    for group in groups:
        counts: dict[str, int] = {}
        for run in group.runs:
            counts[run["status"]] = counts.get(run["status"], 0) + 1
        summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
        title = group.name or "top level"
        more = f" · {group.left_out} not drawn" if group.left_out else ""
        body.append(f'<rect x="0" y="{y}" width="{WIDTH}" height="{_ROW_H}" class="tl-group"/>')
        body.append(_text(4, y + 13, _fit(f"{title} · {summary}{more}", WIDTH - 8),
                          "tl-head"))
        y += _ROW_H
        for lane in group.lanes:
            for run in lane:
                left = x_of(run["started_at"])
                width = max(x_of(end_of(run)) - left, _MIN_BAR)
                body.append(_bar(run, end_of(run), left, width, y, per_run))
            if per_run:
                body.append(_text(plot_x - 6, y + 13, _fit(run_label(lane[0]), _LABEL_W - 10),
                                  "tl-label", "end"))
            y += _ROW_H
    height = y + 4

    step, ticks = _ticks(start, end)
    axis = [f'<line x1="{plot_x}" y1="{_AXIS_H - 4}" x2="{plot_x + plot_w}" '
            f'y2="{_AXIS_H - 4}" class="tl-axis"/>',
            _text(4, 14, f"{start:%Y-%m-%d} UTC", "tl-label")]
    for tick in ticks:
        x = x_of(tick)
        axis.append(f'<line x1="{x:.1f}" y1="{_AXIS_H - 8}" x2="{x:.1f}" y2="{height}" '
                    'class="tl-tick"/>')
        anchor = "end" if x > WIDTH - 30 else "middle"  # the last tick's time fits
        axis.append(_text(x, 14, _clock(tick, step, span), "tl-label", anchor))
    label = f"timeline of {len(started)} run{'' if len(started) == 1 else 's'}"
    return "".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" style="{_FIT}" role="img" '
        f'aria-label="{label}"><style>{_STYLE}</style>',
        *axis, *body, "</svg>"])


def _stamp(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d} UTC"


def _bar(run: dict[str, Any], finish: datetime, left: float, width: float, y: int,
         per_run: bool) -> str:
    """One run's bar, its tooltip saying when it started, ended and how long it took."""
    status = str(run["status"])
    label = run_label(run)
    ends = f"ended {_stamp(finish)}" if run["finished_at"] else "still running"
    tip = (f"{label} ({status})\nstarted {_stamp(run['started_at'])}\n{ends}\n"
           f"took {_seconds(finish - run['started_at'])}")
    css = f"tl-bar tl-{status}" if status in _COLOURS else "tl-bar"
    inside = "" if per_run else _fit(label, width - 4)
    text = _text(left + 2, y + 12, inside, "tl-in") if inside else ""
    return (f'<g><title>{escape(tip)}</title><rect x="{left:.1f}" y="{y + 3}" '
            f'width="{width:.1f}" height="{_BAR_H}" rx="2" class="{css}"/>{text}</g>')


_STYLE = "".join(
    [".timeline text{font:11px system-ui,sans-serif}", ".tl-label{fill:#2d3748}",
     ".tl-head{fill:#1a202c;font-weight:600}", ".tl-in{fill:#fff}",
     ".tl-group{fill:#edf2f7}", ".tl-axis{stroke:#4a5568}",
     ".tl-tick{stroke:#cbd5e0;stroke-dasharray:2 3}", ".tl-bar{fill:#a0aec0}"]
    + [f".tl-{status}{{fill:{colour}}}" for status, colour in _COLOURS.items()])
