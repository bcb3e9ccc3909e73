"""The entry transport: what travels, what is refused, and on which Python."""

import ast
import json
import subprocess
import sys
import threading
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from levrt import Call, Cr, TransportError, remote
from levrt._remote import pack
from levrt.shim import SHIM_PATH
from levrt.shim.entry import decode, dumps, encode

LOCK = threading.Lock()


class Config:
    pass


def uses_lock():
    @remote
    def entry():
        with LOCK:
            pass
    return entry()


def uses_library_objects():
    @remote
    def entry():
        return ET.fromstring("<a/>").tag, Path("/").name, json.dumps(1)
    return entry()


def run_payload(payload):
    proc = subprocess.run([sys.executable, str(SHIM_PATH)], input=dumps(payload),
                          capture_output=True, text=True, timeout=30)
    messages = [ast.literal_eval(line) for line in proc.stdout.splitlines()]
    return proc.returncode, messages, proc.stderr


def test_remote_returns_a_call():
    @remote
    def entry(a, b=2):
        pass
    call = entry(1, b=3)
    assert isinstance(call, Call) and call.args == (1,) and call.kwargs == {"b": 3}


def test_remote_refuses_lambdas():
    with pytest.raises(TypeError):
        remote(lambda: None)


def test_unsendable_closure_value_is_named():
    config = Config()

    @remote
    def entry():
        return config

    with pytest.raises(TransportError, match="variable 'config'"):
        Cr("img", entry=entry())


def test_unsendable_module_level_value_is_named():
    with pytest.raises(TransportError, match="module-level name 'LOCK'"):
        Cr("img", entry=uses_lock())


def test_unassigned_closure_variable_is_named():
    @remote
    def entry():
        return later

    call = entry()
    with pytest.raises(TransportError, match="'later' has no value yet"):
        Cr("img", entry=call)
    later = 1  # noqa: F841 - assigned after the Cr is built, on purpose


def test_library_objects_are_imported_not_shipped():
    payload = pack(uses_library_objects())
    values = payload["modules"][__name__]["values"]
    assert values["ET"] == {"$module": "xml.etree.ElementTree"}
    assert values["Path"] == {"$attr": ["pathlib", "Path"]}
    assert values["json"] == {"$module": "json"}


def test_payload_is_source_and_json_only():
    payload = pack(uses_library_objects())
    text = json.dumps(payload)
    assert "def entry" in payload["entry"]["source"]
    assert "@remote" not in payload["entry"]["source"]
    json.loads(text)


def test_shim_parses_as_python_3_7():
    source = SHIM_PATH.read_text()
    ast.parse(source, feature_version=(3, 7))
    assert "import levrt" not in source


def test_shipped_source_parses_as_python_3_7():
    from helpers_tools import capture

    payload = capture("s", 1, 1.0, True, None, b"", [], {}).payload
    ast.parse(payload["entry"]["source"], feature_version=(3, 7))
    for module in payload["modules"].values():
        for fn in module["functions"]:
            ast.parse(fn["source"], feature_version=(3, 7))


def test_shim_reports_errors_with_the_authors_file_and_line():
    @remote
    def entry(x):
        raise KeyError(x)

    code, messages, stderr = run_payload(pack(entry("k")))
    assert code == 1
    assert messages == [{"op": "error", "type": "KeyError", "message": "'k'", "n": 0},
                        {"op": "end", "n": 1}]
    line = entry.__wrapped__.__code__.co_firstlineno + 2  # after @remote and def
    assert f'{__file__}", line {line}' in stderr
    assert "raise KeyError(x)" in stderr


def test_shim_runs_async_entries_and_redirects_print_to_log():
    @remote
    async def entry():
        import asyncio

        from levrt import ctx
        await asyncio.sleep(0)
        print("to the log")
        ctx.set(done=True)

    code, messages, stderr = run_payload(pack(entry()))
    assert code == 0
    assert messages == [{"op": "set", "data": {"done": True}, "n": 0}, {"op": "end", "n": 1}]
    assert "to the log" in stderr


def test_shim_refuses_other_payload_versions():
    code, messages, _ = run_payload({"v": 99})
    assert code == 1 and "payload version" in messages[0]["message"]


def test_postponed_annotations_compile_the_same_in_the_sandbox():
    import helpers_future

    import levrt

    async def main():
        return await (await helpers_future.annotated("h")).get()

    assert levrt.run(main(), echo=False) == {"label": "host=h"}


@pytest.mark.parametrize("value", [
    float("nan"), float("inf"), -float("inf"), b"\x00\xff", (1, "a"), {"$x": 1}, {1: "a"},
    {"k": [None, True, 1.5, "é\n'\""]}, "\u2028",
])
def test_wire_round_trip(value):
    back = decode(ast.literal_eval(dumps(encode(value))))
    if isinstance(value, float) and value != value:
        assert back != back
    else:
        assert back == value


def test_the_host_never_evaluates_what_the_sandbox_sends():
    from levrt.executors.base import ChannelReader

    seen = []

    class Observer:
        def on_log(self, stream, lines):
            seen.append(("log", lines))

        def on_ctx(self, data):
            seen.append(("ctx", data))

        def on_error(self, kind, message):
            seen.append(("error", kind))

    reader = ChannelReader(Observer())
    reader.feed(b"__import__('os').system('touch /tmp/lev-pwned')\n{'op': 'set', 'data': {}}\n")
    assert seen[0][0] == "log" and seen[1] == ("ctx", {})
    assert not Path("/tmp/lev-pwned").exists()


def _other_pythons():
    found = []
    for version in ("3.7", "3.8", "3.9", "3.12", "3.13"):
        for path in sorted(Path("/root/.pyenv/versions").glob(f"{version}.*/bin/python3")):
            found.append(pytest.param(str(path), id=version))
            break
    return found or [pytest.param(None, marks=pytest.mark.skip(reason="no other Python here"))]


@pytest.mark.parametrize("python", _other_pythons())
def test_entries_run_on_other_python_versions(python):
    from helpers_tools import capture

    import levrt
    from levrt.executors.process import ProcessExecutor

    async def main():
        doc = await capture("s", 7, 1.5, True, None, b"\x01", [1], {"k": (1, 2)})
        return await doc.get()

    data = levrt.run(main(), executor=ProcessExecutor(python), echo=False)
    assert data["helper"] == "hello:14" and data["raw"] == b"\x01"
    assert data["mapping"] == {"k": (1, 2)}
    assert data["py"] == [int(x) for x in Path(python).parent.parent.name.split(".")[:2]]
