import importlib.util
import inspect
import json
import os
import pickle
import sys
import textwrap
import types
import uuid
from typing import Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from levrt import annot
from levrt.annot import ARGV, Meta, Param, get_meta, manifest_entry, meta
from levrt.annot.cats import Attck, BlackArch, parse_category

# Stands in for `levrt` in sources that are only parsed, never run.
lev = types.SimpleNamespace(Cr=None)


def load_module(tmp_path, monkeypatch, source: str) -> types.ModuleType:
    name = f"lev_annot_case_{uuid.uuid4().hex}"
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


NMAP_MODULE = '''
    """Nmap network scanner
    Finds live hosts and open ports.
    Homepage: https://nmap.org
    GitHub: -
    Type: IMAGE-BASED
    Version: v7.93
    More text after the header is not description.
    """
    from typing import Optional

    from levrt.annot import ARGV, Param, meta
    from levrt.annot.cats import Attck, BlackArch

    IMAGE = "localhost/lev-nmap:dynamic"


    def Cr(image, schema=None, **kwargs):
        return (image, schema, kwargs)


    @meta(desc="raw nmap", params=[ARGV], cats=BlackArch.Scanner, tags=["nmap"])
    def raw(argv: list[str]) -> tuple:
        """Run nmap with raw arguments.
        ```
        await nmap.raw(["-h"])
        ```
        """
        return Cr(".user.nmap:7.93", "demo/nmap.raw@1.0")


    @meta(
        desc="alive hosts",
        params=[
            Param("ip", "targets", holder="127.0.0.1/32", regex=r"^[0-9./]+$"),
            Param("server", "names nothing"),
        ],
        cats={Attck: [Attck.Reconnaissance, Attck.Discovery]},
        tags=["scan", "nmap"],
    )
    def alive(ip: str, ping: bool = True, *, timeout: float = 1.5) -> tuple:
        """Find live hosts."""
        return Cr(image="localhost/lev-nmap:latest", schema="demo/nmap.alive@1.0")


    @meta()
    def port_os(host: str, port: Optional[int] = None) -> tuple:
        image = IMAGE
        return Cr(image, f"demo/{host}")


    def helper() -> None:
        """Undecorated: not a mode."""


    @meta(desc="a workflow living in a tool module")
    async def flow(x: str) -> None:
        pass
'''


# ---------------------------------------------------------------- Param / ARGV


def test_param_holder_is_stored_as_placeholder():
    p = Param("ip", "targets", holder="127.0.0.1/32", regex=r"\d+")
    assert (p.name, p.desc, p.regex, p.placeholder) == ("ip", "targets", r"\d+", "127.0.0.1/32")
    assert p.to_dict() == {
        "name": "ip",
        "desc": "targets",
        "regex": r"\d+",
        "placeholder": "127.0.0.1/32",
    }
    assert Param("ip", "targets").placeholder is None
    with pytest.raises(AttributeError):
        p.name = "other"
    assert p == Param("ip", "targets", regex=r"\d+", holder="127.0.0.1/32")
    assert pickle.loads(pickle.dumps(p)) == p


def test_param_list_holder_from_original_packages_becomes_json_text():
    assert Param("hosts", "domains", holder=["baidu.com"]).placeholder == '["baidu.com"]'
    with pytest.raises(TypeError, match="holder"):
        Param("hosts", "domains", holder=object())


def test_param_bad_regex_names_param_and_error():
    with pytest.raises(ValueError, match=r"Param 'ip': regex '\[0-9' does not compile"):
        Param("ip", "targets", regex="[0-9")


def test_param_type_errors():
    with pytest.raises(TypeError, match="name"):
        Param(3, "x")
    with pytest.raises(TypeError, match="desc"):
        Param("x", None)
    with pytest.raises(TypeError, match="regex"):
        Param("x", "y", regex=5)


def test_argv():
    assert ARGV.name == "argv"
    assert ARGV.desc == "Raw command-line arguments passed to the tool"
    assert ARGV.placeholder == '["-h"]'
    assert ARGV.regex is None


# ---------------------------------------------------------------- decorator form


@meta(
    desc="module level",
    params=[Param("ip", "targets")],
    cats=[Attck.Reconnaissance],
    tags=["a"],
    ext={"k": (1, 2)},
)
def module_level_tool(ip: str) -> None:
    """Docstring."""


def test_decorator_returns_the_function_itself():
    assert module_level_tool.__name__ == "module_level_tool"
    assert "def module_level_tool" in inspect.getsource(module_level_tool)
    assert pickle.loads(pickle.dumps(module_level_tool)) is module_level_tool
    m = get_meta(module_level_tool)
    assert isinstance(m, Meta)
    assert m.desc == "module level"
    assert m.params == [Param("ip", "targets")]
    assert m.cats == {"attck": ["TA0043"]}
    assert m.tags == ["a"]
    assert m.ext == {"k": [1, 2]}


def test_decorator_on_async_function_and_defaults():
    @meta()
    async def flow() -> None:
        pass

    assert inspect.iscoroutinefunction(flow)
    assert get_meta(flow) == Meta(desc=None, params=[], cats={}, tags=[], ext={})


def test_get_meta_none_for_plain_objects():
    def plain() -> None:
        pass

    assert get_meta(plain) is None
    assert get_meta(os) is None
    assert get_meta(42) is None


def test_decorating_non_function_is_type_error():
    with pytest.raises(TypeError, match="decorates a function"):
        meta(desc="x")(type("C", (), {}))
    with pytest.raises(TypeError, match="decorates a function"):
        meta()(len)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"desc": 3}, "desc must be a str"),
        ({"params": ARGV}, "params must be a list"),
        ({"params": ["argv"]}, r"params\[0\] must be an annot.Param"),
        ({"tags": "nmap"}, "tags must be a list of str"),
        ({"tags": ["ok", 1]}, r"tags\[1\] must be a str"),
        ({"ext": [1]}, "ext must be a dict"),
        ({"ext": {"k": object()}}, r"ext\['k'\]"),
        ({"ext": {1: "v"}}, "keys must be strings"),
        ({"ext": {"nan": float("nan")}}, "NaN"),
    ],
)
def test_decorator_argument_type_errors(kwargs, match):
    with pytest.raises(TypeError, match=match):
        meta(**kwargs)


def test_duplicate_param_is_value_error():
    with pytest.raises(ValueError, match="'ip' twice"):
        meta(params=[Param("ip", "a"), Param("ip", "b")])


# ---------------------------------------------------------------- cats


def cats_of(value):
    return get_meta(meta(cats=value)(lambda: None)).cats


def test_cats_single_list_and_dict():
    assert cats_of(Attck.Reconnaissance) == {"attck": ["TA0043"]}
    assert cats_of(BlackArch.Scanner) == {"blackarch": ["scanner"]}
    assert cats_of(
        [BlackArch.Webapp, Attck.Impact, BlackArch.Scanner, Attck.Discovery, BlackArch.Scanner]
    ) == {"attck": ["TA0007", "TA0040"], "blackarch": ["scanner", "webapp"]}
    assert cats_of({Attck: [Attck.Execution], BlackArch: [BlackArch.Fuzzer, BlackArch.Dos]}) == {
        "attck": ["TA0002"],
        "blackarch": ["dos", "fuzzer"],
    }
    assert cats_of({Attck: [], BlackArch: [BlackArch.Recon]}) == {"blackarch": ["recon"]}
    assert cats_of(None) == {}
    assert cats_of([]) == {}


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("scanner", r"write BlackArch\.Scanner"),
        (["TA0043"], r"cats\[0\].*write Attck\.Reconnaissance"),
        ([Attck.Impact, 5], r"cats\[1\] must be an Attck or BlackArch member"),
        ({"attck": [Attck.Impact]}, "keys must be the classes Attck or BlackArch"),
        ({Attck: [BlackArch.Scanner]}, r"cats\[Attck\] must hold only Attck members"),
        ({BlackArch: "scanner"}, r"cats\[BlackArch\] must be a list"),
        (5, "Attck or BlackArch member, a list of them, or a dict"),
    ],
)
def test_cats_errors(value, match):
    with pytest.raises(ValueError, match=match):
        meta(cats=value)


def test_cats_dict_value_may_be_a_single_member():
    assert cats_of({Attck: Attck.Impact}) == {"attck": ["TA0040"]}


# ---------------------------------------------------------------- category enums


def test_attck_members():
    assert len(Attck) == 16
    assert {m.name: m.value for m in Attck} == {
        "Reconnaissance": "TA0043",
        "ResourceDevelopment": "TA0042",
        "InitialAccess": "TA0001",
        "Execution": "TA0002",
        "Persistence": "TA0003",
        "PrivilegeEscalation": "TA0004",
        "DefenseEvasion": "TA0005",
        "CredentialAccess": "TA0006",
        "Discovery": "TA0007",
        "LateralMovement": "TA0008",
        "Collection": "TA0009",
        "CommandandControl": "TA0011",
        "Exfiltration": "TA0010",
        "Impact": "TA0040",
        "NetworkEffects": "TA0038",
        "RemoteServiceEffects": "TA0039",
    }
    assert Attck.CommandandControl.title == "Command and Control"
    assert Attck.RemoteServiceEffects.title == "Remote Service Effects"
    assert all(m.title for m in Attck)


def test_blackarch_members():
    slugs = (
        "anti-forensic automation automobile backdoor binary bluetooth code-audit config "
        "cracker crypto database debugger decompiler defensive disassembler dos drone exploitation "
        "fingerprint firmware forensic fuzzer gpu hardware honeypot ids keylogger malware misc "
        "mobile networking nfc packer proxy radio recon reversing scanner sniffer social spoof "
        "stego threat-model tunnel unpacker voip webapp windows wireless"
    ).split()
    # config is in the original's category appendix (lev_doc 15.7), not in BlackArch's list.
    assert len(BlackArch) == 49
    assert [m.value for m in BlackArch] == slugs
    assert BlackArch.AntiForensic.value == "anti-forensic"
    assert BlackArch.CodeAudit.value == "code-audit"
    assert BlackArch.ThreatModel.value == "threat-model"
    assert BlackArch("webapp") is BlackArch.Webapp
    for member in BlackArch:
        assert member.name == "".join(part.capitalize() for part in member.value.split("-"))


@pytest.mark.parametrize(
    ("text", "member"),
    [
        ("TA0043", Attck.Reconnaissance),
        ("ta0043", Attck.Reconnaissance),
        ("Reconnaissance", Attck.Reconnaissance),
        ("attck:TA0043", Attck.Reconnaissance),
        ("ATTCK:reconnaissance", Attck.Reconnaissance),
        ("Command and Control", Attck.CommandandControl),
        ("scanner", BlackArch.Scanner),
        ("SCANNER", BlackArch.Scanner),
        ("blackarch:scanner", BlackArch.Scanner),
        ("blackarch-scanner", BlackArch.Scanner),
        ("code-audit", BlackArch.CodeAudit),
        ("CodeAudit", BlackArch.CodeAudit),
        ("  webapp ", BlackArch.Webapp),
    ],
)
def test_parse_category(text, member):
    assert parse_category(text) is member


def test_parse_category_errors_suggest_close_matches():
    with pytest.raises(ValueError, match="did you mean scanner"):
        parse_category("scaner")
    with pytest.raises(ValueError, match=r"did you mean TA0043 \(Reconnaissance\)"):
        parse_category("attck:recon")
    with pytest.raises(ValueError, match="unknown category 'blackarch:TA0043'"):
        parse_category("blackarch:TA0043")
    with pytest.raises(ValueError, match="unknown category"):
        parse_category("zzzz")
    with pytest.raises(TypeError):
        parse_category(None)


def test_category_spellings_do_not_collide():
    spelled = {m.name.lower() for m in Attck} | {m.value.lower() for m in Attck}
    assert not spelled & ({m.name.lower() for m in BlackArch} | {m.value for m in BlackArch})


# ---------------------------------------------------------------- manifest: module tool


def test_module_tool_manifest(tmp_path, monkeypatch):
    mod = load_module(tmp_path, monkeypatch, NMAP_MODULE)
    # A decorated function defined elsewhere but visible in the module is not its mode.
    mod.foreign = module_level_tool
    entry = manifest_entry(mod)
    json.dumps(entry)

    assert entry["kind"] == "tool"
    assert entry["name"] == mod.__name__
    assert entry["qualname"] == mod.__name__
    assert entry["desc"] == "Nmap network scanner\nFinds live hosts and open ports."
    assert entry["homepage"] == "https://nmap.org"
    assert entry["github"] is None
    assert entry["type"] == "IMAGE-BASED"
    assert entry["version"] == "v7.93"
    assert entry["doc"].startswith("Nmap network scanner")
    assert entry["example"] is None
    assert entry["cats"] == {"attck": ["TA0007", "TA0043"], "blackarch": ["scanner"]}
    assert entry["tags"] == ["nmap", "scan"]
    assert entry["images"] == [".user.nmap:7.93", "localhost/lev-nmap:latest"]
    assert entry["schemas"] == ["demo/nmap.alive@1.0", "demo/nmap.raw@1.0"]

    modes = entry["modes"]
    assert [m["name"] for m in modes] == ["raw", "alive", "port_os"]
    assert {m["kind"] for m in modes} == {"mode"}
    raw, alive, port_os = modes

    assert raw["qualname"] == f"{mod.__name__}:raw"
    assert raw["desc"] == "raw nmap"
    assert raw["example"] == 'await nmap.raw(["-h"])'
    assert raw["images"] == [".user.nmap:7.93"]
    assert raw["schemas"] == ["demo/nmap.raw@1.0"]
    assert raw["params"] == [
        {
            "name": "argv",
            "type": "list[str]",
            "kind": "positional_or_keyword",
            "required": True,
            "default": None,
            "placeholder": '["-h"]',
            "regex": None,
            "desc": "Raw command-line arguments passed to the tool",
        }
    ]
    assert raw["unknown_params"] == []

    assert alive["desc"] == "alive hosts"
    assert alive["doc"] == "Find live hosts."
    assert alive["cats"] == {"attck": ["TA0007", "TA0043"]}
    assert alive["images"] == ["localhost/lev-nmap:latest"]
    assert alive["unknown_params"] == ["server"]
    ip, ping, timeout = alive["params"]
    assert ip["placeholder"] == "127.0.0.1/32"
    assert ip["regex"] == r"^[0-9./]+$"
    assert ip["desc"] == "targets"
    assert (ping["type"], ping["required"], ping["default"]) == ("bool", False, True)
    assert ping["placeholder"] is None and ping["desc"] is None
    assert (timeout["type"], timeout["kind"], timeout["default"]) == ("float", "keyword_only", 1.5)

    # Computed image and schema are not constants: nothing can be said statically.
    assert port_os["images"] == [] and port_os["schemas"] == []
    assert port_os["desc"] is None
    assert port_os["params"][1]["type"] == "Optional[int]"


def test_module_without_header_or_modes(tmp_path, monkeypatch):
    mod = load_module(tmp_path, monkeypatch, "x = 1\n")
    entry = manifest_entry(mod)
    assert entry["modes"] == []
    assert entry["desc"] is None and entry["doc"] is None
    assert [entry[k] for k in ("homepage", "github", "type", "version")] == [None] * 4


def test_module_with_string_annotations_falls_back_to_raw_text(tmp_path, monkeypatch):
    mod = load_module(
        tmp_path,
        monkeypatch,
        """
        from __future__ import annotations

        from typing import TYPE_CHECKING

        from levrt.annot import meta

        if TYPE_CHECKING:
            from somewhere import Thing


        @meta()
        def mode(a: Thing, b: list[int] | None = None, c=object()):
            return None
        """,
    )
    (entry,) = manifest_entry(mod)["modes"]
    a, b, c = entry["params"]
    assert a["type"] == "Thing"
    assert b["type"] == "list[int] | None"
    assert c["type"] is None
    assert c["default"].startswith("<object object")
    assert c["required"] is False


# ---------------------------------------------------------------- manifest: modeless tool


def test_modeless_tool_manifest(tmp_path, monkeypatch):
    mod = load_module(
        tmp_path,
        monkeypatch,
        '''
        """Hello tool
        Homepage: https://example.org
        Type: API-BASED
        """
        import levrt
        from levrt.annot import Param, meta
        from levrt.annot.cats import Attck


        @meta(
            desc="Hello",
            params=[Param("name", "person name", holder="world")],
            cats=[Attck.Reconnaissance],
            ext={"icon": "wave"},
        )
        def hello(name: str = "world", times: int = 1) -> "levrt.Cr":
            """
            Say hello.

            ```python
                await hello("world")
            ```
            """
            return levrt.Cr("alpine:latest", entry=None)
        ''',
    )
    manifest = meta([mod.hello])
    json.dumps(manifest)
    assert manifest["levrt"] == 1
    (entry,) = manifest["exports"]
    assert entry["kind"] == "tool"
    assert entry["name"] == "hello"
    assert entry["qualname"] == f"{mod.__name__}:hello"
    assert entry["desc"] == "Hello"
    assert entry["doc"].startswith("Say hello.")
    assert entry["example"] == 'await hello("world")'
    assert entry["cats"] == {"attck": ["TA0043"]}
    assert entry["ext"] == {"icon": "wave"}
    assert entry["homepage"] == "https://example.org"
    assert entry["type"] == "API-BASED"
    assert entry["version"] is None
    assert entry["images"] == ["alpine:latest"]
    assert entry["schemas"] == []
    assert [(p["name"], p["type"], p["default"]) for p in entry["params"]] == [
        ("name", "str", "world"),
        ("times", "int", 1),
    ]
    (mode,) = entry["modes"]
    assert mode["kind"] == "mode"
    assert mode["name"] == "hello"
    assert mode["params"] == entry["params"]
    assert mode["images"] == ["alpine:latest"]


# ---------------------------------------------------------------- manifest: workflow


@meta(
    desc="Detect surviving hosts and their ports",
    params=[Param("server", "List of ips", holder='["192.168.1.1/24"]')],
    tags=["lan"],
)
async def server_port(ip: str, limit: int = 8):
    """
    Detect surviving hosts in the LAN.
    ```
    await server_port("192.168.1.1/24")
    ```
    """


def test_workflow_manifest():
    manifest = meta([server_port])
    json.dumps(manifest)
    (entry,) = manifest["exports"]
    assert entry["kind"] == "workflow"
    assert entry["name"] == "server_port"
    assert entry["qualname"] == f"{__name__}:server_port"
    assert entry["desc"] == "Detect surviving hosts and their ports"
    assert entry["doc"].splitlines()[0] == "Detect surviving hosts in the LAN."
    assert entry["example"] == 'await server_port("192.168.1.1/24")'
    assert entry["tags"] == ["lan"]
    assert entry["unknown_params"] == ["server"]
    assert [p["name"] for p in entry["params"]] == ["ip", "limit"]
    assert "images" not in entry and "modes" not in entry


def test_desc_falls_back_to_first_docstring_line():
    async def undecorated(x):
        """

        First line here.
        Second line.
        """

    entry = manifest_entry(undecorated)
    assert entry["desc"] == "First line here."
    assert entry["cats"] == {} and entry["tags"] == [] and entry["ext"] == {}
    assert entry["params"][0]["type"] is None


def test_manifest_mixed_exports_keep_order(tmp_path, monkeypatch):
    mod = load_module(tmp_path, monkeypatch, NMAP_MODULE)
    manifest = meta([mod, server_port, module_level_tool])
    assert [e["kind"] for e in manifest["exports"]] == ["tool", "workflow", "tool"]


# ---------------------------------------------------------------- meta(exports, keywords)

GREETER = '''
    """Says hello."""
    from levrt import Cr, annot, ctx, remote
    from levrt.annot.cats import Attck, BlackArch


    @annot.meta(desc="Greet", params=[annot.Param("who", "whom to greet")], tags=["mode-tag"])
    def greet(who: str = "there") -> Cr:
        @remote
        def entry():
            ctx.set(msg=f"hey {who}")
        return Cr("localhost/lev-base:bookworm", entry=entry())


    @annot.meta(desc="Wave", cats=[BlackArch.Misc])
    def wave() -> Cr:
        return Cr("localhost/lev-base:bookworm", cmd=["true"])


    def plain() -> Cr:
        return Cr("localhost/lev-base:bookworm", cmd=["true"])


    async def flow():
        pass


    __lev__ = annot.meta([plain, greet, flow], desc="greeter",
                         cats={Attck: [Attck.Reconnaissance]}, tags=["demo"])
'''


def test_module_lev_with_keywords_decides_the_tools_modes(tmp_path, monkeypatch):
    mod = load_module(tmp_path, monkeypatch, GREETER)
    assert mod.__lev__["desc"] == "greeter"
    assert mod.__lev__["cats"] == {"attck": ["TA0043"]}
    assert mod.__lev__["tags"] == ["demo"]
    entry = manifest_entry(mod)
    json.dumps(entry)
    # Exactly the listed sync functions, in the listed order; the workflow is no mode and
    # the annotated `wave` left out of the list is not shown.
    assert [mode["name"] for mode in entry["modes"]] == ["plain", "greet"]
    assert entry["desc"] == "greeter"
    assert entry["cats"] == {"attck": ["TA0043"]}
    assert entry["tags"] == ["demo"]
    assert entry["doc"] == "Says hello."
    greet = entry["modes"][1]
    assert greet["kind"] == "mode" and greet["desc"] == "Greet"
    assert greet["params"][0]["desc"] == "whom to greet"


def test_module_lev_without_keywords_falls_back_to_docstring_and_modes(tmp_path, monkeypatch):
    mod = load_module(tmp_path, monkeypatch, GREETER.replace(
        '''desc="greeter",
                         cats={Attck: [Attck.Reconnaissance]}, tags=["demo"])''', ")"))
    entry = manifest_entry(mod)
    assert entry["desc"] == "Says hello."
    assert entry["tags"] == ["mode-tag"]
    assert entry["cats"] == {}


def test_package_lev_keywords_and_positional_form():
    manifest = meta([server_port], "the package", None, [Attck.Discovery], ["t"], {"k": 1})
    assert (manifest["desc"], manifest["cats"], manifest["tags"], manifest["ext"]) == (
        "the package", {"attck": ["TA0007"]}, ["t"], {"k": 1})
    assert meta([server_port], params=[Param("x", "y")])["params"][0]["name"] == "x"


# ---------------------------------------------------------------- meta(exports) errors


def test_exports_errors():
    with pytest.raises(TypeError, match="with parentheses"):
        meta(module_level_tool)
    with pytest.raises(TypeError, match="expects a list of modules and functions, got str"):
        meta("nmap")
    with pytest.raises(TypeError, match="item 1 is int 5"):
        meta([module_level_tool, 5])
    with pytest.raises(TypeError, match="item 0 is builtin_function_or_method"):
        meta([len])
    with pytest.raises(TypeError, match="desc must be a str"):
        meta([module_level_tool], desc=5)
    with pytest.raises(ValueError, match="cats"):
        meta([module_level_tool], cats="recon")

    def gen():
        yield 1

    with pytest.raises(TypeError, match="item 0"):
        meta((gen,))
    with pytest.raises(TypeError, match="cannot export"):
        manifest_entry(gen)


# ---------------------------------------------------------------- static images and schemas


def test_static_image_detection():
    def tool(name: str, tag: str):
        image = f"img:{tag}"
        lev.Cr("attr/image:1", schema="ns/attr@1.0")
        lev.Cr(image, "ns/dynamic-image@1.0")
        lev.Cr(".user.tool:tag")
        lev.Cr(*[name])
        lev.Cr(schema="ns/kw-only@1.0", image="kw/image:2")
        lev.Cr(".user.tool:tag", None)
        return lev.Cr(image=image, schema=f"ns/{name}")

    entry = manifest_entry(tool)
    assert entry["images"] == [".user.tool:tag", "attr/image:1", "kw/image:2"]
    assert entry["schemas"] == ["ns/attr@1.0", "ns/dynamic-image@1.0", "ns/kw-only@1.0"]


def test_static_detection_without_source_is_empty():
    namespace: dict = {"__name__": "generated"}
    code = "def gen_tool(x: int = 1):\n    return Cr('some/image:1', 'ns/s@1')\n"
    exec(compile(code, "<generated>", "exec"), namespace)
    entry = manifest_entry(namespace["gen_tool"])
    assert entry["images"] == [] and entry["schemas"] == []
    assert entry["qualname"] == "generated:gen_tool"
    assert entry["params"][0]["type"] == "int"


# ---------------------------------------------------------------- type rendering


def test_type_rendering():
    def typed(
        s: str,
        i: int,
        f: float,
        b: bool,
        ls: list[str],
        oi: Optional[int],  # noqa: UP045 - the spelling packages use must render as written
        d: dict,
        ds: dict[str, int],
        u: int | None,
        untyped,
        t: tuple[int, ...] = (1, 2),
        *args: str,
        **kwargs: int,
    ):
        pass

    params = {p["name"]: p for p in manifest_entry(typed)["params"]}
    # Python 3.14 merged the two union spellings; either rendering is faithful there.
    assert params.pop("u")["type"] in ("int | None", "Optional[int]")
    assert {name: p["type"] for name, p in params.items()} == {
        "s": "str",
        "i": "int",
        "f": "float",
        "b": "bool",
        "ls": "list[str]",
        "oi": "Optional[int]",
        "d": "dict",
        "ds": "dict[str, int]",
        "untyped": None,
        "t": "tuple[int, ...]",
        "args": "str",
        "kwargs": "int",
    }
    assert params["t"]["default"] == [1, 2]
    assert params["args"]["kind"] == "var_positional"
    assert params["args"]["required"] is False
    assert params["kwargs"]["kind"] == "var_keyword"
    assert params["s"]["required"] is True


def test_annot_package_exports():
    assert annot.cats.Attck is Attck
    assert set(annot.__all__) == {
        "ARGV",
        "Meta",
        "Param",
        "cats",
        "get_meta",
        "manifest_entry",
        "meta",
    }


# ---------------------------------------------------------------- junk in, clean errors out

members = list(Attck) + list(BlackArch)
atoms = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.binary(max_size=4),
    st.sampled_from(members),
    st.sampled_from([Attck, BlackArch, ARGV, Param("ip", "x"), len, os, object(), server_port]),
)
junk = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.frozensets(st.sampled_from(members), max_size=3),
        st.dictionaries(
            st.one_of(st.text(max_size=5), st.integers(), st.sampled_from([Attck, BlackArch])),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=8,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(desc=junk, params=junk, cats=junk, tags=junk, ext=junk)
def test_meta_decorator_junk_raises_only_type_or_value_error(desc, params, cats, tags, ext):
    try:
        decorate = meta(desc=desc, params=params, cats=cats, tags=tags, ext=ext)
    except (TypeError, ValueError):
        return

    def target(ip: str) -> None:
        pass

    assert decorate(target) is target
    json.dumps(manifest_entry(target))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(exports=junk)
def test_meta_exports_junk_raises_only_type_or_value_error(exports):
    if exports is None:  # the decorator form, covered above
        return
    try:
        manifest = meta(exports)
    except (TypeError, ValueError):
        return
    json.dumps(manifest)
