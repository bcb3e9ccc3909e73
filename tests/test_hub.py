"""The hub's HTTP API through FastAPI's test client, on a SQLite store in a temp folder:
users and tokens, uploads and every refusal, search, manifests, source files, downloads, the
PEP 503 index, and that no route but a few is open to anonymous callers."""

import base64
import hashlib
import json
import os
import re
import zipfile

import pytest
from helpers_hub import (
    PASSWORD,
    TestClient,
    hub_counts,
    make_manifest,
    make_wheel,
    symlink_info,
    upload,
    wheel_filename,
)
from sqlalchemy import text
from starlette.routing import Mount

try:
    from fastapi.routing import iter_route_contexts
except ImportError:  # before FastAPI 0.137.2, included routers' routes were copied in flat

    def iter_route_contexts(routes):
        return routes

from levrt.server import Settings, create_app, devices, rows, schedules, sessions, web
from levrt.store import Store

MAX_UPLOAD = 256 * 1024


@pytest.fixture
def store(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'hub.db'}") as s:
        yield s


@pytest.fixture
def client(store):
    settings = Settings(db_url=store.url, max_upload_bytes=MAX_UPLOAD,
                        max_unpacked_bytes=4 * MAX_UPLOAD)
    with TestClient(create_app(settings, store=store)) as c:
        yield c


@pytest.fixture
def alice(store):
    store.create_user("alice", PASSWORD)
    return store.create_token("alice", "tests")["token"]


@pytest.fixture
def bob(store):
    store.create_user("bob", PASSWORD)
    return store.create_token("bob", "tests")["token"]


def auth(token):
    return {"Authorization": f"Bearer {token}"}


# What a 401 asks for: reading routes take HTTP Basic auth too (as pip sends it).
# No Basic challenge even where Basic is taken: browsers would pop up their login box.
READ_CHALLENGE = "Bearer"


def publish(client, token, package="lev.alice.tool", version="1.0.0", **wheel_options):
    response = upload(client, token, make_wheel(package, version, **wheel_options),
                      make_manifest(package, version), package=package, version=version)
    assert response.status_code == 201, response.text
    return response.json()


# -- server, users, tokens ---------------------------------------------------------------


def test_health(client):
    assert client.get("/health").json() == {"status": "ok", "version": "0.1.0"}


def test_openapi_describes_the_upload_and_both_token_schemes(client, alice):
    schema = client.get("/openapi.json", headers=auth(alice)).json()
    body = schema["paths"]["/api/packages/upload"]["post"]["requestBody"]
    assert set(body["content"]["multipart/form-data"]["schema"]["required"]) == {
        "wheel", "manifest"}
    schemes = schema["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert schemes["HTTPBasic"]["scheme"] == "basic"
    assert {"HTTPBearer": []} in schema["paths"]["/simple/"]["get"]["security"]
    assert {"HTTPBasic": []} in schema["paths"]["/simple/"]["get"]["security"]
    assert schema["paths"]["/api/packages/upload"]["post"]["security"] == [{"HTTPBearer": []}]


@pytest.mark.parametrize("path, marker", [("/docs", "SwaggerUIBundle"), ("/redoc", "<redoc")])
def test_docs_pages_for_readers(client, alice, path, marker):
    page = client.get(path, headers=auth(alice))
    assert page.status_code == 200 and marker in page.text and "/openapi.json" in page.text


def test_login_gives_a_working_token(client, store):
    store.create_user("alice", PASSWORD)
    response = client.post("/api/login", json={"user": "alice", "password": PASSWORD,
                                                "token_name": "laptop"})
    assert response.status_code == 200
    answer = response.json()
    assert answer["user"] == "alice" and answer["token_name"] == "laptop"
    assert answer["token"].startswith("lev_")
    me = client.get("/api/me", headers=auth(answer["token"])).json()
    assert me["name"] == "alice" and me["namespaces"] == ["alice"]
    assert me["token_id"] == answer["token_id"] and me["is_admin"] is False


@pytest.mark.parametrize("user, password", [("alice", "wrong password"), ("nobody", PASSWORD)])
def test_login_refusals_look_alike(client, store, user, password):
    store.create_user("alice", PASSWORD)
    response = client.post("/api/login", json={"user": user, "password": password})
    assert response.status_code == 401
    assert response.json() == {"detail": "wrong user name or password"}


def test_password_guessing_is_braked(client, store):
    store.create_user("alice", PASSWORD)
    store.create_user("bob", PASSWORD)
    for _ in range(5):  # LEV_SERVER_LOGIN_MAX_FAILURES
        wrong = client.post("/api/login", json={"user": "alice", "password": "guess"})
        assert wrong.status_code == 401
    # Even the right password waits now; it is not even checked.
    held = client.post("/api/login", json={"user": "alice", "password": PASSWORD})
    assert held.status_code == 429
    assert held.json()["detail"] == ("too many failed log-ins for this user name from this "
                                     "address: try again in 15 minutes")
    assert 890 <= int(held.headers["retry-after"]) <= 900
    # Another user is not held up by alice's guesser (below the address's own limit).
    assert client.post("/api/login", json={"user": "bob", "password": PASSWORD}).status_code \
        == 200
    # Nor is alice, from her own address: the guesses lock no one out.
    elsewhere = TestClient(client.app, client=("127.0.0.2", 40000))
    assert elsewhere.post("/api/login", json={"user": "alice", "password": PASSWORD}) \
        .status_code == 200


def test_passwords_and_tokens_are_stored_hashed(client, store):
    store.create_user("alice", PASSWORD)
    store.create_user("bob", PASSWORD)
    token = client.post("/api/login", json={"user": "alice", "password": PASSWORD}).json()["token"]
    with store._engine.connect() as conn:
        hashes = dict(conn.execute(text("SELECT name, password_hash FROM users")).all())
        stored = conn.execute(text("SELECT token_sha256 FROM tokens")).scalars().all()
        dump = "\n".join(conn.connection.driver_connection.iterdump())
    # Same password, different salts.
    assert hashes["alice"] != hashes["bob"]
    assert all(h.startswith("scrypt$16384$8$1$") for h in hashes.values())
    assert PASSWORD not in dump and token not in dump
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]


def test_token_lifecycle(client, store, alice, bob):
    created = client.post("/api/tokens", json={"name": "ci"}, headers=auth(alice))
    assert created.status_code == 201
    ci = created.json()
    assert ci["name"] == "ci" and ci["token"].startswith("lev_") and not ci["revoked"]
    assert client.get("/api/me", headers=auth(ci["token"])).json()["token_name"] == "ci"

    listed = client.get("/api/tokens", headers=auth(alice)).json()
    assert [t["name"] for t in listed] == ["tests", "ci"]
    assert all("token" not in t for t in listed)
    assert all(t["last_used_at"] is not None for t in listed)  # both were used above

    # Bob cannot see or revoke Alice's tokens.
    assert [t["name"] for t in client.get("/api/tokens", headers=auth(bob)).json()] == ["tests"]
    assert client.delete(f"/api/tokens/{ci['id']}", headers=auth(bob)).status_code == 404

    assert client.delete(f"/api/tokens/{ci['id']}", headers=auth(alice)).status_code == 204
    refused = client.get("/api/me", headers=auth(ci["token"]))
    assert refused.status_code == 401
    assert "'ci' was revoked" in refused.json()["detail"]
    assert refused.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/me", headers=auth(alice)).status_code == 200
    assert [t["revoked"] for t in client.get("/api/tokens", headers=auth(alice)).json()] == [
        False, True]


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# Routes that take a Bearer token only (and change something, or show the caller's tokens).
TOKEN_ROUTES = [("GET", "/api/me"), ("GET", "/api/tokens"), ("POST", "/api/tokens"),
                ("POST", "/api/packages/upload"), ("POST", "/api/tasks")]


@pytest.mark.parametrize(
    "headers, message",
    [
        ({}, "missing API token: send 'Authorization: Bearer <token>'; get one with lev login "
             "URL or on the web page /settings"),
        ({"Authorization": "Bearer lev_not-a-token"}, "invalid API token: log in again"),
    ],
)
def test_token_routes_need_a_bearer_token(client, headers, message):
    for method, path in TOKEN_ROUTES:
        response = client.request(method, path, headers=headers)
        assert response.status_code == 401, path
        assert response.json()["detail"].startswith(message), path
        assert response.headers["www-authenticate"] == "Bearer", path


def test_token_routes_refuse_basic_auth(client, alice):
    """Reading takes Basic auth, for pip; changing anything does not: a browser sends the
    Basic credentials it keeps with other sites' requests too, as it does cookies."""
    for method, path in TOKEN_ROUTES:
        response = client.request(method, path, headers=basic("__token__", alice))
        assert response.status_code == 401, path
        assert response.json()["detail"].startswith(
            "missing API token: send 'Authorization: Bearer <token>'"), path


@pytest.mark.parametrize(
    "headers, message",
    [
        ({}, "missing API token: send 'Authorization: Bearer <token>', or the token as the "
             "password of HTTP Basic auth (pip: http://__token__:<token>@host/simple/); get one "
             "with lev login URL or on the web page /settings"),
        (basic("alice", "x"), "invalid API token: log in again"),
        ({"Authorization": "Basic not base64!"}, "unreadable HTTP Basic credentials: send"),
        ({"Authorization": "Bearer lev_not-a-token"}, "invalid API token: log in again"),
    ],
)
def test_reading_routes_need_a_token_or_a_session(client, headers, message):
    for path in ["/api/packages", "/simple/", "/openapi.json"]:
        response = client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.json()["detail"].startswith(message), path
        assert response.headers["www-authenticate"] == READ_CHALLENGE, path


# -- upload refusals: each writes nothing ------------------------------------------------


def refused(client, store, response, status, pattern):
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert re.search(pattern, detail), detail
    return detail


@pytest.fixture
def before(store, alice, bob):
    """Counts of every hub table once the users exist, for the nothing-written checks."""
    return hub_counts(store)


def test_upload_without_token_writes_nothing(client, store, before):
    response = upload(client, None, make_wheel(), make_manifest())
    refused(client, store, response, 401, "missing API token")
    assert hub_counts(store) == before


def test_upload_with_bad_token_writes_nothing(client, store, before):
    response = upload(client, "lev_forged", make_wheel(), make_manifest())
    refused(client, store, response, 401, "invalid API token")
    assert hub_counts(store) == before


def test_upload_with_revoked_token_writes_nothing(client, store, alice, before):
    token = store.create_token("alice", "old")
    assert store.revoke_token("alice", token["id"])
    response = upload(client, token["token"], make_wheel(), make_manifest())
    refused(client, store, response, 401, "revoked")
    assert hub_counts(store) == before


def test_upload_outside_own_namespace_writes_nothing(client, store, bob, before):
    response = upload(client, bob, make_wheel(), make_manifest())
    detail = refused(client, store, response, 403, "namespace lev.alice is not theirs")
    assert "can publish lev.bob.*" in detail
    response = upload(client, bob, make_wheel("lev.carol.tool"),
                      make_manifest("lev.carol.tool"), package="lev.carol.tool")
    refused(client, store, response, 403, "lev.carol does not exist")
    assert hub_counts(store) == before


@pytest.mark.parametrize("again", ["1.0.0", "1.0", "1.0.0.0"])
def test_duplicate_version_writes_nothing(client, store, alice, again):
    publish(client, alice)
    counts = hub_counts(store)
    wheel = make_wheel(version=again, members={"lev/alice/tool/extra.py": b"changed = True\n"})
    response = upload(client, alice, wheel, make_manifest(version=again), version=again)
    refused(client, store, response, 409, "exists already")
    assert hub_counts(store) == counts


def test_oversize_upload_writes_nothing(client, store, alice, before):
    # Random bytes do not compress: the wheel stays over the limit.
    big = make_wheel(members={"lev/alice/tool/blob.bin": os.urandom(MAX_UPLOAD + 1)})
    response = upload(client, alice, big, make_manifest())
    refused(client, store, response, 413, f"at most {MAX_UPLOAD} bytes")
    assert hub_counts(store) == before


def test_oversize_upload_without_length_is_cut_off_while_streaming(client, store, alice, before):
    body = b"--b\r\nContent-Disposition: form-data; name=\"wheel\"; filename=\"x.whl\"\r\n\r\n"

    def stream():
        yield body
        for _ in range(MAX_UPLOAD // 65536 + 4):
            yield b"\0" * 65536

    response = client.post(
        "/api/packages/upload",
        headers={**auth(alice), "Content-Type": "multipart/form-data; boundary=b"},
        content=stream(),
    )
    refused(client, store, response, 413, "upload too large")
    assert hub_counts(store) == before


def test_unpacked_size_limit(client, store, alice, before):
    # Zeros compress about 1000:1: a small upload that would unpack past the limit.
    bomb = make_wheel(members={"lev/alice/tool/zeros.bin": bytes(4 * MAX_UPLOAD + 1)})
    assert len(bomb) < MAX_UPLOAD
    response = upload(client, alice, bomb, make_manifest())
    refused(client, store, response, 413, "unpacks to")
    assert hub_counts(store) == before


@pytest.mark.parametrize(
    "infos, pattern",
    [
        ([(zipfile.ZipInfo("../x"), b"x")], r"'\.\./x' is refused: it has a '\.\.' component"),
        ([(zipfile.ZipInfo("lev/alice/../../evil.py"), b"x")], "'..' component"),
        ([(zipfile.ZipInfo("/etc/cron.d/evil"), b"x")], "absolute path"),
        ([(zipfile.ZipInfo("C:/evil.py"), b"x")], "absolute path"),
        ([(zipfile.ZipInfo("lev\\alice\\evil.py"), b"x")], "backslash"),
        ([(symlink_info("lev/alice/tool/link.py"), b"/etc/passwd")], "symbolic link"),
        ([(zipfile.ZipInfo("lev/alice/tool/__init__.py"), b"other = 1\n")], "appears twice"),
    ],
    ids=["dotdot", "inner-dotdot", "absolute", "drive", "backslash", "symlink", "duplicate"],
)
def test_bad_archive_members_write_nothing(client, store, alice, before, infos, pattern):
    response = upload(client, alice, make_wheel(infos=infos), make_manifest())
    refused(client, store, response, 400, pattern)
    assert hub_counts(store) == before


@pytest.mark.parametrize(
    "wheel, manifest, filename, pattern",
    [
        (make_wheel("lev.alice.other"), make_manifest(), None,
         r"manifest is for lev\.alice\.tool 1\.0\.0 but the wheel's .*METADATA says "
         r"lev\.alice\.other 1\.0\.0"),
        (make_wheel(version="2.0.0"), make_manifest(), None,
         r"METADATA says lev\.alice\.tool 2\.0\.0"),
        (make_wheel(), make_manifest(), wheel_filename("lev.alice.tool", "1.0.1"),
         "but the wheel file is lev_alice_tool-1.0.1"),
        (make_wheel(), make_manifest(), "tool.zip", "not a wheel file name"),
        (make_wheel(), make_manifest(), "../lev_alice_tool-1.0.0-py3-none-any.whl",
         "must not contain a path"),
        (make_wheel(members={"lev/alice/tool/__init__.py": None}), make_manifest(), None,
         r"does not hold lev/alice/tool/__init__\.py"),
        (make_wheel(members={"lev/alice/tool/flows.py": None}), make_manifest(), None,
         r"export 'lev\.alice\.tool\.flows:audit' names module lev\.alice\.tool\.flows"),
        (make_wheel(members={"lev_alice_tool-1.0.0.dist-info/METADATA": None}), make_manifest(),
         None, "has no lev_alice_tool-1.0.0.dist-info/METADATA"),
        (b"PK\x03\x04 not really a zip", make_manifest(), None, "not a valid zip archive"),
        (make_wheel(), b"{not json", None, "manifest is not valid JSON"),
        (make_wheel(), {**make_manifest(), "exports": [{"kind": "tool"}]}, None,
         "export 0 must be an object with 'kind' and 'name'"),
        (make_wheel(), {**make_manifest(), "package": "alice.tool"}, None,
         "is not lev.<user>.<tool>"),
        (make_wheel(), {**make_manifest(), "version": "1." + "0" * 70}, None,
         "longer than 64 characters"),
    ],
    ids=["name", "version", "filename", "not-wheel-name", "filename-path", "no-init",
         "export-module", "no-metadata", "not-zip", "manifest-json", "manifest-export",
         "manifest-package", "manifest-long-version"],
)
def test_manifest_that_does_not_match_the_archive_writes_nothing(
        client, store, alice, before, wheel, manifest, filename, pattern):
    response = upload(client, alice, wheel, manifest, filename=filename)
    refused(client, store, response, 400, pattern)
    assert hub_counts(store) == before


def test_upload_needs_both_parts(client, store, alice, before):
    headers = auth(alice)
    only_wheel = client.post("/api/packages/upload", headers=headers,
                             files={"wheel": ("a.whl", b"x")})
    refused(client, store, only_wheel, 400, "no 'manifest' part")
    only_manifest = client.post("/api/packages/upload", headers=headers,
                                files={"manifest": ("m.json", b"{}")})
    refused(client, store, only_manifest, 400, "no 'wheel' file part")
    not_multipart = client.post("/api/packages/upload", headers=headers, json={})
    refused(client, store, not_multipart, 415, "multipart/form-data")
    assert hub_counts(store) == before


def test_names_that_fold_together_are_one_project(client, store):
    store.create_user("a_b", PASSWORD)
    store.create_user("a", PASSWORD)
    first = store.create_token("a_b", "t")["token"]
    second = store.create_token("a", "t")["token"]
    publish(client, first, "lev.a_b.c")
    counts = hub_counts(store)
    response = upload(client, second, make_wheel("lev.a.b_c"), make_manifest("lev.a.b_c"),
                      package="lev.a.b_c")
    refused(client, store, response, 409, r"one project for pip \(lev-a-b-c\)")
    assert hub_counts(store) == counts


# -- upload, then read -------------------------------------------------------------------


def test_upload_then_read_everything(client, store, alice):
    wheel = make_wheel()
    response = upload(client, alice, wheel, make_manifest())
    assert response.status_code == 201
    answer = response.json()
    digest = hashlib.sha256(wheel).hexdigest()
    assert answer["package"] == "lev.alice.tool" and answer["version"] == "1.0.0"
    assert answer["sha256"] == digest and answer["size"] == len(wheel)
    assert answer["uploaded_by"] == "alice" and answer["summary"] == "A test tool"
    assert answer["url"] == "http://testserver/api/packages/lev.alice.tool/1.0.0"
    filename = wheel_filename("lev.alice.tool", "1.0.0")
    assert answer["download_url"] == f"http://testserver/api/files/{filename}"

    headers = auth(alice)
    package = client.get("/api/packages/lev-alice-tool", headers=headers).json()
    assert package["name"] == "lev.alice.tool" and package["owner"] == "alice"
    assert package["latest"] == "1.0.0" and [v["version"] for v in package["versions"]] == [
        "1.0.0"]

    version = client.get("/api/packages/lev.alice.tool/1.0.0", headers=headers).json()
    assert version["manifest"] == make_manifest()
    assert version["requires_python"] == ">=3.10"
    for spelling in ("latest", "1.0"):
        found = client.get(f"/api/packages/lev.alice.tool/{spelling}", headers=headers).json()
        assert found["version"] == "1.0.0"

    files = client.get("/api/packages/lev.alice.tool/1.0.0/files", headers=headers).json()
    paths = [f["path"] for f in files]
    assert paths == sorted(paths) and "lev/alice/tool/scanner.py" in paths
    scanner = next(f for f in files if f["path"] == "lev/alice/tool/scanner.py")
    source = client.get("/api/packages/lev.alice.tool/1.0.0/files/lev/alice/tool/scanner.py",
                        headers=headers)
    assert source.status_code == 200
    assert source.headers["content-type"] == "text/plain; charset=utf-8"
    assert source.headers["x-content-type-options"] == "nosniff"
    assert source.content == b'"""A scanner."""\n\ndef scan(ip): ...\n'
    assert scanner["sha256"] == hashlib.sha256(source.content).hexdigest()

    download = client.get(f"/api/files/{filename}", headers=headers)
    assert download.status_code == 200 and download.content == wheel
    assert download.headers["content-type"] == "application/octet-stream"
    # Only the reader's own cache may keep what took credentials to get.
    assert download.headers["cache-control"] == "private, max-age=31536000, immutable"

    # Contents live once in the content-addressed files table.
    assert store.get_file(f"sha256:{digest}") == wheel


def test_binary_source_file_is_served_as_bytes(client, alice):
    publish(client, alice, members={"lev/alice/tool/data.bin": b"\xff\xfe\x00"})
    response = client.get("/api/packages/lev.alice.tool/1.0.0/files/lev/alice/tool/data.bin",
                          headers=auth(alice))
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == b"\xff\xfe\x00"


def test_not_found(client, alice):
    publish(client, alice)
    cases = {
        "/api/packages/lev.nobody.tool": "no package 'lev.nobody.tool'",
        "/api/packages/lev.nobody.tool/1.0.0": "no package",
        "/api/packages/lev.alice.tool/9.9": "has no version '9.9'",
        "/api/packages/lev.alice.tool/9.9/files": "has no version",
        "/api/packages/lev.alice.tool/1.0.0/files/nope.py": "has no file 'nope.py'",
        "/api/files/nope-1.0-py3-none-any.whl": "no file",
        "/simple/lev-nobody-tool/": "no package",
    }
    for path, message in cases.items():
        response = client.get(path, headers=auth(alice))
        assert response.status_code == 404, path
        assert message in response.json()["detail"], path


def test_versions_newest_first_and_latest_is_a_release(client, alice):
    for version in ("1.0.0", "1.10.0", "1.2.0", "2.0.0rc1"):
        publish(client, alice, version=version)
    headers = auth(alice)
    package = client.get("/api/packages/lev.alice.tool", headers=headers).json()
    assert [v["version"] for v in package["versions"]] == ["2.0.0rc1", "1.10.0", "1.2.0",
                                                          "1.0.0"]
    assert package["latest"] == "1.10.0"
    latest = client.get("/api/packages/lev.alice.tool/latest", headers=headers).json()
    assert latest["version"] == "1.10.0"


def test_search(client, store, alice, bob):
    publish(client, alice)
    publish(client, bob, "lev.bob.web", summary="Web crawler")
    headers = auth(alice)

    def names(**params):
        response = client.get("/api/packages", params=params, headers=headers)
        assert response.status_code == 200
        return [p["name"] for p in response.json()]

    assert names() == ["lev.alice.tool", "lev.bob.web"]
    assert names(q="crawler") == ["lev.bob.web"]          # summary
    assert names(q="ALICE") == ["lev.alice.tool"]          # package name, any case
    assert names(q="open ports") == ["lev.alice.tool", "lev.bob.web"]  # a mode's desc
    assert names(q="audit lan") == ["lev.alice.tool", "lev.bob.web"]   # a workflow's desc
    assert names(q="crawler audit") == ["lev.bob.web"]     # every word must match
    assert names(q="nothing-like-this") == []
    assert names(owner="bob") == ["lev.bob.web"]
    assert names(kind="workflow", owner="alice") == ["lev.alice.tool"]
    listed = client.get("/api/packages", params={"q": "crawler"}, headers=headers).json()[0]
    assert listed["latest"] == "1.0.0" and listed["summary"] == "Web crawler"
    assert [(e["kind"], e["name"]) for e in listed["exports"]] == [
        ("tool", "scanner"), ("workflow", "audit")]
    wrong_kind = client.get("/api/packages", params={"kind": "module"}, headers=headers)
    assert wrong_kind.status_code == 422


# -- the PEP 503 index ---------------------------------------------------------------------


def test_simple_index(client, alice):
    publish(client, alice, "lev.alice.nmap_python")
    publish(client, alice, "lev.alice.nmap_python", "1.1.0")
    pip = ("__token__", alice)  # what pip sends for http://__token__:TOKEN@host/simple/
    index = client.get("/simple/", auth=pip)
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert '<a href="lev-alice-nmap-python/">lev.alice.nmap_python</a>' in index.text
    assert 'name="pypi:repository-version" content="1.0"' in index.text

    page = client.get("/simple/lev-alice-nmap-python/", auth=pip)
    assert page.status_code == 200
    links = re.findall(r'<a href="([^"]+)"( data-requires-python="[^"]*")?>([^<]+)</a>', page.text)
    assert [name for _, _, name in links] == [
        "lev_alice_nmap_python-1.0.0-py3-none-any.whl",
        "lev_alice_nmap_python-1.1.0-py3-none-any.whl",
    ]
    for href, requires, name in links:
        assert requires == ' data-requires-python="&gt;=3.10"'
        path, _, fragment = href.partition("#sha256=")
        assert path == f"../../api/files/{name}"
        content = client.get(f"/api/files/{name}", auth=pip).content
        assert fragment == hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize("spelling", ["lev.alice.nmap_python", "Lev.Alice.Nmap-Python",
                                      "lev_alice_nmap_python"])
def test_simple_redirects_other_spellings_to_the_normalized_name(client, alice, spelling):
    publish(client, alice, "lev.alice.nmap_python")
    response = client.get(f"/simple/{spelling}/", headers=auth(alice), follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == "http://testserver/simple/lev-alice-nmap-python/"


def test_a_token_in_the_index_url_as_pip_sends_it(client, alice):
    publish(client, alice)
    wheel = f"/api/files/{wheel_filename('lev.alice.tool', '1.0.0')}"
    index = client.get(f"http://__token__:{alice}@testserver/simple/")
    assert index.status_code == 200 and "lev.alice.tool" in index.text
    # Any user name will do: the password is the token.
    assert client.get(wheel, auth=("alice", alice)).status_code == 200
    for path in ("/simple/", wheel):
        refused = client.get(path, auth=("__token__", "lev_not-a-token"))
        assert refused.status_code == 401, path
        assert refused.headers["www-authenticate"] == READ_CHALLENGE
        assert refused.json()["detail"].startswith("invalid API token: log in again")


def test_a_web_session_reads_but_does_not_write(client, store, alice):
    publish(client, alice)
    secret = sessions.load_secret()
    client.cookies.set(sessions.COOKIE, sessions.encode(secret, sessions.new_session(None)))
    assert client.get("/api/packages").status_code == 401  # an anonymous session is no one
    client.cookies.set(sessions.COOKIE, sessions.encode(secret, sessions.new_session("alice")))
    listed = client.get("/api/packages")
    assert listed.status_code == 200 and [p["name"] for p in listed.json()] == ["lev.alice.tool"]
    assert client.get("/simple/").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    # A cookie comes with cross-site requests too: changing anything takes a token.
    assert client.post("/api/tokens", json={"name": "x"}).status_code == 401


def test_public_url_is_used_for_links(store, alice):
    settings = Settings(db_url=store.url, public_url="https://hub.example.org/")
    with TestClient(create_app(settings, store=store)) as client:
        answer = upload(client, alice, make_wheel(), make_manifest()).json()
    assert answer["url"] == "https://hub.example.org/api/packages/lev.alice.tool/1.0.0"


def test_app_opens_and_closes_its_own_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'own.db'}"
    with TestClient(create_app(Settings(db_url=url))) as client:
        assert client.get("/health").status_code == 200
    with Store(url) as store:
        assert store.count_users() == 0


def test_manifest_json_is_stored_as_uploaded(client, alice):
    manifest = make_manifest()
    manifest["exports"][1]["ext"] = {"nested": [1, 2, {"x": None}]}
    response = upload(client, alice, make_wheel(), json.dumps(manifest).encode())
    assert response.status_code == 201
    version = client.get("/api/packages/lev.alice.tool/1.0.0", headers=auth(alice)).json()
    assert version["manifest"] == manifest


# -- no route is open but a few ------------------------------------------------------------

# What anyone may call: the logins, the health check and the web pages' own files.
# An agent enrols with its one-time code alone (tests/test_agent_api.py).
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("POST", "/api/login"), ("GET", "/health"),
          ("MOUNT", "/static"), ("POST", "/api/agent/enrol")}


def routes_of(router):
    """``(method, path)`` of each route of an app or router, included routers' too; ``MOUNT``
    for a mounted app."""
    for route in iter_route_contexts(router.routes):
        if isinstance(getattr(route, "original_route", route), Mount):
            yield "MOUNT", route.path
        else:
            yield from ((method, route.path) for method in route.methods)


def test_every_route_but_the_public_ones_needs_credentials(store):
    app = create_app(Settings(db_url=store.url), store=store)
    routes = set(routes_of(app))
    pages = set().union(*(routes_of(router) for router in (
        web.router, devices.pages, rows.pages, schedules.pages)))
    assert PUBLIC <= routes
    with TestClient(app) as client:
        for method, path in sorted(routes - PUBLIC):
            assert method != "MOUNT", f"{path} is mounted: protect it, or add it to PUBLIC"
            # Any value will do for a path parameter: credentials are checked first.
            url = re.sub(r"\{[^}]+\}", "1", path)
            response = client.request(method, url, follow_redirects=False)
            where = f"{method} {path}: {response.status_code} {response.text[:200]}"
            if (method, path) in pages:
                # A page sends a browser to log in; a form without a session fails its CSRF
                # check (or sends to log in as well).
                assert response.status_code in ((303,) if method == "GET" else (303, 403)), where
                if response.status_code == 303:
                    assert response.headers["location"] == "/login", where
            else:
                assert response.status_code == 401, where
                assert response.headers["www-authenticate"] == "Bearer", where


def test_a_manifest_over_the_limit_is_refused(store, alice):
    settings = Settings(db_url=store.url, max_manifest_bytes=2000)
    with TestClient(create_app(settings, store=store)) as client:
        manifest = make_manifest()
        manifest["description"] = "x" * 2000
        before = hub_counts(store)
        response = upload(client, alice, make_wheel(), manifest)
        assert response.status_code == 413
        assert response.json()["detail"].startswith("the manifest is 2")
        assert "at most 2000 (setting LEV_SERVER_MAX_MANIFEST_BYTES)" in response.json()["detail"]
        assert hub_counts(store) == before
        assert upload(client, alice, make_wheel(), make_manifest()).status_code == 201
