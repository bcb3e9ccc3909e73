"""Bad input is a 4xx, never a 500: schemathesis over the server's OpenAPI (examples made from
the schema, with a user's token, bounded so the run takes a minute or two), plus the hostile
inputs of issue 11 sent by hand: a corrupted wheel member, a manifest nested 5,000 levels, a
dict parameter nested 600 to 900 levels, lone surrogates in text fields."""

import io
import json
import tempfile
import zipfile

import pytest
import schemathesis
from helpers_hub import PASSWORD, TestClient, make_manifest, make_wheel, upload
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    status_code_conformance,
)

from levrt.server import Settings, create_app
from levrt.store import Store


@pytest.fixture
def hub(tmp_path):
    """The app on a store of its own, with alice (a user, not an administrator) and her
    token; a published package gives the package routes something to find."""
    with Store(f"sqlite:///{tmp_path / 'hub.db'}") as store:
        store.create_user("alice", PASSWORD)
        token = store.create_token("alice", "fuzz")["token"]
        app = create_app(Settings(db_url=store.url), store=store)
        with TestClient(app) as client:
            assert upload(client, token, make_wheel(), make_manifest()).status_code == 201
            yield app, client, token


def _openapi() -> dict:
    # The schema does not depend on the store: the one of a throwaway app serves every test.
    with tempfile.TemporaryDirectory() as folder, \
            Store(f"sqlite:///{folder}/schema.db") as store:
        return create_app(Settings(db_url=store.url), store=store).openapi()


schema = schemathesis.openapi.from_dict(_openapi())


@schema.parametrize()
@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_no_route_answers_a_server_error(case, hub):
    app, _, token = hub
    # POST /api/tasks with a valid published target would start tasks: the fuzzing user's
    # targets are refused before that unless they name the package's modes exactly.
    case.call_and_validate(
        app=app,
        headers={"Authorization": f"Bearer {token}"},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance],
    )


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def corrupt_member(wheel: bytes, name: str) -> bytes:
    """``wheel`` with the deflated bytes of member ``name`` overwritten: zlib cannot inflate
    them (not merely a CRC mismatch)."""
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        info = archive.getinfo(name)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data = bytearray(wheel)
    data[start:start + info.compress_size] = b"\xff" * info.compress_size
    return bytes(data)


def test_a_corrupted_wheel_member_is_refused(hub):
    _, client, token = hub
    wheel = corrupt_member(make_wheel("lev.alice.tool", "2.0.0"), "lev/alice/tool/scanner.py")
    response = upload(client, token, wheel, make_manifest("lev.alice.tool", "2.0.0"),
                      version="2.0.0")
    assert response.status_code == 400
    # zlib's own error (-3: invalid data), not merely a CRC mismatch
    detail = response.json()["detail"]
    assert "'lev/alice/tool/scanner.py' cannot be unpacked: Error -3" in detail


@pytest.mark.parametrize("depth", [65, 900, 5000])
def test_a_deeply_nested_manifest_is_refused(hub, depth):
    _, client, token = hub
    manifest = json.dumps(make_manifest("lev.alice.tool", "2.0.0"))[:-1]
    manifest += ', "x": ' + "[" * depth + "]" * depth + "}"
    response = upload(client, token, make_wheel("lev.alice.tool", "2.0.0"), manifest.encode(),
                      version="2.0.0")
    assert response.status_code == 400
    assert "nested deeper than 64 levels" in response.json()["detail"]


def test_a_manifest_with_a_lone_surrogate_is_refused(hub):
    _, client, token = hub
    manifest = json.dumps(make_manifest("lev.alice.tool", "2.0.0")).replace(
        "Find open ports", "Find \\ud800 ports")
    response = upload(client, token, make_wheel("lev.alice.tool", "2.0.0"), manifest.encode(),
                      version="2.0.0")
    assert response.status_code == 400
    assert "['modes'][0]['desc'] is not Unicode" in response.json()["detail"]


@pytest.mark.parametrize("depth", [65, 300, 600, 900])
def test_a_deeply_nested_parameter_is_refused_naming_it(hub, depth):
    _, client, token = hub
    params = '{"ip": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
    body = '{"target": "lev.alice.tool.scanner:scan", "params": ' + params + "}"
    response = client.post("/api/tasks", content=body, headers={
        **auth(token), "Content-Type": "application/json"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "params"]
    assert "nested deeper than 64 levels (at ['ip']" in error["msg"]


def test_a_body_nested_past_the_parser_is_a_4xx(hub):
    _, client, token = hub
    body = '{"target": "lev.alice.tool.scanner:scan", "params": {"ip": ' + "[" * 5000
    body += "]" * 5000 + "}}"
    response = client.post("/api/tasks", content=body, headers={
        **auth(token), "Content-Type": "application/json"})
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/login", '{"user": "alice\\ud800", "password": "x"}', "user"),
    ("/api/login", '{"user": "alice", "password": "\\udfff"}', "password"),
    ("/api/tokens", '{"name": "t\\ud800"}', "name"),
    ("/api/tasks", '{"target": "lev.alice.tool.scanner:sc\\ud800"}', "target"),
    ("/api/tasks", '{"target": "lev.alice.tool.scanner:scan", "name": "\\ud800"}', "name"),
])
def test_lone_surrogates_in_typed_fields_are_refused_naming_the_field(hub, path, body, field):
    # Free-form values (a task's params) take U+FFFD instead: tests/test_tasks.py.
    _, client, token = hub
    response = client.post(path, content=body, headers={
        **auth(token), "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [["body", field]]
