"""The devices' half of the store: enrolment codes, device tokens, heartbeats, migration 0006,
on SQLite and PostgreSQL."""

from datetime import timedelta

import pytest
from alembic import command
from alembic.config import Config
from helpers_pg import store_url
from sqlalchemy import inspect

from levrt.store import EnrolmentError, HubConflictError, Store
from levrt.store._store import MIGRATIONS_DIR

PASSWORD = "correct horse"


@pytest.fixture(params=["memory", "file", "postgresql"])
def store(request):
    with Store(store_url(request, request.param)) as s:
        s.create_user("alice", PASSWORD)
        s.create_user("bob", PASSWORD)
        yield s


def test_add_enrol_resolve(store):
    added = store.add_device("alice", "scanner-1", ["dmz", "dmz", "lab"])
    assert added["code"].startswith("levc_")
    assert added["pools"] == ["dmz", "lab"]
    assert not added["enrolled"] and added["code_expires_at"] is not None
    device, token = store.enrol_device(added["code"])
    assert token.startswith("levd_")
    assert device["enrolled"] and device["owner"] == "alice" and device["name"] == "scanner-1"
    assert store.resolve_device_token(token)["id"] == device["id"]
    assert store.resolve_device_token(token + "x") is None
    # A device token is no API token, and an API token no device token.
    assert store.resolve_token(token) is None
    api = store.create_token("alice", "cli")["token"]
    assert store.resolve_device_token(api) is None


def test_codes_work_once_and_expire(store):
    code = store.add_device("alice", "a")["code"]
    store.enrol_device(code)
    with pytest.raises(EnrolmentError, match="used already"):
        store.enrol_device(code)
    late = store.add_device("alice", "b")
    with pytest.raises(EnrolmentError, match="expired"):
        store.enrol_device(late["code"], at=late["code_expires_at"] + timedelta(seconds=1))
    with pytest.raises(EnrolmentError, match="unknown"):
        store.enrol_device("levc_nothing")


def test_names_are_unique_per_owner(store):
    store.add_device("alice", "box")
    with pytest.raises(HubConflictError, match="remove it first"):
        store.add_device("alice", "box")
    store.add_device("bob", "box")
    assert [d["name"] for d in store.list_devices("alice")] == ["box"]
    with pytest.raises(ValueError, match="device name"):
        store.add_device("alice", "Bad Name")
    with pytest.raises(ValueError, match="pool name"):
        store.add_device("alice", "ok", ["no/slash"])
    with pytest.raises(KeyError):
        store.add_device("nobody", "box")


def test_heartbeat_and_remove(store):
    device, token = store.enrol_device(store.add_device("alice", "box")["code"])
    facts = {"cores": 2, "tools": {"nmap": "/usr/bin/nmap"}}
    store.device_seen(device["id"], running=1, slots=4, facts=facts)
    store.device_seen(device["id"], running=2, slots=4)
    seen = store.get_device("alice", "box")
    assert seen["facts"] == facts and (seen["running"], seen["slots"]) == (2, 4)
    assert seen["last_seen"] is not None
    assert store.get_device("bob", "box") is None
    assert not store.remove_device("bob", "box")
    assert store.remove_device("alice", "box")
    assert store.resolve_device_token(token) is None


@pytest.mark.parametrize("kind", ["file", "postgresql"])
def test_migration_0006_both_ways(request, kind):
    url = store_url(request, kind)
    with Store(url) as store:
        store.create_user("alice", PASSWORD)
        store.add_device("alice", "box")
        with store._engine.connect() as conn, conn.begin():
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = conn
            command.downgrade(config, "0005")
            assert "devices" not in inspect(conn).get_table_names()
            command.upgrade(config, "0006")
            assert "devices" in inspect(conn).get_table_names()
