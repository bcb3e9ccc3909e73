"""The task page's timeline (levrt.server.timeline): the SVG drawn from run rows, and its
route and place on the task page through the app."""

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

from helpers_hub import PASSWORD, TestClient

from levrt.server import Settings, create_app
from levrt.server.timeline import MAX_BARS, MAX_GROUPS, MAX_LANES, ROW_PER_RUN, timeline_svg

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 12, 1, 10, 0, 0, tzinfo=timezone.utc)


def run(run_id, start, end=None, status="done", name="port_os.entry", arg="127.0.0.1",
        namespace=None):
    return {"run_id": run_id, "name": name, "spec": {"arg": arg}, "namespace": namespace,
            "status": status, "started_at": T0 + timedelta(seconds=start),
            "finished_at": None if end is None else T0 + timedelta(seconds=end)}


def bars(svg):
    """``(tooltip, x, width, css class)`` of each bar, in drawing order."""
    root = ET.fromstring(svg)
    found = []
    for group in root.iter(f"{SVG}g"):
        rect = group.find(f"{SVG}rect")
        found.append((group.find(f"{SVG}title").text, float(rect.get("x")),
                      float(rect.get("width")), rect.get("class")))
    return found


def texts(svg):
    return [node.text for node in ET.fromstring(svg).iter(f"{SVG}text")]


def test_a_bar_per_run_grouped_by_namespace_coloured_by_status():
    runs = [run(1, 0, 10, namespace=["recon"], name="alive.entry", arg="127.0.0.0/30"),
            run(2, 10, 30, namespace=["recon", "ports"], arg="127.0.0.1"),
            run(3, 11, 20, "failed", namespace=["recon", "ports"], arg="127.0.0.2"),
            run(4, 12, None, "running", namespace=["recon", "ports"], arg="127.0.0.3")]
    svg = timeline_svg(runs, now=T0 + timedelta(seconds=60))
    drawn = bars(svg)
    assert [b[3] for b in drawn] == ["tl-bar tl-done", "tl-bar tl-done", "tl-bar tl-failed",
                                     "tl-bar tl-running"]
    words = texts(svg)
    # Group headers with their counts, then each run's label, as the runs list shows it.
    assert "recon · 1 done" in words
    assert "recon / ports · 1 done, 1 failed, 1 running" in words
    assert ["alive 127.0.0.0/30", "port_os 127.0.0.1", "port_os 127.0.0.2",
            "port_os 127.0.0.3"] == [w for w in words if w.startswith(("alive ", "port_os "))]
    # The axis runs from the first start to now (the running run): 60 s, ticks every 10 s.
    assert [w for w in words if w and w.startswith("10:0")] == [
        "10:00:00", "10:00:10", "10:00:20", "10:00:30", "10:00:40", "10:00:50", "10:01:00"]
    first, second, _, running = drawn
    assert first[1] < second[1] and abs((first[1] + first[2]) - second[1]) < 0.2
    # A running bar reaches now, the right end of the axis.
    assert running[1] + running[2] == max(b[1] + b[2] for b in drawn) > second[1] + second[2]
    assert running[0].endswith("12.000 UTC\nstill running\ntook 48 s")
    assert second[0] == ("port_os 127.0.0.1 (done)\nstarted 2026-12-01 10:00:10.000 UTC\n"
                         "ended 2026-12-01 10:00:30.000 UTC\ntook 20 s")


def test_hostile_names_are_escaped():
    hostile = '<script>alert("x")</script>&amp;'
    runs = [run(1, 0, 1, name=hostile + ".entry", arg="']]><b>", namespace=[hostile]),
            run(2, 1, 2, status="<img src=x onerror=alert(1)>")]
    svg = timeline_svg(runs)
    assert "<script" not in svg and "<img" not in svg and "<b>" not in svg
    # Still one well-formed document, the names shown as they are.
    words = texts(svg)
    assert any(w and w.startswith('<script>alert("x")</script>&amp;') for w in words)
    assert bars(svg)[0][0].startswith('<script>alert("x")</script>&amp; ' + "']]><b>")
    # An unknown status gets no class of its own.
    assert bars(svg)[1][3] == "tl-bar"


def test_a_run_of_no_time_still_shows_and_so_does_a_task_of_no_time():
    svg = timeline_svg([run(1, 5, 5), run(2, 5, 5)])
    (tip, _, width, _), _ = bars(svg)
    assert width >= 2 and tip.endswith("took 0.00 s")
    assert timeline_svg([run(1, 0, 0, status="running")], now=T0)  # now == start


def test_no_runs_started_yet():
    svg = timeline_svg([{**run(1, 0), "started_at": None, "status": "queued"}])
    assert texts(svg) == ["No runs have started yet."]
    assert timeline_svg([]) == svg


def test_ticks_fit_long_and_short_spans():
    for span, expect in ((0.3, "10:00:00.0"), (1.1, "10:00:00.0"), (45 * 60, "10:00"),
                         (5 * 3600, "10:00"), (3 * 86400, "12-01 12:00")):
        svg = timeline_svg([run(1, 0, span)])
        ticks = [w for w in texts(svg) if w and re.fullmatch(r"[\d:.\- ]+", w)]
        assert 3 <= len(ticks) <= 9, (span, ticks)
        assert ticks[0] == expect, (span, ticks)


def test_many_runs_are_packed_into_lanes():
    # A fan-out of 60 runs, 12 at a time, then 5 one after the other.
    fan = [run(i, (i // 12) * 10, (i // 12) * 10 + 9, namespace=["scan"])
           for i in range(60)]
    serial = [run(100 + i, 50 + i * 2, 51 + i * 2, namespace=["report"]) for i in range(5)]
    assert len(fan + serial) > ROW_PER_RUN
    svg = timeline_svg(fan + serial)
    assert len(bars(svg)) == 65
    height = int(ET.fromstring(svg).get("height"))
    # scan: at most MAX_LANES lanes; report: one lane; plus headers and the axis.
    assert height <= 24 + 18 * (2 + MAX_LANES + 1) + 4


def test_thousands_of_runs_stay_bounded():
    runs = [run(i, i * 0.05, i * 0.05 + 3, name=f"probe{i}.entry", arg=f"127.0.0.{i % 250}",
                namespace=[f"ns{i % 5}"]) for i in range(5000)]
    svg = timeline_svg(runs)
    drawn = bars(svg)
    assert len(drawn) <= MAX_BARS
    assert len(svg) < 300_000
    heads = [w for w in texts(svg) if w and w.startswith("ns")]
    assert len(heads) == 5 and all("not drawn" in head for head in heads)
    # Every namespace gets its share of the bars.
    assert all(f"ns{i}" in head for i, head in enumerate(heads))
    # Thousands of namespaces: the last group holds the rest.
    many = [run(i, i, i + 1, namespace=[f"n{i}"]) for i in range(2000)]
    svg = timeline_svg(many)
    assert f"{2000 - MAX_GROUPS + 1} more namespaces · {2000 - MAX_GROUPS + 1} done" in " ".join(
        w or "" for w in texts(svg))
    assert len(svg) < 300_000


# -- through the app -------------------------------------------------------------------------


def test_the_task_page_shows_the_timeline_and_its_route_serves_it(store):
    store.create_user("alice", PASSWORD)
    store.create_user("bob", PASSWORD)
    job = store.create_job("sweep", owner="alice")
    store.create_run(job, 1, name="<b>alive</b>.entry", image=None, schema=None, coll="c",
                    spec={"arg": "127.0.0.1"}, namespace=["recon"])
    store.finish_run(job, 1, status="done", exit_code=0)
    store.create_run(job, 2, name="port_os.entry", image=None, schema=None, coll="c",
                    namespace=["recon", "ports"])
    with TestClient(create_app(Settings(db_url=store.url), store=store),
                    follow_redirects=False) as client:
        assert client.get(f"/tasks/{job}/timeline.svg").status_code == 303  # no session
        login(client, "alice")
        answer = client.get(f"/tasks/{job}/timeline.svg")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("image/svg+xml")
        assert answer.headers["cache-control"] == "no-store"
        assert [b[3] for b in bars(answer.text)] == ["tl-bar tl-done", "tl-bar tl-running"]
        assert "&lt;b&gt;alive&lt;/b&gt; 127.0.0.1" in answer.text
        page = client.get(f"/tasks/{job}").text
        box = re.search(r'<div id="timeline" data-src="([^"]+)" data-live="(\w+)">(.*?)</div>',
                        page, re.S)
        assert box.group(1) == f"/tasks/{job}/timeline.svg" and box.group(2) == "yes"
        assert bars(box.group(3))[0][0].startswith("<b>alive</b> 127.0.0.1 (done)")
        assert '<script src="/static/timeline.js"></script>' in page
        assert client.get("/static/timeline.js").status_code == 200
        login(client, "bob")
        assert client.get(f"/tasks/{job}/timeline.svg").status_code == 404


def login(client, name):
    client.cookies.clear()
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    answer = client.post("/login", data={"user": name, "password": PASSWORD,
                                         "csrf_token": csrf})
    assert answer.status_code == 303, answer.text
