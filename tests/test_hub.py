"""The hub's HTTP API through FastAPI's test client, on a SQLite store in a temp folder:
users and tokens, uploads and every refusal, search, manifests, source files, downloads and
the PEP 503 index."""

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

from levrt.server import Settings, create_app
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


def publish(client, token, package="lev.alice.tool", version="1.0.0", **wheel_options):
    response = upload(client, token, make_wheel(package, version, **wheel_options),
                      make_manifest(package, version), package=package, version=version)
    assert response.status_code == 201, response.text
    return response.json()


# -- server, users, tokens ---------------------------------------------------------------


def test_health(client):
    assert client.get("/health").json() == {"status": "ok", "version": "0.1.0"}


def test_openapi_describes_the_upload(client):
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/api/packages/upload"]["post"]["requestBody"]
    assert set(body["content"]["multipart/form-data"]["schema"]["required"]) == {
        "wheel", "manifest"}


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


@pytest.mark.parametrize(
    "headers, message",
    [
        ({}, "missing API token"),
        ({"Authorization": "Basic YWxpY2U6eA=="}, "missing API token"),
        ({"Authorization": "Bearer lev_not-a-token"}, "invalid API token"),
    ],
)
def test_protected_routes_need_a_token(client, headers, message):
    for method, path in [("get", "/api/me"), ("get", "/api/tokens"), ("post", "/api/tokens")]:
        response = getattr(client, method)(path, headers=headers)
        assert response.status_code == 401
        assert message in response.json()["detail"]


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

    package = client.get("/api/packages/lev-alice-tool").json()
    assert package["name"] == "lev.alice.tool" and package["owner"] == "alice"
    assert package["latest"] == "1.0.0" and [v["version"] for v in package["versions"]] == [
        "1.0.0"]

    version = client.get("/api/packages/lev.alice.tool/1.0.0").json()
    assert version["manifest"] == make_manifest()
    assert version["requires_python"] == ">=3.10"
    assert client.get("/api/packages/lev.alice.tool/latest").json()["version"] == "1.0.0"
    assert client.get("/api/packages/lev.alice.tool/1.0").json()["version"] == "1.0.0"

    files = client.get("/api/packages/lev.alice.tool/1.0.0/files").json()
    paths = [f["path"] for f in files]
    assert paths == sorted(paths) and "lev/alice/tool/scanner.py" in paths
    scanner = next(f for f in files if f["path"] == "lev/alice/tool/scanner.py")
    source = client.get("/api/packages/lev.alice.tool/1.0.0/files/lev/alice/tool/scanner.py")
    assert source.status_code == 200
    assert source.headers["content-type"] == "text/plain; charset=utf-8"
    assert source.headers["x-content-type-options"] == "nosniff"
    assert source.content == b'"""A scanner."""\n\ndef scan(ip): ...\n'
    assert scanner["sha256"] == hashlib.sha256(source.content).hexdigest()

    download = client.get(f"/api/files/{filename}")
    assert download.status_code == 200 and download.content == wheel
    assert download.headers["content-type"] == "application/octet-stream"

    # Contents live once in the content-addressed files table.
    assert store.get_file(f"sha256:{digest}") == wheel


def test_binary_source_file_is_served_as_bytes(client, alice):
    publish(client, alice, members={"lev/alice/tool/data.bin": b"\xff\xfe\x00"})
    response = client.get("/api/packages/lev.alice.tool/1.0.0/files/lev/alice/tool/data.bin")
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
        response = client.get(path)
        assert response.status_code == 404, path
        assert message in response.json()["detail"], path


def test_versions_newest_first_and_latest_is_a_release(client, alice):
    for version in ("1.0.0", "1.10.0", "1.2.0", "2.0.0rc1"):
        publish(client, alice, version=version)
    package = client.get("/api/packages/lev.alice.tool").json()
    assert [v["version"] for v in package["versions"]] == ["2.0.0rc1", "1.10.0", "1.2.0",
                                                          "1.0.0"]
    assert package["latest"] == "1.10.0"
    assert client.get("/api/packages/lev.alice.tool/latest").json()["version"] == "1.10.0"


def test_search(client, store, alice, bob):
    publish(client, alice)
    publish(client, bob, "lev.bob.web", summary="Web crawler")

    def names(**params):
        response = client.get("/api/packages", params=params)
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
    listed = client.get("/api/packages", params={"q": "crawler"}).json()[0]
    assert listed["latest"] == "1.0.0" and listed["summary"] == "Web crawler"
    assert [(e["kind"], e["name"]) for e in listed["exports"]] == [
        ("tool", "scanner"), ("workflow", "audit")]
    assert client.get("/api/packages", params={"kind": "module"}).status_code == 422


# -- the PEP 503 index ---------------------------------------------------------------------


def test_simple_index(client, alice):
    publish(client, alice, "lev.alice.nmap_python")
    publish(client, alice, "lev.alice.nmap_python", "1.1.0")
    index = client.get("/simple/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert '<a href="lev-alice-nmap-python/">lev.alice.nmap_python</a>' in index.text
    assert 'name="pypi:repository-version" content="1.0"' in index.text

    page = client.get("/simple/lev-alice-nmap-python/")
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
        content = client.get(f"/api/files/{name}").content
        assert fragment == hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize("spelling", ["lev.alice.nmap_python", "Lev.Alice.Nmap-Python",
                                      "lev_alice_nmap_python"])
def test_simple_redirects_other_spellings_to_the_normalized_name(client, alice, spelling):
    publish(client, alice, "lev.alice.nmap_python")
    response = client.get(f"/simple/{spelling}/", follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == "http://testserver/simple/lev-alice-nmap-python/"


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
    assert client.get("/api/packages/lev.alice.tool/1.0.0").json()["manifest"] == manifest
