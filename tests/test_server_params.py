"""Task parameters checked against manifests (levrt.server.params): type texts read without
eval, values converted as lev run converts them, every bad field named."""

import typing
from typing import Any

import pytest

from levrt import File
from levrt.server.params import (
    ParamsInvalid,
    check_params,
    check_size,
    check_value,
    parse_type,
)
from levrt.store import Store


@pytest.mark.parametrize(("text", "expected"), [
    ("str", str), ("int | None", int | None), ("Optional[int]", int | None),
    ("list[str]", list[str]), ("list[int] | None", list[int] | None),
    ("dict[str, Any]", dict[str, Any]), ("Literal['a', 1]", typing.Literal["a", 1]),
    ("levrt.File", File), ("Union[int, str]", int | str), ("bytes | None", bytes | None),
    # What it cannot read, lev run checks when the task starts.
    (None, Any), ("Sequence[str]", Any), ("((", Any), ("__import__('os').system('id')", Any),
    ("tuple[int, int]", Any),
])
def test_parse_type(text, expected):
    assert parse_type(text) == expected


def param(name, type_, required=True, regex=None, kind="positional_or_keyword"):
    return {"name": name, "type": type_, "kind": kind, "required": required, "regex": regex}


ENTRY = {"name": "scan", "params": [
    param("ip", "str", regex=r"127\.\d+\.\d+\.\d+"), param("port", "int", required=False),
    param("rate", "float", required=False), param("fast", "bool", required=False),
    param("ports", "list[int] | None", required=False),
    param("hosts", "list[str]", required=False, regex=r"[a-z.]+"),
    param("wordlist", "File", required=False), param("args", None, kind="var_positional"),
]}


def test_values_convert_as_lev_run_converts_them():
    assert check_params(ENTRY, {"ip": "127.0.0.1", "port": "80", "rate": 2, "fast": "yes",
                                "ports": [22, "80"], "hosts": ["a.b"]}, None) == {
        "ip": "127.0.0.1", "port": 80, "rate": 2.0, "fast": True, "ports": [22, 80],
        "hosts": ["a.b"]}
    assert check_params(ENTRY, {"ip": "127.0.0.1", "ports": None}, None)["ports"] is None


def test_every_bad_field_is_named():
    with pytest.raises(ParamsInvalid) as caught:
        check_params(ENTRY, {"port": "eighty", "rate": "nan", "hosts": ["ok", "NO"],
                             "args": [1], "extra": 1}, None)
    assert caught.value.errors == {
        "port": "expected an int, got 'eighty'",
        "rate": "expected a number, got 'nan'",
        "hosts": "'NO' does not match the pattern [a-z.]+",
        "args": "unknown parameter; scan takes ip, port, rate, fast, ports, hosts, wordlist",
        "extra": "unknown parameter; scan takes ip, port, rate, fast, ports, hosts, wordlist",
        "ip": "required",
    }


def test_a_pattern_is_checked_on_the_text_as_given():
    field = param("ip", "str", regex=r"127\.0\.0\.1")
    with pytest.raises(ValueError, match=r"'127.0.0.1; id' does not match"):
        check_value(field, "127.0.0.1; id", None)  # the whole value must match


def test_a_file_is_a_stored_digest_never_a_server_path(tmp_path):
    field = param("wordlist", "File")
    with Store(f"sqlite:///{tmp_path / 'db'}") as store:
        digest = store.put_file(b"admin\nroot\n", name="words.txt")
        assert check_params({"name": "f", "params": [field]}, {"wordlist": digest},
                            store) == {"wordlist": {"$file": digest}}
        with pytest.raises(ValueError, match="expected the digest .* of an uploaded file"):
            check_value(field, "/etc/shadow", store)
        with pytest.raises(ValueError, match="expected the digest"):
            check_value(field, "sha256:" + "0" * 64, store)  # no such stored file


def test_keyword_arguments_take_any_name():
    entry = {"name": "f", "params": [param("options", None, kind="var_keyword")]}
    assert check_params(entry, {"depth": 3}, None) == {"depth": 3}


def test_a_file_or_text_keeps_a_path_as_text(tmp_path):
    field = param("f", "File | str")
    with Store(f"sqlite:///{tmp_path / 'db'}") as store:
        digest = store.put_file(b"words")
        entry = {"name": "f", "params": [field]}
        assert check_params(entry, {"f": "/etc/hostname"}, store) == {"f": "/etc/hostname"}
        assert check_params(entry, {"f": digest}, store) == {"f": {"$file": digest}}


def test_bytes_from_text_or_base64_never_from_a_path():
    entry = {"name": "f", "params": [param("data", "bytes")]}
    assert check_params(entry, {"data": "@/etc/hostname"}, None) == {"data": b"@/etc/hostname"}
    assert check_params(entry, {"data": {"$bytes": "AP8="}}, None) == {"data": b"\x00\xff"}


def test_size_limit_names_the_largest_field():
    check_size({"a": "x" * 10, "b": 1}, 100)
    with pytest.raises(ParamsInvalid) as caught:
        check_size({"small": "x" * 40, "big": "x" * 80}, 100)
    assert caught.value.too_large and list(caught.value.errors) == ["big"]
    assert "a task takes at most 100 bytes" in caught.value.errors["big"]
    with pytest.raises(ParamsInvalid) as caught:
        check_size({"one": "x" * 200, "two": "x" * 300, "ok": 1}, 100)
    assert list(caught.value.errors) == ["one", "two"]
