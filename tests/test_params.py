"""Converting command-line and JSON parameter values by a function's type hints."""

# Optional[...] and Union[...] are what package authors write, so they are tested as such.
# ruff: noqa: UP007, UP045

import hashlib
from typing import Any, Literal, Optional, Union

import pytest

from levrt import Cr, File, annot
from levrt._params import CONVERTED, SERVER, ParamError, convert, describe, flags, jsonable
from levrt.store import Store


@pytest.fixture
def store():
    with Store.open("sqlite://") as opened:
        yield opened


def one(annotation: Any, value: Any, **kw: Any) -> Any:
    """Convert ``value`` for a single parameter ``x`` annotated ``annotation``."""

    def func(x):
        raise AssertionError("never called")

    func.__annotations__ = {"x": annotation}
    return convert(func, {"x": value}, **kw)["x"]


def error(annotation: Any, value: Any, **kw: Any) -> ParamError:
    with pytest.raises(ParamError) as caught:
        one(annotation, value, **kw)
    return caught.value


# -- scalars -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "raw", "expected"),
    [
        (str, "127.0.0.1", "127.0.0.1"),
        (int, "80", 80),
        (int, " -3 ", -3),
        (int, 443, 443),
        (float, "1.5", 1.5),
        (float, 2, 2.0),
        (float, "1e3", 1000.0),
    ],
)
def test_scalars_from_text_and_json(annotation, raw, expected):
    value = one(annotation, raw)
    assert value == expected
    assert type(value) is annotation


@pytest.mark.parametrize("word", ["true", "TRUE", "Yes", "1", "on", "  On "])
def test_bool_true_words(word):
    assert one(bool, word) is True


@pytest.mark.parametrize("word", ["false", "False", "NO", "0", "off"])
def test_bool_false_words(word):
    assert one(bool, word) is False


@pytest.mark.parametrize(("raw", "expected"), [(True, True), (False, False), (1, True), (0, False)])
def test_bool_from_json(raw, expected):
    assert one(bool, raw) is expected


def test_error_names_the_parameter_and_quotes_the_value():
    def scan(port: int):
        pass

    with pytest.raises(ParamError) as caught:
        convert(scan, {"port": "abc"})
    assert str(caught.value) == "--port: expected an int, got 'abc'"
    assert caught.value.param == "port"
    assert isinstance(caught.value, ValueError)


def test_error_spells_underscores_as_dashes():
    def scan(ping_all: bool):
        pass

    with pytest.raises(ParamError, match=r"^--ping-all: expected a bool"):
        convert(scan, {"ping_all": "maybe"})


@pytest.mark.parametrize(
    ("annotation", "raw", "expected"),
    [
        (int, "8O", "expected an int, got '8O'"),
        (int, True, "expected an int, got True"),
        (int, "1.5", "expected an int"),
        (float, "fast", "expected a number, got 'fast'"),
        (float, False, "expected a number"),
        (bool, "2", "expected a bool"),
        (bool, 2, "expected a bool"),
        (str, 127, "expected a string, got 127"),
        (str, ["a", "b"], "expected a string, got ['a', 'b']"),
    ],
)
def test_scalar_errors(annotation, raw, expected):
    assert expected in error(annotation, raw).message


def test_long_values_are_shortened_in_errors():
    assert len(str(error(int, "9" * 500 + "x"))) < 120


# -- containers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a,b", ["a", "b"]),
        (" a , b ,", ["a", "b"]),
        ("single", ["single"]),
        ("", []),
        ('["a,b", "c"]', ["a,b", "c"]),
        (["a", "b"], ["a", "b"]),  # a repeated option
        (["a,b"], ["a,b"]),  # each repetition is one item
    ],
)
def test_list_of_str(raw, expected):
    assert one(list[str], raw) == expected


@pytest.mark.parametrize("raw", ["80,443", "[80, 443]", ["80", "443"], [80, 443]])
def test_list_of_int(raw):
    assert one(list[int], raw) == [80, 443]


def test_list_item_error_says_which_item():
    assert str(error(list[int], "80,http,443")) == "--x: expected an int, got 'http' (item 1)"


def test_list_errors():
    assert "expected a list" in error(list[int], 80).message
    assert "expected a JSON list" in error(list[int], "[80,").message


def test_bare_list_and_dict_keep_items():
    assert one(list, "a,b") == ["a", "b"]
    assert one(dict, '{"a": [1, 2]}') == {"a": [1, 2]}


def test_dict_from_json_text_and_object():
    assert one(dict[str, int], '{"a": "1", "b": 2}') == {"a": 1, "b": 2}
    assert one(dict[str, str], {"k": "v"}) == {"k": "v"}


def test_dict_errors():
    assert "expected a JSON object" in error(dict[str, int], "[1]").message
    assert "expected a JSON object" in error(dict, "{nope").message
    assert error(dict[str, int], {"a": "x"}).message == "expected an int, got 'x' (key 'a')"


# -- optional and unions -----------------------------------------------------------------


@pytest.mark.parametrize("annotation", [Optional[int], int | None, Union[None, int]])
@pytest.mark.parametrize(("raw", "expected"), [("5", 5), ("none", None), ("NULL", None),
                                               (None, None), (7, 7)])
def test_optional(annotation, raw, expected):
    assert one(annotation, raw) == expected


def test_optional_str_takes_none_words_as_none():
    assert one(Optional[str], "None") is None
    assert one(Optional[str], "nonexistent") == "nonexistent"


def test_optional_error_names_both():
    assert error(Optional[int], "x").message == "expected an int or none, got 'x'"


def test_union_tries_members_in_order():
    assert one(int | str, "80") == 80
    assert one(int | str, "http") == "http"
    assert "expected an int or a number" in error(int | float, "x").message
    assert "expected an int" in error(int | str, None).message


def test_optional_list():
    assert one(Optional[list[int]], "1,2") == [1, 2]
    assert one(Optional[list[int]], "null") is None


def test_literal():
    assert one(Literal["fast", "slow"], "slow") == "slow"
    assert one(Literal[1, 2], "2") == 2
    assert error(Literal["fast", "slow"], "medium").message == (
        "expected one of 'fast', 'slow', got 'medium'"
    )


# -- unannotated, Any, unsupported -------------------------------------------------------


def test_unannotated_and_any_keep_the_value():
    def scan(target, extra: Any = None):
        pass

    assert convert(scan, {"target": "10.0.0.1", "extra": [1]}) == {
        "target": "10.0.0.1",
        "extra": [1],
    }


def test_unsupported_type_is_an_error():
    assert "parameters of type Cr cannot be given" in error(Cr, "x").message


def test_string_annotations_resolve():
    def scan(port: "int"):
        pass

    assert convert(scan, {"port": "22"}) == {"port": 22}


def test_unresolvable_annotation_is_a_clear_type_error():
    def scan(port: "NoSuchType"):  # noqa: F821
        pass

    with pytest.raises(TypeError, match="cannot resolve the type hints of .*scan.*NoSuchType"):
        convert(scan, {"port": "22"})


# -- files -------------------------------------------------------------------------------


def test_file_is_read_and_stored(tmp_path, store):
    content = b"admin\nroot\n"
    path = tmp_path / "users.txt"
    path.write_bytes(content)

    value = one(File, str(path), store=store)

    assert isinstance(value, File)
    assert value.digest == "sha256:" + hashlib.sha256(content).hexdigest()
    assert (value.name, value.size) == ("users.txt", len(content))
    assert store.get_file(value.digest) == content


def test_file_digest_of_a_stored_file_is_taken_as_is(store):
    digest = store.put_file(b"wordlist", name="w.txt")
    assert one(File, digest, store=store) == File(digest)


def test_missing_file_names_the_parameter(tmp_path, store):
    with pytest.raises(ParamError, match=r"^--x: cannot read '.*nope.txt': No such file"):
        one(File, str(tmp_path / "nope.txt"), store=store)


def test_file_needs_a_store(tmp_path):
    (tmp_path / "f").write_text("x")
    assert "needs a store" in error(File, str(tmp_path / "f")).message


def test_optional_file(tmp_path, store):
    (tmp_path / "f").write_text("x")
    assert one(Optional[File], "none", store=store) is None
    assert one(Optional[File], str(tmp_path / "f"), store=store).name == "f"


def test_jsonable_keeps_files_by_digest_tagged(tmp_path, store):
    (tmp_path / "f").write_bytes(b"data")
    values = {"wordlist": one(File, str(tmp_path / "f"), store=store), "n": 3,
              "more": [one(File, str(tmp_path / "f"), store=store)], "raw": b"\x00"}
    safe = jsonable(values)
    digest = values["wordlist"].digest
    assert safe == {"wordlist": {"$file": digest}, "n": 3, "more": [{"$file": digest}],
                    "raw": b"\x00"}
    # The stored form converts back to the same values, by every origin's rules.
    for origin in (None, SERVER, CONVERTED):
        kw = {"origin": origin} if origin else {}
        assert one(File, safe["wordlist"], store=store, **kw) == values["wordlist"]
        assert one(list[File], safe["more"], store=store, **kw) == values["more"]
        assert one(bytes, safe["raw"], **kw) == b"\x00"


# -- origins: what a string may name -----------------------------------------------------


def test_the_server_takes_a_file_only_as_a_stored_digest(tmp_path, store):
    (tmp_path / "secret").write_text("root:x:0:0")
    with pytest.raises(ParamError, match="expected the digest .* of an uploaded file"):
        one(File, str(tmp_path / "secret"), store=store, origin=SERVER)
    assert one(File | str, str(tmp_path / "secret"), store=store, origin=SERVER) == str(
        tmp_path / "secret")
    digest = store.put_file(b"words")
    assert one(File | str, digest, store=store, origin=SERVER) == File(digest)


def test_a_converted_task_never_takes_a_string_for_a_file(tmp_path, store):
    (tmp_path / "secret").write_text("root:x:0:0")
    digest = store.put_file(b"words")
    # What the server kept as text stays text, a path or a digest alike.
    for text in (str(tmp_path / "secret"), digest):
        assert one(File | str, text, store=store, origin=CONVERTED) == text
        assert "stored file" in error(File, text, store=store, origin=CONVERTED).message
    assert one(File | str, {"$file": digest}, store=store, origin=CONVERTED) == File(digest)
    missing = "sha256:" + "0" * 64
    assert "no such file is stored" in error(File, {"$file": missing}, store=store,
                                             origin=CONVERTED).message


# -- bytes -------------------------------------------------------------------------------


def test_bytes_from_text_is_utf8():
    assert one(bytes, "héllo") == "héllo".encode()
    assert one(bytes, b"\x00\xff") == b"\x00\xff"


def test_bytes_from_a_file_on_the_command_line(tmp_path):
    (tmp_path / "blob").write_bytes(b"\x00\x01\xfe")
    assert one(bytes, f"@{tmp_path / 'blob'}") == b"\x00\x01\xfe"
    assert one(bytes, "@@handle") == b"@handle"
    with pytest.raises(ParamError, match=r"^--x: cannot read '.*nope': No such file"):
        one(bytes, f"@{tmp_path / 'nope'}")


def test_bytes_on_the_server_never_read_a_file(tmp_path):
    (tmp_path / "blob").write_bytes(b"secret")
    text = f"@{tmp_path / 'blob'}"
    assert one(bytes, text, origin=SERVER) == text.encode()
    assert one(bytes, {"$bytes": "AAH+"}, origin=SERVER) == b"\x00\x01\xfe"
    assert "not base64" in error(bytes, {"$bytes": "%%%"}, origin=SERVER).message
    assert "expected text or" in error(bytes, 5, origin=SERVER).message


def test_optional_bytes_and_lists_of_bytes(tmp_path):
    assert one(Optional[bytes], "none") is None
    assert one(list[bytes], "a,b") == [b"a", b"b"]


# -- the parameter set -------------------------------------------------------------------


def alive(ip: str, ports: list[int] = (80,), ping: bool = True, note: Optional[str] = None):
    pass


def test_only_given_values_are_returned():
    assert convert(alive, {"ip": "10.0.0.1", "ping": "off"}) == {"ip": "10.0.0.1", "ping": False}


def test_missing_required_parameter():
    with pytest.raises(ParamError) as caught:
        convert(alive, {"ports": "22"})
    assert caught.value.param == "ip"
    assert str(caught.value) == "--ip: missing; this parameter has no default"


def test_unknown_parameter_lists_the_known_ones():
    with pytest.raises(ParamError) as caught:
        convert(alive, {"ip": "x", "prot": "22", "pign": "1"})
    assert caught.value.param == "prot"
    assert str(caught.value) == (
        "--prot: unknown parameter (also --pign); alive takes --ip, --ports, --ping, --note"
    )


def test_unknown_parameter_of_a_function_without_parameters():
    def nothing():
        pass

    with pytest.raises(ParamError, match="nothing takes no parameters"):
        convert(nothing, {"x": 1})


def test_var_keyword_takes_other_names_as_given():
    def scan(ip: str, *args: int, **extra: int):
        pass

    assert convert(scan, {"ip": "a", "depth": "2"}) == {"ip": "a", "depth": "2"}


def test_flags_are_the_bool_parameters():
    def scan(ip: str, ping: bool, fast: Optional[bool] = None, n: int = 1):
        pass

    assert flags(scan) == {"ping", "fast"}


def test_describe_merges_signature_and_annot_params():
    @annot.meta(params=[annot.Param("ip", "hosts to scan", holder="127.0.0.1")])
    def scan(ip: str, ports: list[int] = (80,), *rest: str, fast: bool = False, **kw: str):
        pass

    assert describe(scan) == [
        {"name": "ip", "type": "str", "default": None, "required": True,
         "desc": "hosts to scan"},
        {"name": "ports", "type": "list[int]", "default": (80,), "required": False, "desc": None},
        {"name": "fast", "type": "bool", "default": False, "required": False, "desc": None},
    ]
