"""The web pages (levrt.server.web): sessions and CSRF, market, package pages and sources,
tasks, and the Quick form, through FastAPI's TestClient on a store of the test's own. Tasks
really run: the tiny published packages below, from their files in the store."""

import re
import socket
import time
from types import SimpleNamespace

import pytest
from helpers_hub import PASSWORD, TestClient, make_manifest, make_wheel, upload

from levrt.server import Settings, create_app, sessions
from levrt.server.sessions import COOKIE

HELLO = '''
from levrt import Cr, ctx, remote


def hello(word: str, times: int = 1, loud: bool = False, tags: list[str] | None = None) -> Cr:
    @remote
    def entry():
        print(f"saying {word}")
        ctx.set(said=(word.upper() if loud else word) * times, tags=tags or [])
    return Cr("localhost/test:latest", "test/hello@1.0", entry=entry())
'''


def param(name, type_, required=True, default=None, placeholder=None, regex=None):
    return {"name": name, "type": type_, "kind": "positional_or_keyword", "required": required,
            "default": default, "placeholder": placeholder, "regex": regex,
            "desc": f"the {name}"}


HELLO_MANIFEST = {
    "levrt": 1, "package": "lev.alice.hello", "version": "1.0",
    "description": "Says <b>hello</b>",
    "header": {"homepage": "javascript:alert(1)", "github": "https://github.com/a/hello",
               "type": "SCRIPT", "version": "v2"},
    "exports": [{
        "kind": "tool", "name": "hello", "qualname": "lev.alice.hello:hello",
        "desc": "Say a word", "cats": {"attck": ["TA0043"], "blackarch": ["misc"]},
        "params": [param("word", "str", placeholder="hi", regex="^[a-z]+$"),
                   param("times", "int", required=False, default=1),
                   param("loud", "bool", required=False, default=False),
                   param("tags", "list[str] | None", required=False)],
    }],
}


@pytest.fixture
def client(store):
    with TestClient(create_app(Settings(db_url=store.url), store=store),
                    follow_redirects=False) as c:
        yield c


@pytest.fixture
def hub(store, client):
    """alice (two packages), bob (one), root (an administrator)."""
    tokens = {}
    for name in ("alice", "bob", "root"):
        store.create_user(name, PASSWORD, is_admin=name == "root")
        tokens[name] = store.create_token(name, "test")["token"]
    tool = make_manifest()
    tool["description"] = "Scans ports"
    tool["exports"][0]["cats"] = {"attck": ["TA0007"], "blackarch": ["scanner"]}
    published = [
        upload(client, tokens["alice"], make_wheel(members={
            "lev/alice/tool/evil.py": b"<script>alert('x')</script>\n"}), tool),
        upload(client, tokens["alice"], make_wheel(
            "lev.alice.hello", "1.0", members={"lev/alice/hello/__init__.py": HELLO.encode()}),
            HELLO_MANIFEST, package="lev.alice.hello", version="1.0"),
        upload(client, tokens["bob"], make_wheel("lev.bob.fuzz", summary="Fuzzes web forms"),
               make_manifest("lev.bob.fuzz"), package="lev.bob.fuzz"),
    ]
    assert [answer.status_code for answer in published] == [201] * 3, published[-1].text
    return tokens


def csrf_of(page):
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def login(client, name):
    client.cookies.clear()
    page = client.get("/login")
    answer = client.post("/login", data={"user": name, "password": PASSWORD,
                                         "csrf_token": csrf_of(page)})
    assert answer.status_code == 303 and answer.headers["location"] == "/", answer.text
    return csrf_of(client.get("/"))


def field_error(page, name):
    found = re.search(rf'id="p_{name}-error"[^>]*>([^<]*)<', page.text)
    return found and found.group(1)


def test_pages_need_a_session(client, hub):
    for path in ("/", "/tasks", "/tasks/abcd", "/settings", "/packages/lev.alice.tool",
                 "/packages/lev.alice.hello/run/lev.alice.hello:hello"):
        answer = client.get(path)
        assert (answer.status_code, answer.headers["location"]) == (303, "/login"), path
    assert client.get("/static/style.css").status_code == 200
    page = client.get("/login")
    assert page.status_code == 200 and 'name="password"' in page.text
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_login_and_logout(client, hub):
    page = client.get("/login")
    wrong = client.post("/login", data={"user": "alice", "password": "nope",
                                        "csrf_token": csrf_of(page)})
    assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
    assert 'value="alice"' in wrong.text
    csrf = login(client, "alice")
    market = client.get("/")
    assert market.status_code == 200 and "alice" in market.text
    assert client.get("/login").headers["location"] == "/"
    out = client.post("/logout", data={"csrf_token": csrf})
    assert (out.status_code, out.headers["location"]) == (303, "/login")
    assert client.get("/").status_code == 303


def test_login_page_brakes_password_guessing(client, hub):
    for _ in range(5):
        page = client.get("/login")
        wrong = client.post("/login", data={"user": "alice", "password": "guess",
                                            "csrf_token": csrf_of(page)})
        assert wrong.status_code == 401
    page = client.get("/login")
    held = client.post("/login", data={"user": "alice", "password": PASSWORD,
                                       "csrf_token": csrf_of(page)})
    assert held.status_code == 429 and "Retry-After" in held.headers
    assert ("too many failed log-ins for this user name from this address: try again in 15 "
            "minutes") in held.text
    assert client.get("/").status_code == 303  # not logged in


def test_a_forged_or_tampered_cookie_is_no_session(client, hub):
    login(client, "alice")
    cookie = client.cookies.get(COOKIE)
    payload, signature = cookie.rsplit(".", 1)
    client.cookies.set(COOKIE, payload + "." + "0" * len(signature))
    assert client.get("/").status_code == 303


def test_a_session_lasts_twelve_hours_and_needs_this_servers_secret(client, hub,
                                                                     monkeypatch):
    login(client, "alice")
    assert client.get("/").status_code == 200
    cookie = client.cookies.get(COOKIE)
    # The same session signed with another secret is no session.
    other = sessions.encode(b"another-secret" * 4, sessions.Session("alice", "x"))
    client.cookies.set(COOKIE, other)
    assert client.get("/").status_code == 303
    client.cookies.set(COOKIE, cookie)
    # Later: the clock itsdangerous reads (its module's time) moves, no one else's.
    for later, status in ((sessions.MAX_AGE_SECONDS - 60, 200),
                          (sessions.MAX_AGE_SECONDS + 60, 303)):
        monkeypatch.setattr("itsdangerous.timed.time",
                            SimpleNamespace(time=lambda later=later: time.time() + later))
        assert client.get("/").status_code == status


def test_every_form_post_needs_the_sessions_csrf_token(client, hub):
    posts = ["/login", "/logout", "/tasks/abcd/cancel", "/tasks/abcd/rerun",
             "/settings/tokens", "/settings/tokens/1/revoke",
             "/packages/lev.alice.hello/run/lev.alice.hello:hello"]
    client.get("/login")  # an anonymous session: the login form's token is refused too
    for token in (None, "wrong"):
        data = {"user": "alice", "password": PASSWORD, "p_word": "hi"}
        if token:
            data["csrf_token"] = token
        assert client.post("/login", data=data).status_code == 403
    login(client, "alice")
    for path in posts:
        assert client.post(path, data={}).status_code == 403, path
        refused = client.post(path, data={"csrf_token": "wrong"})
        assert refused.status_code == 403, path
        # A page, not JSON: the user is told what to do, in the site's frame.
        assert refused.headers["content-type"].startswith("text/html"), path
        assert "<h1>Form refused</h1>" in refused.text and "reload the page" in refused.text
        assert 'href="/tasks"' in refused.text  # the navigation of a logged-in page
    assert client.get("/").status_code == 200  # still logged in: nothing was done


def test_market_search_and_filters(client, hub):
    login(client, "bob")

    def names(**query):
        page = client.get("/", params=query)
        assert page.status_code == 200
        return re.findall(r'<h2><a href="/packages/([^"]+)">', page.text)

    assert names() == ["lev.alice.hello", "lev.alice.tool", "lev.bob.fuzz"]
    assert names(q="fuzzes web") == ["lev.bob.fuzz"]
    assert names(q="say") == ["lev.alice.hello"]
    assert names(kind="workflow") == ["lev.alice.tool", "lev.bob.fuzz"]
    assert names(owner="bob") == ["lev.bob.fuzz"]
    assert names(category="blackarch:scanner") == ["lev.alice.tool"]
    assert names(category="attck:TA0043", kind="tool") == ["lev.alice.hello"]
    assert names(q="nothing-like-this") == []
    page = client.get("/")
    assert "ATT&amp;CK TA0007" in page.text and "BlackArch misc" in page.text
    assert "Says &lt;b&gt;hello&lt;/b&gt;" in page.text


def test_package_page_shows_the_manifest_versions_and_files(client, hub):
    login(client, "bob")
    page = client.get("/packages/lev.alice.hello")
    assert page.status_code == 200
    text = page.text
    assert "Says &lt;b&gt;hello&lt;/b&gt;" in text and "SCRIPT" in text and "v2" in text
    assert '<a href="https://github.com/a/hello"' in text
    # The manifest's homepage is not an http(s) address: shown, never a link.
    assert 'href="javascript:' not in text and "javascript:alert(1)" in text
    assert "Say a word" in text and "<code>times</code>" in text and "list[str] | None" in text
    assert "await hello(word=&#39;hi&#39;, times=1, loud=False, tags=None)" in text
    assert "/packages/lev.alice.hello/run/lev.alice.hello%3Ahello" in text
    assert "lev_alice_hello-1.0-py3-none-any.whl" in text
    assert "/packages/lev.alice.hello/1.0/source/lev/alice/hello/__init__.py" in text
    tool = client.get("/packages/lev.alice.tool").text
    assert "mode scan" in tool and "await audit(&#39;127.0.0.1&#39;)" in tool
    missing = client.get("/packages/lev.nobody.none")
    assert missing.status_code == 404 and "no package" in missing.text


def test_source_view_escapes_html(client, hub):
    login(client, "bob")
    page = client.get("/packages/lev.alice.tool/1.0.0/source/lev/alice/tool/evil.py")
    assert page.status_code == 200
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text
    assert "<script>alert" not in page.text
    assert client.get("/packages/lev.alice.tool/1.0.0/source/nope.py").status_code == 404


def test_quick_form_is_built_from_the_manifest(client, hub):
    login(client, "alice")
    page = client.get("/packages/lev.alice.hello/run/lev.alice.hello:hello")
    assert page.status_code == 200
    text = page.text
    assert re.search(r'<input type="text" id="p_word" name="p_word" value="" '
                     r'placeholder="hi" pattern="\^\[a-z\]\+\$" title="[^"]*, for example hi" '
                     r'required>', text)
    # Types in words, the example a click away, a task name, where it runs.
    assert "<small title=\"int\">whole number, optional</small>" in text
    assert 'data-fill="p_word" data-value="hi">Use example</button>' in text
    assert 'id="task_name" name="task_name" value="hello"' in text
    assert 'id="runs-on"' in text
    assert 'type="number" id="p_times" name="p_times" value="1" step="1">' in text
    assert '<input type="checkbox" id="p_loud" name="p_loud" value="on">' in text
    assert '<textarea id="p_tags" name="p_tags"' in text
    assert client.get("/packages/lev.alice.hello/run/lev.alice.hello:nope").status_code == 404


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"p_word": "hi", "p_times": "many"}, "times", "expected an int, got &#39;many&#39;"),
    ({"p_word": "Hi!"}, "word", "expected the word, for example hi (pattern ^[a-z]+$)"),
    ({"p_word": "  ", "p_times": "2"}, "word", "required"),
])
def test_quick_form_errors_show_next_to_their_field(client, hub, data, field, message):
    csrf = login(client, "alice")
    page = client.post("/packages/lev.alice.hello/run/lev.alice.hello:hello",
                       data={**data, "csrf_token": csrf})
    assert page.status_code == 400
    assert field_error(page, field) == message
    others = {"word", "times", "loud", "tags"} - {field}
    assert all(field_error(page, other) is None for other in others)
    for name, value in data.items():  # the user's values come back as they were typed
        if value.strip():
            assert f'name="{name}" value="{value}"' in page.text.replace("&#39;", "'")
    assert client.get("/tasks").text.count("<tr>") == 0  # no task was started


def wait_done(store, job_id, timeout=60.0):
    deadline = time.monotonic() + timeout
    while (job := store.get_job(job_id))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, "the task did not end"
        time.sleep(0.1)
    return job


def test_a_submitted_task_runs_and_its_page_shows_the_result(client, hub, store):
    csrf = login(client, "alice")
    answer = client.post("/packages/lev.alice.hello/run/lev.alice.hello:hello", data={
        "csrf_token": csrf, "p_word": "ho", "p_times": "3", "p_loud": "on",
        "p_tags": "a; rm -rf /\n\n$(id)\n"})
    assert answer.status_code == 303, answer.text
    task_id = answer.headers["location"].removeprefix("/tasks/")
    job = wait_done(store, task_id)
    assert job["status"] == "done", job
    assert job["params"] == {"word": "ho", "times": 3, "loud": True,
                             "tags": ["a; rm -rf /", "$(id)"]}
    assert (job["name"], job["owner"], job["target"]) == ("hello", "alice",
                                                           "lev.alice.hello:hello")
    assert job["package"] == "lev.alice.hello==1.0"  # published, not installed: it ran
    page = client.get(f"/tasks/{task_id}")
    assert page.status_code == 200
    assert "&#34;said&#34;: &#34;HOHOHO&#34;" in page.text or '"said": "HOHOHO"' in page.text
    assert "saying ho" in page.text and "Cancel" not in page.text
    assert '<dt>Package</dt><dd><a href="/packages/lev.alice.hello">lev.alice.hello</a> 1.0' \
        in page.text
    listed = client.get("/tasks").text
    assert f'href="/tasks/{task_id}"' in listed and "done" in listed
    assert f'href="/tasks/{task_id}"' in client.get("/tasks", params={"status": "done"}).text
    assert f'href="/tasks/{task_id}"' not in client.get("/tasks",
                                                        params={"status": "failed"}).text
    assert f'href="/tasks/{task_id}"' in client.get("/tasks", params={"q": "HELLO"}).text
    nothing = client.get("/tasks", params={"q": "no-such-task"}).text
    assert f'href="/tasks/{task_id}"' not in nothing and "No task matches." in nothing
    # The package page lists the user's runs of it.
    package_page = client.get("/packages/lev.alice.hello").text
    assert "Your runs of it" in package_page and f'href="/tasks/{task_id}"' in package_page

    # The live log's stream takes the session cookie; changing anything still needs a token.
    events = client.get(f"/api/tasks/{task_id}/events")
    assert events.status_code == 200 and "event: end" in events.text
    assert client.get(f"/api/tasks/{task_id}/logs").status_code == 200
    assert client.post(f"/api/tasks/{task_id}/cancel").status_code == 401
    assert client.get(f"/api/tasks/{task_id}").status_code == 401

    login(client, "bob")
    assert client.get(f"/tasks/{task_id}").status_code == 404
    assert f'href="/tasks/{task_id}"' not in client.get("/packages/lev.alice.hello").text
    assert f'href="/tasks/{task_id}"' not in client.get("/tasks").text
    assert client.get(f"/api/tasks/{task_id}/events").status_code == 404
    csrf = login(client, "root")
    assert client.get(f"/tasks/{task_id}").status_code == 200
    assert f'href="/tasks/{task_id}"' in client.get("/tasks").text
    # Cancelling an ended task changes nothing and shows the task again.
    answer = client.post(f"/tasks/{task_id}/cancel", data={"csrf_token": csrf})
    assert (answer.status_code, answer.headers["location"]) == (303, f"/tasks/{task_id}")
    assert store.get_job(task_id)["status"] == "done"


@pytest.fixture
def napping(client, hub):
    """Version 1.1 of lev.alice.hello, which naps: its tasks are still running when a test
    cancels them."""
    source = HELLO.replace('print(f"saying {word}")', 'import time; time.sleep(120)')
    answer = upload(client, hub["alice"], make_wheel(
        "lev.alice.hello", "1.1", members={"lev/alice/hello/__init__.py": source.encode()}),
        {**HELLO_MANIFEST, "version": "1.1"}, package="lev.alice.hello", version="1.1")
    assert answer.status_code == 201, answer.text


def test_a_running_task_can_be_cancelled_from_its_page(client, hub, store, napping):
    csrf = login(client, "alice")
    answer = client.post("/packages/lev.alice.hello/run/lev.alice.hello:hello",
                         data={"csrf_token": csrf, "p_word": "zz"})
    task_id = answer.headers["location"].removeprefix("/tasks/")
    page = client.get(f"/tasks/{task_id}")
    assert "Cancel" in page.text
    answer = client.post(f"/tasks/{task_id}/cancel", data={"csrf_token": csrf_of(page)})
    assert answer.status_code == 303
    assert wait_done(store, task_id)["status"] == "cancelled"


# -- the Customized tab of a raw (annot.ARGV) mode --------------------------------------------

RAW_MANIFEST = {
    "levrt": 1, "package": "lev.bob.raw", "version": "1.0", "description": "A raw tool",
    "exports": [{
        "kind": "tool", "name": "raw", "qualname": "lev.bob.raw:raw", "desc": "Raw argv",
        "params": [param("argv", "list[str]", placeholder='["-h"]')],
    }],
}
RAW_RUN = "/packages/lev.bob.raw/run/lev.bob.raw:raw"


@pytest.fixture
def raw_tool(client, hub):
    answer = upload(client, hub["bob"], make_wheel("lev.bob.raw", "1.0"), RAW_MANIFEST,
                    package="lev.bob.raw", version="1.0")
    assert answer.status_code == 201, answer.text


def argv_error(page):
    found = re.search(r'id="c_argv-error"[^>]*>([^<]*)<', page.text)
    return found and found.group(1)


def test_only_a_raw_argv_mode_offers_the_customized_tab(client, hub, raw_tool):
    login(client, "bob")
    quick = client.get(RAW_RUN)
    assert quick.status_code == 200 and "?tab=customized" in quick.text
    assert 'name="p_argv"' in quick.text and "c_argv_text" not in quick.text
    page = client.get(RAW_RUN, params={"tab": "customized"})
    assert page.status_code == 200
    assert '<input type="hidden" name="tab" value="customized">' in page.text
    assert 'name="c_argv_text"' in page.text and "data-argv-editor" in page.text
    assert '<script src="/static/argv.js"></script>' in page.text
    assert client.get("/static/argv.js").status_code == 200
    hello = client.get("/packages/lev.alice.hello/run/lev.alice.hello:hello",
                       params={"tab": "customized"})
    assert "?tab=customized" not in hello.text and "c_argv_text" not in hello.text


@pytest.mark.parametrize("data", [{}, {"c_argv_text": "\n  \n"}, {"c_argv": ["", " "]}])
def test_customized_argv_must_not_be_empty(client, hub, raw_tool, data):
    csrf = login(client, "bob")
    page = client.post(RAW_RUN, data={"csrf_token": csrf, "tab": "customized", **data})
    assert page.status_code == 400
    assert argv_error(page) == "give at least one argument"
    assert 'name="c_argv_text"' in page.text  # the Customized tab comes back
    assert client.get("/tasks").text.count("<tr>") == 0


@pytest.mark.parametrize(("data", "argv"), [
    # The editor's rows (JavaScript on) ...
    ({"c_argv": ["-sn", "", "127.0.0.1; id", "$(reboot)"]}, ["-sn", "127.0.0.1; id", "$(reboot)"]),
    # ... or the text area, one argument per line (no JavaScript).
    ({"c_argv_text": "-p\r\n80 443\n\n-oX -\n"}, ["-p", "80 443", "-oX -"]),
])
def test_customized_argv_is_submitted_as_a_list(client, hub, raw_tool, store, data, argv):
    csrf = login(client, "bob")
    answer = client.post(RAW_RUN, data={"csrf_token": csrf, "tab": "customized", **data})
    assert answer.status_code == 303, answer.text
    job = wait_done(store, answer.headers["location"].removeprefix("/tasks/"))
    # lev.bob.raw's published module has no raw(): the task fails, its parameters stay.
    assert (job["params"], job["target"], job["owner"]) == ({"argv": argv}, "lev.bob.raw:raw",
                                                            "bob")


# -- task page extras: run again, download, results as tables, run durations --------------------


def test_task_page_run_again_download_and_tables(client, hub, store):
    csrf = login(client, "alice")
    answer = client.post("/packages/lev.alice.hello/run/lev.alice.hello:hello", data={
        "csrf_token": csrf, "p_word": "ho", "p_times": "2", "p_tags": "a\n<b>"})
    task_id = answer.headers["location"].removeprefix("/tasks/")
    job = wait_done(store, task_id)
    assert job["status"] == "done", job

    page = client.get(f"/tasks/{task_id}")
    text = page.text
    assert f'action="/tasks/{task_id}/rerun"' in text
    assert f'href="/tasks/{task_id}/download"' in text
    # A tool mode's result is its run's document, shown first as the Result, once: top-level
    # keys as rows, nested values compact (escaped) JSON.
    result = text.split('<section id="result">')[1].split("</section>")[0]
    assert "<th>said</th><td>hoho</td>" in result
    assert "<th>tags</th><td>[&#34;a&#34;,&#34;&lt;b&gt;&#34;]</td>" in result
    assert '<table class="results">' not in text  # not a second time below
    assert '<details id="raw-json"><summary>Documents as JSON</summary>' in text
    assert job["result"] == {"said": "hoho", "tags": ["a", "<b>"]}
    # Each run's duration (0m00s style) is in the runs table.
    assert store.list_runs(task_id)
    runs_table = text.split("<h2>Runs</h2>")[1].split("</table>")[0]
    assert re.search(r"<td[^>]*>\d+m\d\ds</td>", runs_table), runs_table

    download = client.get(f"/tasks/{task_id}/download")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("application/json")
    assert download.headers["content-disposition"] == (
        f'attachment; filename="task-{task_id}.json"')
    bundle = download.json()
    assert bundle["job"]["id"] == task_id and bundle["job"]["params"]["tags"] == ["a", "<b>"]
    assert {doc["coll"] for doc in bundle["documents"]} and bundle["log"]

    # Run again: needs the form's CSRF token, then the same target and parameters, anew.
    assert client.post(f"/tasks/{task_id}/rerun", data={}).status_code == 403
    again = client.post(f"/tasks/{task_id}/rerun", data={"csrf_token": csrf_of(page)})
    assert again.status_code == 303
    new_id = again.headers["location"].removeprefix("/tasks/")
    assert new_id != task_id
    rerun = wait_done(store, new_id)
    assert (rerun["status"], rerun["target"], rerun["params"], rerun["name"], rerun["owner"]) == (
        "done", job["target"], job["params"], job["name"], "alice")
    assert rerun["package"] == job["package"] == "lev.alice.hello==1.0"

    # Another user's task is not there for them: 404 for the download and for run again.
    csrf = login(client, "bob")
    assert client.get(f"/tasks/{task_id}/download").status_code == 404
    assert client.post(f"/tasks/{task_id}/rerun", data={"csrf_token": csrf}).status_code == 404
    assert client.get("/tasks/nope/download").status_code == 404


# -- the run tree -------------------------------------------------------------------------------

FLOW = '''
from levrt import Cr, ctx, lev, remote


def word(w: str) -> Cr:
    @remote
    def entry():
        ctx.set(word=w)
    return Cr("localhost/test:latest", entry=entry())


async def sweep(words: list[str]) -> None:
    await word("root")
    with lev / "first":
        await word(words[0])
        with lev / "inner":
            await word(words[1])
    with lev / "second":
        await word(words[2])
'''

FLOW_MANIFEST = {
    "levrt": 1, "package": "lev.alice.flow", "version": "1.0", "description": "Namespaces",
    "exports": [{"kind": "workflow", "name": "sweep", "qualname": "lev.alice.flow:sweep",
                 "desc": "Words in namespaces", "params": [param("words", "list[str]")]}],
}


def tree_rows(html):
    """``(depth, text)`` of each row of a run tree: a namespace's name, a run's id."""
    rows = re.findall(r'<tr class="(namespace|run)"(?: data-run="(\d+)")?[^>]*><td[^>]*'
                      r'padding-left: ([\d.]+)em[^>]*>([^<]*)', html)
    return [(kind, round((float(pad) - 0.5) / 1.5), run_id or text.replace("&#9662;", "").strip())
            for kind, run_id, pad, text in rows]


def test_task_page_shows_the_tree_of_runs(client, hub, store):
    answer = upload(client, hub["alice"], make_wheel(
        "lev.alice.flow", "1.0", members={"lev/alice/flow/__init__.py": FLOW.encode()}),
        FLOW_MANIFEST, package="lev.alice.flow", version="1.0")
    assert answer.status_code == 201, answer.text
    csrf = login(client, "alice")
    answer = client.post("/packages/lev.alice.flow/run/lev.alice.flow:sweep",
                         data={"csrf_token": csrf, "p_words": "a\nb\nc"})
    task_id = answer.headers["location"].removeprefix("/tasks/")
    assert wait_done(store, task_id)["status"] == "done"
    fragment = client.get(f"/tasks/{task_id}/runs")
    assert fragment.status_code == 200
    assert tree_rows(fragment.text) == [
        ("run", 0, "0"),
        ("namespace", 0, "first"), ("run", 1, "1"),
        ("namespace", 1, "inner"), ("run", 2, "2"),
        ("namespace", 0, "second"), ("run", 1, "3"),
    ]
    # A namespace counts the runs below it, its inner namespaces' too.
    first = re.search(r'title="first">.*?</tr>', fragment.text, re.S).group(0)
    assert '<span class="status done">2 done</span>' in first
    # The task page holds the same tree, which its script fetches again as runs change.
    page = client.get(f"/tasks/{task_id}").text
    assert f'<div id="runs" data-src="/tasks/{task_id}/runs">' in page
    assert tree_rows(page) == tree_rows(fragment.text)
    # A run reads as its mode and main argument; its row filters the log to it.
    assert '<a href="#log" class="run-link" data-run="1">word a</a>' in page
    login(client, "bob")
    assert client.get(f"/tasks/{task_id}/runs").status_code == 404


# -- File parameters: an upload field --------------------------------------------------------

COUNT = '''
from levrt import Cr, File, ctx, remote


def count(wordlist: File, min_length: int = 1) -> Cr:
    @remote
    def entry():
        with open("/in/words.txt") as file:
            words = [w for w in file.read().split() if len(w) >= min_length]
        ctx.set(words=len(words))
    return Cr("localhost/test:latest", files={"/in/words.txt": wordlist}, entry=entry())
'''

COUNT_MANIFEST = {
    "levrt": 1, "package": "lev.alice.count", "version": "1.0", "description": "Counts words",
    "exports": [{"kind": "tool", "name": "count", "qualname": "lev.alice.count:count",
                 "desc": "Count words", "params": [
                     param("wordlist", "File"),
                     param("min_length", "int", required=False, default=1)]}],
}
COUNT_RUN = "/packages/lev.alice.count/run/lev.alice.count:count"


@pytest.fixture
def counter(client, hub):
    answer = upload(client, hub["alice"], make_wheel(
        "lev.alice.count", "1.0", members={"lev/alice/count/__init__.py": COUNT.encode()}),
        COUNT_MANIFEST, package="lev.alice.count", version="1.0")
    assert answer.status_code == 201, answer.text


def test_a_file_parameter_is_an_upload_field(client, hub, store, counter, monkeypatch):
    csrf = login(client, "alice")
    page = client.get(COUNT_RUN).text
    assert 'enctype="multipart/form-data"' in page
    assert '<input type="file" id="p_wordlist" name="p_wordlist" required>' in page
    # Left empty: required, beside its field; nothing runs.
    answer = client.post(COUNT_RUN, data={"csrf_token": csrf, "p_min_length": "1"},
                         files={"p_wordlist": ("", b"", "application/octet-stream")})
    assert answer.status_code == 400 and field_error(answer, "wordlist") == "required"
    words = b"alpha beta gamma delta\nepsilon zeta eta\n"
    answer = client.post(COUNT_RUN, data={"csrf_token": csrf, "p_min_length": "4"},
                         files={"p_wordlist": ("../../words.txt", words, "text/plain")})
    assert answer.status_code == 303, answer.text
    job = wait_done(store, answer.headers["location"].removeprefix("/tasks/"))
    assert job["status"] == "done", job
    digest = job["params"]["wordlist"]["$file"]
    assert store.get_file(digest) == words and job["params"]["min_length"] == 4
    assert [doc["data"] for doc in store.list_documents(job["id"])] == [{"words": 6}]

    # A form over LEV_SERVER_MAX_UPLOAD_BYTES is refused with a page, while it streams in.
    client.app.state.settings = client.app.state.settings.model_copy(
        update={"max_upload_bytes": 1000})
    answer = client.post(COUNT_RUN, data={"csrf_token": csrf},
                         files={"p_wordlist": ("big.txt", b"x" * 5000, "text/plain")})
    assert answer.status_code == 413 and "<h1>Form refused</h1>" in answer.text
    assert "at most 1000 bytes" in answer.text


# -- settings: API tokens -----------------------------------------------------------------------


def test_settings_lists_creates_and_revokes_the_users_tokens(client, hub, store):
    csrf = login(client, "alice")
    page = client.get("/settings")
    assert page.status_code == 200
    assert re.search(r'<tr id="token-\d+"><td>test</td>', page.text)
    assert client.post("/settings/tokens", data={"name": "ci"}).status_code == 403
    blank = client.post("/settings/tokens", data={"csrf_token": csrf, "name": "  "})
    assert blank.status_code == 400 and 'id="token-name-error"' in blank.text

    made = client.post("/settings/tokens", data={"csrf_token": csrf, "name": "ci <box>"})
    assert made.status_code == 200
    secret = re.search(r'<code id="new-token">([^<]+)</code>', made.text).group(1)
    assert store.resolve_token(secret)["name"] == "alice"
    assert "ci &lt;box&gt;" in made.text and "never" in made.text
    # Shown once: the list never shows a secret again.
    assert secret not in client.get("/settings").text
    assert hub["alice"] not in client.get("/settings").text
    token = next(t for t in store.list_tokens("alice") if t["name"] == "ci <box>")

    # Someone else's token (bob's) is 404, as a token that does not exist; nothing changes.
    bobs = store.list_tokens("bob")[0]["id"]
    for other in (bobs, 999999):
        answer = client.post(f"/settings/tokens/{other}/revoke", data={"csrf_token": csrf})
        assert answer.status_code == 404
    assert not store.list_tokens("bob")[0]["revoked"]
    assert client.post(f"/settings/tokens/{token['id']}/revoke", data={}).status_code == 403

    answer = client.post(f"/settings/tokens/{token['id']}/revoke", data={"csrf_token": csrf})
    assert (answer.status_code, answer.headers["location"]) == (303, "/settings")
    assert next(t for t in store.list_tokens("alice") if t["id"] == token["id"])["revoked"]
    page = client.get("/settings").text
    row = re.search(rf'<tr id="token-{token["id"]}">(.*?)</tr>', page, re.S).group(1)
    assert "Revoke" not in row and "UTC" in row.split("</td>")[3]
    assert client.get("/api/tasks", headers={"Authorization": f"Bearer {secret}"}
                      ).status_code == 401
    assert client.get("/api/tasks", headers={"Authorization": f"Bearer {hub['alice']}"}
                      ).status_code == 200


# -- devices ------------------------------------------------------------------------------------


def cells(page, table):
    body = re.search(rf'<table class="{table}">.*?<tbody>(.*?)</tbody>', page.text, re.S).group(1)
    return [re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<td>(.*?)</td>", body, re.S)]


def test_devices_page_shows_the_local_runner(client, hub, store, napping):
    assert client.get("/devices").status_code == 303
    csrf = login(client, "alice")
    page = client.get("/devices")
    assert page.status_code == 200 and '<a href="/devices">Devices</a>' in page.text
    assert cells(page, "devices") == [socket.gethostname(), "local runner", "online",
                                      "process", "0", "0", "2"]
    assert "lev agent" in page.text and "You have no devices yet" in page.text
    assert re.search(r"<strong>process</strong>, chosen by the setting "
                     r"LEV_SERVER_EXECUTOR=process", page.text)
    # Two tasks take the two slots (max_running_tasks 2), a third waits.
    ids = []
    for word in ("aa", "bb", "cc"):
        answer = client.post("/packages/lev.alice.hello/run/lev.alice.hello:hello",
                             data={"csrf_token": csrf, "p_word": word})
        ids.append(answer.headers["location"].removeprefix("/tasks/"))
    deadline = time.monotonic() + 30
    while (shown := cells(client.get("/devices"), "devices"))[4:6] != ["2", "1"]:
        assert time.monotonic() < deadline, shown
        time.sleep(0.1)
    for task_id in reversed(ids):
        client.post(f"/tasks/{task_id}/cancel", data={"csrf_token": csrf})
    for task_id in ids:
        assert wait_done(store, task_id)["status"] == "cancelled"
    # lev run records the cancellation a moment before its process has exited.
    deadline = time.monotonic() + 30
    while (shown := cells(client.get("/devices"), "devices"))[4:6] != ["0", "0"]:
        assert time.monotonic() < deadline, shown
        time.sleep(0.1)


# -- limits and pages (issue 11) -----------------------------------------------------------


def test_the_task_lists_are_paged(client, store, hub):
    ids = [store.create_job(f"job{index}", target="lev.alice.hello:hello", owner="alice",
                            queued=True) for index in range(7)]
    store.create_job("bobs", owner="bob", queued=True)
    headers = {"Authorization": f"Bearer {hub['alice']}"}
    first = client.get("/api/tasks?limit=3&q=job", headers=headers)
    assert [task["id"] for task in first.json()] == ids[::-1][:3]
    assert first.headers["x-total-count"] == "7"
    assert first.headers["link"] == '</api/tasks?limit=3&q=job&page=2>; rel="next"'
    last = client.get("/api/tasks?limit=3&q=job&page=3", headers=headers)
    assert [task["id"] for task in last.json()] == [ids[0]]
    assert last.headers["link"] == '</api/tasks?limit=3&q=job&page=2>; rel="prev"'
    assert client.get("/api/tasks?page=0", headers=headers).status_code == 422

    login(client, "alice")
    import levrt.server.web as web_module
    web_module._TASKS_PAGE, saved = 3, web_module._TASKS_PAGE
    try:
        page = client.get("/tasks?page=2")
        assert "page 2 of 3 (7 in all)" in page.text
        assert 'href="/tasks?page=3" rel="next"' in page.text.replace(
            'rel="next" href="/tasks?page=3"', 'href="/tasks?page=3" rel="next"')
        assert 'href="/tasks?page=1"' in page.text
        assert ids[3] in page.text and ids[6] not in page.text and "bobs" not in page.text
        # Anything but a page number is the first page.
        assert ids[6] in client.get("/tasks?page=x").text
    finally:
        web_module._TASKS_PAGE = saved


def test_the_market_is_paged(client, hub, monkeypatch):
    monkeypatch.setattr("levrt.server.web._MARKET_PAGE", 2)
    login(client, "alice")
    first = client.get("/")
    assert "page 1 of 2 (3 in all)" in first.text
    assert "lev.alice.hello" in first.text and "lev.bob.fuzz" not in first.text
    second = client.get("/?q=&page=2")
    assert "lev.bob.fuzz" in second.text and "lev.alice.hello" not in second.text
    assert "&larr; previous" in second.text and "next &rarr;" not in second.text
    # The API's list is paged the same way.
    answer = client.get("/api/packages?limit=1&page=2",
                        headers={"Authorization": f"Bearer {hub['bob']}"})
    assert [p["name"] for p in answer.json()] == ["lev.alice.tool"]
    assert answer.headers["x-total-count"] == "3"
    assert 'rel="prev"' in answer.headers["link"] and 'rel="next"' in answer.headers["link"]


def test_live_streams_are_capped_per_user(store, hub):
    import httpx
    from helpers_hub import serve_in_thread

    alice = {"Authorization": f"Bearer {hub['alice']}"}
    with serve_in_thread(store, max_event_streams=2) as url, httpx.Client(
            base_url=url, headers=alice, timeout=10) as http:
        # Running, in no runner (made after the server settled the ones it found): its
        # streams stay open until the client closes them.
        job = store.create_job("waits", target="lev.alice.hello:hello", owner="alice")
        def stream():
            response = http.send(http.build_request("GET", f"/api/tasks/{job}/events"),
                                 stream=True)
            assert response.status_code == 200
            lines = response.iter_lines()
            next(lines)  # the first event: the stream is open (while lines is kept)
            return response, lines

        opened = [stream(), stream()]
        refused = http.get(f"/api/tasks/{job}/events")
        assert refused.status_code == 429 and "2 live task streams open" in refused.text
        assert refused.headers["retry-after"] == "10"
        # Another user's streams are counted apart.
        root = {"Authorization": f"Bearer {hub['root']}"}
        with http.stream("GET", f"/api/tasks/{job}/events", headers=root) as other:
            assert other.status_code == 200
        opened.pop()[0].close()
        # The server counts the closed stream out at its next poll.
        deadline = time.monotonic() + 10
        while True:
            probe = http.send(http.build_request("GET", f"/api/tasks/{job}/events"),
                              stream=True)
            probe.close()
            if probe.status_code == 200:
                break
            assert time.monotonic() < deadline, "the closed stream was never counted out"
            time.sleep(0.2)
        opened.pop()[0].close()


@pytest.mark.parametrize("depth", [65, 900, 5000])
def test_the_quick_form_refuses_values_nested_too_deep(client, hub, depth):
    manifest = {**HELLO_MANIFEST, "version": "1.1"}
    manifest["exports"] = [{**HELLO_MANIFEST["exports"][0], "params": [
        *HELLO_MANIFEST["exports"][0]["params"], param("opts", "dict | None", required=False)]}]
    answer = upload(client, hub["alice"], make_wheel(
        "lev.alice.hello", "1.1", members={"lev/alice/hello/__init__.py": HELLO.encode()}),
        manifest, package="lev.alice.hello", version="1.1")
    assert answer.status_code == 201, answer.text
    csrf = login(client, "alice")
    page = client.post("/packages/lev.alice.hello/run/lev.alice.hello:hello", data={
        "csrf_token": csrf, "p_word": "hi",
        "p_opts": '{"a": ' * depth + "1" + "}" * depth})
    assert page.status_code == 400
    assert "nested deeper than 64 levels" in page.text


# -- words for people: collections, types, log lines; Edit and run ---------------------------


def test_labels_name_things_in_words():
    from levrt.server import labels

    assert labels.coll_label("_") == "Summary"
    assert labels.coll_label("szczecin/nmap.port_os@1.0") == "nmap · port_os"
    assert labels.coll_label("szczecin/nmap.port_os@1.0|host|scan") == \
        "nmap · port_os in scan / host"
    assert labels.coll_label("host|scan") == "scan / host"
    assert labels.run_label({"name": "port_os.entry", "spec": {"arg": "127.0.0.1"}}) == \
        "port_os 127.0.0.1"
    assert labels.run_label({"name": "scan", "spec": None}) == "scan"
    assert labels.type_words("int | None", False) == "whole number, optional"
    assert labels.type_words("list[str]", True) == "list of text"
    assert labels.type_words("Optional[float]", True) == "number, optional"
    assert labels.line_kind("stderr", "Starting Nmap 7.93") == "output"
    assert labels.line_kind("stdout", "Failed to resolve \"x\".") == "error"
    assert labels.line_kind("job", "job 0123456789ab started with the process executor") == "note"
    assert labels.line_kind("job", "127.0.0.1:22/tcp open ssh") == "output"
    assert labels.shape("a\nb")["multiline"] and labels.shape({"a": 1})["kind"] == "pairs"
    assert labels.shape([{"a": 1}, {"b": 2}])["columns"] == ["a", "b"]
    assert labels.result_count({"result": [1, 2, 3]}) == "3 items"
    assert labels.result_count({"result": None}) == ""


def test_edit_and_run_fills_the_form_with_the_tasks_parameters(client, hub, store):
    csrf = login(client, "alice")
    answer = client.post("/packages/lev.alice.hello/run/lev.alice.hello:hello", data={
        "csrf_token": csrf, "p_word": "ho", "p_times": "3", "p_loud": "on",
        "p_tags": "a\nb", "task_name": "greeting", "version": "1.0"})
    task_id = answer.headers["location"].removeprefix("/tasks/")
    job = wait_done(store, task_id)
    assert (job["name"], job["package"]) == ("greeting", "lev.alice.hello==1.0")
    page = client.get(f"/tasks/{task_id}/edit")
    assert page.status_code == 200
    text = page.text
    assert 'name="p_word" value="ho"' in text and 'name="p_times" value="3"' in text
    assert '<input type="checkbox" id="p_loud" name="p_loud" value="on" checked>' in text
    assert '<textarea id="p_tags" name="p_tags" rows="4"' in text and ">a\nb</textarea>" in text
    assert 'name="task_name" value="greeting"' in text
    assert '<input type="hidden" name="version" value="1.0">' in text
    login(client, "bob")
    assert client.get(f"/tasks/{task_id}/edit").status_code == 404
