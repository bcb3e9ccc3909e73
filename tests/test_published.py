"""Published packages as tasks run them (levrt.server.published): which manifest entry a
target names, the hub packages a version requires, its files unpacked for lev run."""

import pytest
from helpers_hub import TestClient, make_wheel, metadata, upload

from levrt.server import Settings, create_app, published


def param(name, type_):
    return {"name": name, "type": type_, "kind": "positional_or_keyword", "required": True,
            "default": None, "placeholder": None, "regex": None, "desc": None}


def manifest(package, version):
    return {
        "levrt": 1, "package": package, "version": version,
        "exports": [
            {"kind": "workflow", "name": "go", "qualname": f"{package}.flows:go",
             "params": [param("n", "int")]},
            {"kind": "tool", "name": "scanner", "qualname": f"{package}.scanner", "modes": [
                {"kind": "mode", "name": "scan", "qualname": f"{package}.scanner:scan",
                 "params": [param("ip", "str")]}]},
        ],
    }


def publish(client, token, package, version, requires=()):
    lines = "".join(f"Requires-Dist: {line}\n" for line in requires)
    info = f"{package.replace('.', '_')}-{version}.dist-info/METADATA"
    wheel = make_wheel(package, version, members={
        info: (metadata(package, version) + lines).encode()})
    answer = upload(client, token, wheel, manifest(package, version), package=package,
                    version=version)
    assert answer.status_code == 201, answer.text


@pytest.fixture
def hub(store):
    """alice's lev.alice.base 1.0, 1.5 and 2.0, and lev.alice.app 1.0 which needs base<2."""
    store.create_user("alice", "correct horse battery")
    token = store.create_token("alice", "test")["token"]
    with TestClient(create_app(Settings(db_url=store.url), store=store)) as client:
        for version in ("1.0", "1.5", "2.0"):
            publish(client, token, "lev.alice.base", version)
        publish(client, token, "lev.alice.app", "1.0", requires=[
            "lev.alice.base<2", "requests>=2", 'lev.alice.extra; extra == "x"'])
    return store


def test_resolve_finds_qualnames_and_exports(hub):
    found = published.resolve(hub, "lev.alice.app:go")
    assert (found.package, found.version, found.pin) == ("lev.alice.app", "1.0",
                                                         "lev.alice.app==1.0")
    assert found.entry["qualname"] == "lev.alice.app.flows:go"
    mode = published.resolve(hub, "lev.alice.app.scanner:scan")
    assert mode.entry["name"] == "scan"
    assert published.resolve(hub, "lev.alice.base.flows:go").version == "2.0"  # the latest
    assert published.resolve(hub, "lev.alice.base.flows:go", "1.0").version == "1.0"


@pytest.mark.parametrize("target", ["os:system", "lev:x", "lev.alice:x", "lev.bob.app:go",
                                    "tools.py:alive", "/srv/hub/alice.app:go"])
def test_resolve_leaves_other_targets_alone(hub, target):
    assert published.resolve(hub, target) is None


@pytest.mark.parametrize(("target", "version", "message"), [
    ("lev.alice.app:scan", None, "lev.alice.app 1.0 has no tool mode or workflow "
                                 "'lev.alice.app:scan'"),
    ("lev.alice.app.scanner:nope", None, "has no tool mode or workflow"),
    ("lev.alice.app:go", "9.9", "lev.alice.app has no version '9.9'"),
])
def test_resolve_names_what_is_missing(hub, target, version, message):
    with pytest.raises(LookupError, match=message):
        published.resolve(hub, target, version)


def test_closure_takes_the_newest_fitting_hub_version(hub):
    # requests is not on the hub (the server's Python has it, or the task fails); an
    # extra's requirement is not needed.
    assert published.closure(hub, "lev.alice.app", "1.0") == [
        ("lev.alice.app", "1.0"), ("lev.alice.base", "1.5")]


def test_search_path_unpacks_each_version_once(hub, tmp_path):
    home = tmp_path / "home"
    path = published.search_path(hub, "lev.alice.app==1.0", home)
    assert len(path) == 2 and all(folder.startswith(str(home / "unpacked")) for folder in path)
    app, base = (home / "unpacked" / folder for folder in sorted(p.rsplit("/", 1)[1]
                                                                 for p in path))
    assert (app / "lev" / "alice" / "app" / "flows.py").is_file()
    assert "lev.alice.base-1.5-" in base.name
    stamp = (app / "lev" / "alice" / "app" / "flows.py").stat().st_mtime_ns
    assert published.search_path(hub, "lev.alice.app==1.0", home) == path
    assert (app / "lev" / "alice" / "app" / "flows.py").stat().st_mtime_ns == stamp
    assert not [p for p in (home / "unpacked").iterdir() if p.name.startswith(".partial")]
    with pytest.raises(LookupError, match="no version '3.0' of 'lev.alice.app'"):
        published.unpack(hub, "lev.alice.app", "3.0", home)
