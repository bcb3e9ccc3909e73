"""The web pages (levrt.server.web): sessions and CSRF, market, package pages and sources,
tasks, and the Quick form, through FastAPI's TestClient on a store of the test's own. One
test really runs a task: a tiny hub package written into tmp_path and put on PYTHONPATH."""

import re
import time

import pytest
from helpers_hub import PASSWORD, TestClient, make_manifest, make_wheel, upload

from levrt.server import Settings, create_app
from levrt.server.sessions import COOKIE
from levrt.store import Store, default_url

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
def store():
    with Store(default_url()) as s:
        yield s


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
    for path in ("/", "/tasks", "/tasks/abcd", "/packages/lev.alice.tool",
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


def test_a_forged_or_tampered_cookie_is_no_session(client, hub):
    login(client, "alice")
    cookie = client.cookies.get(COOKIE)
    payload, signature = cookie.rsplit(".", 1)
    client.cookies.set(COOKIE, payload + "." + "0" * len(signature))
    assert client.get("/").status_code == 303


def test_every_form_post_needs_the_sessions_csrf_token(client, hub):
    posts = ["/login", "/logout", "/tasks/abcd/cancel",
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
        assert client.post(path, data={"csrf_token": "wrong"}).status_code == 403, path
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
                     r'placeholder="hi" pattern="\^\[a-z\]\+\$" required>', text)
    assert 'type="number" id="p_times" name="p_times" value="1" step="1">' in text
    assert '<input type="checkbox" id="p_loud" name="p_loud" value="on">' in text
    assert '<textarea id="p_tags" name="p_tags"' in text
    assert client.get("/packages/lev.alice.hello/run/lev.alice.hello:nope").status_code == 404


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"p_word": "hi", "p_times": "many"}, "times", "&#39;many&#39; is not a whole number"),
    ({"p_word": "Hi!"}, "word", "&#39;Hi!&#39; does not match the pattern ^[a-z]+$"),
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
    while (job := store.get_job(job_id))["status"] == "running":
        assert time.monotonic() < deadline, "the task did not end"
        time.sleep(0.1)
    return job


def test_a_submitted_task_runs_and_its_page_shows_the_result(client, hub, store, tmp_path,
                                                            monkeypatch):
    # The server runs qualified names of installed packages: "install" lev.alice.hello.
    installed = tmp_path / "site"
    (installed / "lev" / "alice" / "hello").mkdir(parents=True)
    (installed / "lev" / "alice" / "hello" / "__init__.py").write_text(HELLO)
    monkeypatch.setenv("PYTHONPATH", str(installed))
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
    page = client.get(f"/tasks/{task_id}")
    assert page.status_code == 200
    assert "&#34;said&#34;: &#34;HOHOHO&#34;" in page.text or '"said": "HOHOHO"' in page.text
    assert "saying ho" in page.text and "Cancel" not in page.text
    listed = client.get("/tasks").text
    assert f'href="/tasks/{task_id}"' in listed and "done" in listed
    assert f'href="/tasks/{task_id}"' in client.get("/tasks", params={"status": "done"}).text
    assert f'href="/tasks/{task_id}"' not in client.get("/tasks",
                                                        params={"status": "failed"}).text

    # The live log's stream takes the session cookie; changing anything still needs a token.
    events = client.get(f"/api/tasks/{task_id}/events")
    assert events.status_code == 200 and "event: end" in events.text
    assert client.get(f"/api/tasks/{task_id}/logs").status_code == 200
    assert client.post(f"/api/tasks/{task_id}/cancel").status_code == 401
    assert client.get(f"/api/tasks/{task_id}").status_code == 401

    login(client, "bob")
    assert client.get(f"/tasks/{task_id}").status_code == 404
    assert f'href="/tasks/{task_id}"' not in client.get("/tasks").text
    assert client.get(f"/api/tasks/{task_id}/events").status_code == 404
    csrf = login(client, "root")
    assert client.get(f"/tasks/{task_id}").status_code == 200
    assert f'href="/tasks/{task_id}"' in client.get("/tasks").text
    # Cancelling an ended task changes nothing and shows the task again.
    answer = client.post(f"/tasks/{task_id}/cancel", data={"csrf_token": csrf})
    assert (answer.status_code, answer.headers["location"]) == (303, f"/tasks/{task_id}")
    assert store.get_job(task_id)["status"] == "done"


def test_a_running_task_can_be_cancelled_from_its_page(client, hub, store, tmp_path,
                                                       monkeypatch):
    installed = tmp_path / "site"
    (installed / "lev" / "alice" / "hello").mkdir(parents=True)
    # A hello that naps: it is still running when the cancel comes.
    (installed / "lev" / "alice" / "hello" / "__init__.py").write_text(
        HELLO.replace('print(f"saying {word}")', 'import time; time.sleep(120)'))
    monkeypatch.setenv("PYTHONPATH", str(installed))
    csrf = login(client, "alice")
    answer = client.post("/packages/lev.alice.hello/run/lev.alice.hello:hello",
                         data={"csrf_token": csrf, "p_word": "zz"})
    task_id = answer.headers["location"].removeprefix("/tasks/")
    page = client.get(f"/tasks/{task_id}")
    assert "Cancel" in page.text
    answer = client.post(f"/tasks/{task_id}/cancel", data={"csrf_token": csrf_of(page)})
    assert answer.status_code == 303
    assert wait_done(store, task_id)["status"] == "cancelled"
