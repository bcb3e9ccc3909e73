"""The hub's half of the store: users, passwords, tokens, publishing in one transaction."""

import hashlib
from datetime import timedelta

import pytest
from helpers_hub import PASSWORD, hub_counts, make_manifest, make_wheel
from helpers_pg import store_url
from sqlalchemy.exc import IntegrityError

from levrt.store import (
    HubConflictError,
    HubPermissionError,
    Store,
    TokenRevokedError,
    check_name,
    split_package_name,
)
from levrt.store import _hub as hub_module


@pytest.fixture(params=["memory", "file", "postgresql"])
def store(request):
    with Store(store_url(request, request.param)) as s:
        yield s


def version_args(package="lev.alice.tool", version="1.0.0", **overrides):
    args = {
        "package": package,
        "version": version,
        "uploader": "alice",
        "manifest": make_manifest(package, version),
        "filename": f"{package.replace('.', '_')}-{version}-py3-none-any.whl",
        "wheel": make_wheel(package, version),
        "files": [("lev/alice/tool/__init__.py", b"x = 1\n"), ("README", b"read me\n")],
        "summary": "A tool",
        "requires_python": ">=3.10",
    }
    return {**args, **overrides}


@pytest.mark.parametrize("name", ["alice", "a", "team_7", "x" * 64])
def test_good_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "Alice", "7up", "a-b", "a.b", "class", "x" * 65, "é"])
def test_bad_names(name):
    with pytest.raises(ValueError, match="lev.<user>.<tool>"):
        check_name(name)


def test_split_package_name():
    assert split_package_name("lev.szczecin.nmap_python") == ("szczecin", "nmap_python")
    for bad in ("lev.szczecin", "szczecin.alive", "lev.a.b.c", "lev.A.b", "lev.a.Tool",
                "lev.a.import", "lev.a.1x"):
        with pytest.raises(ValueError, match="not lev.<user>.<tool>"):
            split_package_name(bad)


def test_users_and_passwords(store):
    assert store.count_users() == 0
    alice = store.create_user("alice", PASSWORD, is_admin=True)
    assert alice["name"] == "alice" and alice["is_admin"] is True
    assert store.get_user("alice") == alice
    assert store.get_user("nobody") is None
    assert store.count_users() == 1
    assert store.list_namespaces("alice") == ["alice"]
    assert store.verify_password("alice", PASSWORD) == alice
    assert store.verify_password("alice", PASSWORD + "x") is None
    assert store.verify_password("nobody", PASSWORD) is None
    with pytest.raises(HubConflictError, match="user 'alice' already exists"):
        store.create_user("alice", PASSWORD)
    with pytest.raises(ValueError, match="at least 8 characters"):
        store.create_user("bob", "short")
    with pytest.raises(ValueError, match="user name 'Bob'"):
        store.create_user("Bob", PASSWORD)
    assert store.count_users() == 1


def test_tokens(store, monkeypatch):
    store.create_user("alice", PASSWORD)
    created = store.create_token("alice", "laptop")
    token = created["token"]
    user = store.resolve_token(token)
    assert user["name"] == "alice" and user["token_id"] == created["id"]
    assert user["token_name"] == "laptop"
    assert store.resolve_token(token + "x") is None
    with pytest.raises(KeyError, match="nobody"):
        store.create_token("nobody", "x")

    # last_used_at is written at most once a TOKEN_TOUCH, not on every request.
    first = store.list_tokens("alice")[0]["last_used_at"]
    assert first is not None
    store.resolve_token(token)
    assert store.list_tokens("alice")[0]["last_used_at"] == first
    monkeypatch.setattr(hub_module, "TOKEN_TOUCH", timedelta(0))
    store.resolve_token(token)
    assert store.list_tokens("alice")[0]["last_used_at"] > first

    assert store.revoke_token("alice", created["id"]) is True
    assert store.revoke_token("alice", created["id"]) is True  # again: no change, no error
    assert store.revoke_token("alice", 999) is False
    with pytest.raises(TokenRevokedError, match="'laptop' was revoked"):
        store.resolve_token(token)
    [listed] = store.list_tokens("alice")
    assert listed["revoked"] and listed["revoked_at"] is not None and "token" not in listed


def test_publish_and_read(store):
    store.create_user("alice", PASSWORD)
    published = store.publish_version(**version_args())
    assert published["sha256"] == published["digest"].removeprefix("sha256:")
    assert store.get_file(published["digest"]) == version_args()["wheel"]
    version = store.get_version("lev-alice-tool", "1.0")
    assert version["manifest"] == make_manifest() and version["uploaded_by"] == "alice"
    assert store.list_version_files("lev.alice.tool", "1.0.0") == [
        {"path": "README", "size": 8, "digest": store.put_file(b"read me\n")},
        {"path": "lev/alice/tool/__init__.py", "size": 6, "digest": store.put_file(b"x = 1\n")},
    ]
    assert store.version_file("lev.alice.tool", "1.0.0", "README") == b"read me\n"
    assert store.version_file("lev.alice.tool", "1.0.0", "nope") is None
    assert store.version_file("lev.alice.tool", "2.0", "README") is None
    assert store.list_version_files("lev.alice.tool", "2.0") is None
    assert store.get_version("lev.alice.tool", "not a version") is None
    wheel = store.get_wheel(published["filename"])
    assert wheel["content"] == version_args()["wheel"] and wheel["version"] == "1.0.0"
    assert store.get_wheel("nope.whl") is None
    assert store.package_names() == [("lev.alice.tool", "lev-alice-tool")]


def test_publish_refusals(store):
    store.create_user("alice", PASSWORD)
    store.create_user("bob", PASSWORD)
    before = hub_counts(store)
    with pytest.raises(HubPermissionError, match="'bob' can publish lev.bob.*"):
        store.publish_version(**version_args(uploader="bob"))
    with pytest.raises(ValueError, match="not a PEP 440 version"):
        store.publish_version(**version_args(version="one"))
    with pytest.raises(ValueError, match="not lev.<user>.<tool>"):
        store.publish_version(**{**version_args(), "package": "alice.tool"})
    with pytest.raises(KeyError, match="carol"):
        store.publish_version(**version_args(uploader="carol"))
    assert hub_counts(store) == before


def test_a_granted_namespace(store):
    store.create_user("alice", PASSWORD)
    store.create_user("bob", PASSWORD)
    store.grant_namespace("acme", "alice")
    assert store.list_namespaces("alice") == ["acme", "alice"]
    store.publish_version(**version_args("lev.acme.scan"))  # alice may publish lev.acme.*
    with pytest.raises(HubPermissionError, match="'bob' can publish lev.bob.*"):
        store.publish_version(**version_args("lev.acme.other", uploader="bob"))
    before = hub_counts(store)
    with pytest.raises(HubConflictError, match="lev.acme belongs to 'alice'"):
        store.grant_namespace("acme", "bob")
    with pytest.raises(HubConflictError, match="lev.acme belongs to 'alice': choose another"):
        store.create_user("acme", PASSWORD)  # a user's namespace is the user's name
    with pytest.raises(HubConflictError, match="lev.bob belongs to 'bob'"):
        store.grant_namespace("bob", "alice")
    with pytest.raises(LookupError, match="no user 'carol'"):
        store.grant_namespace("tools", "carol")
    with pytest.raises(ValueError, match="namespace name 'Acme!' is not usable"):
        store.grant_namespace("Acme!", "alice")
    assert hub_counts(store) == before


def test_publish_is_all_or_nothing(store):
    store.create_user("alice", PASSWORD)
    before = hub_counts(store)
    # The second row for one path fails on the last insert, after the package, the wheel,
    # the version and the other files were written: all of it must go.
    files = [("lev/alice/tool/new.py", b"fresh content\n"), ("lev/alice/tool/new.py", b"again\n")]
    with pytest.raises(IntegrityError):
        store.publish_version(**version_args(files=files))
    assert hub_counts(store) == before
    assert store.get_package("lev.alice.tool") is None
    for content in (version_args()["wheel"], b"fresh content\n"):
        assert not store.has_file("sha256:" + hashlib.sha256(content).hexdigest())


def test_identical_files_are_stored_once(store):
    store.create_user("alice", PASSWORD)
    store.publish_version(**version_args())
    files_before = hub_counts(store)["files"]
    store.publish_version(**version_args(version="1.0.1"))
    # A new wheel; the two member files are the same bytes as in 1.0.0.
    assert hub_counts(store)["files"] == files_before + 1


@pytest.mark.parametrize("kind", ["file", "postgresql"])
def test_upgrading_from_the_runtime_only_schema_keeps_jobs(request, tmp_path, kind):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from levrt.store import _store as store_module

    url = f"sqlite:///{tmp_path / 'old.db'}" if kind == "file" else request.getfixturevalue(
        "pg_url")
    engine = create_engine(store_module.database_url(url))
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(store_module.MIGRATIONS_DIR))
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.exec_driver_sql(
            "INSERT INTO jobs (id, name, status, progress, created_at) "
            "VALUES ('abcdef123456', 'old job', 'done', 1.0, '2025-01-01 00:00:00')"
        )
    engine.dispose()
    with Store(url) as store:
        assert store.get_job("abcdef123456")["name"] == "old job"
        store.create_user("alice", PASSWORD)
        assert store.count_users() == 1
