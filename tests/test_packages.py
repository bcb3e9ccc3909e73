"""Packages on the author's side: manifests, lev check, lev new, wheels (levrt.packages)."""

import json
import subprocess
import sys
import tempfile
import textwrap
import types
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import levrt
from levrt._cli import cli_main
from levrt.packages import (
    PackageError,
    PackageInfo,
    Problem,
    build_wheel,
    check_package,
    package_manifest,
    read_package,
    scaffold,
)
from levrt.packages._probe import build_manifest

HUB = Path(__file__).resolve().parent.parent / "examples" / "lev-hub"

# -- helpers -----------------------------------------------------------------------------


def write_package(parent: Path, name: str, files: dict[str, str], *,
                  pyproject: bool = True) -> Path:
    """A package folder parent/<user>.<tool>; file names are relative to lev/<user>/<tool>/
    unless they start with "/" (then relative to the folder)."""
    user, tool = name.split(".")
    root = parent / name
    package = root / "lev" / user / tool
    package.mkdir(parents=True)
    if pyproject:
        (root / "pyproject.toml").write_text(
            f'[project]\nname = "lev.{name}"\nversion = "0.1.0"\ndependencies = ["levrt"]\n')
    for relative, text in files.items():
        path = root / relative[1:] if relative.startswith("/") else package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def line_of(path: Path, text: str, occurrence: int = 1) -> int:
    """1-based line of the `occurrence`-th line containing `text`."""
    found = [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    return found[occurrence - 1]


def definition_line(path: Path, name: str) -> int:
    """Where a decorated function's definition starts: its first decorator."""
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(f"def {name}(")
                 or line.startswith(f"async def {name}("))
    while index > 0 and (lines[index - 1].startswith(("@", " ", ")")) and lines[index - 1]):
        index -= 1
    return index + 1


def found(report, level=None):
    return {(p.level, p.file, p.line, p.code) for p in report.problems
            if level is None or p.level == level}


def lev(capsys, *argv):
    code = cli_main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


TOOL = '''
    """demo: says hello.
    Homepage: https://example.org
    Type: IMAGE-BASED
    Version: v1.0
    """
    from levrt import Cr, annot, ctx, remote
    from levrt.annot.cats import Attck, BlackArch


    @annot.meta(desc="say hello", params=[annot.Param("ip", "target", holder="127.0.0.1")],
                cats=[Attck.Discovery, BlackArch.Misc])
    def hello(ip: str, times: int = 1) -> Cr:
        """Say hello.
        ```
        await demo.hello("127.0.0.1")
        ```
        """
        @remote
        def entry():
            ctx.set(said=[ip] * times)
        return Cr("localhost/lev-demo:latest", "zz/demo.hello@1.0", entry=entry())
'''
FLOW = '''
    from levrt import annot
    from . import demo


    @annot.meta(desc="hello, then done")
    async def demo_flow(ip: str) -> list:
        """Say hello through the tool.
        ```
        await demo_flow("127.0.0.1")
        ```
        """
        return (await (await demo.hello(ip)).get())["said"]
'''
INIT = '''
    """zz.demo: a tool and a workflow."""
    from levrt import annot
    from . import demo
    from .asset import demo_flow
    __lev__ = annot.meta([demo, demo_flow])
'''


def demo_package(parent: Path, **changes: str) -> Path:
    files = {"__init__.py": INIT, "demo.py": TOOL, "asset.py": FLOW}
    files.update(changes)
    return write_package(parent, "zz.demo", files)


# -- the example packages ----------------------------------------------------------------


def test_example_multi_mode_tool_and_workflows():
    report = check_package(HUB / "szczecin.nmap_python")
    assert report.problems == []
    manifest = report.manifest
    assert manifest["package"] == manifest["module"] == "lev.szczecin.nmap_python"
    assert (manifest["user"], manifest["tool"], manifest["version"]) == (
        "szczecin", "nmap_python", "1.0.0")
    assert manifest["description"].startswith("nmap for Leviathan")
    assert manifest["levrt"] == levrt.__version__
    assert manifest["manifest"] == 1
    assert manifest["doc"].startswith("szczecin.nmap_python: the nmap tool")
    assert [(e["kind"], e["name"]) for e in manifest["exports"]] == [
        ("tool", "nmap_python"), ("workflow", "alive_nmap_python"),
        ("workflow", "port_os_nmap_python"), ("workflow", "server_port")]
    package = HUB / "szczecin.nmap_python" / "lev" / "szczecin" / "nmap_python"
    tool = manifest["exports"][0]
    assert tool["qualname"] == "lev.szczecin.nmap_python.nmap_python"
    assert (tool["file"], tool["line"]) == ("lev/szczecin/nmap_python/nmap_python.py", 1)
    assert (tool["homepage"], tool["type"], tool["version"]) == (
        "https://nmap.org", "IMAGE-BASED", "v7.93")
    assert tool["images"] == ["localhost/lev-nmap:latest"]
    assert "szczecin/nmap.port_os@1.0" in tool["schemas"]
    modes = {mode["name"]: mode for mode in tool["modes"]}
    assert list(modes) == ["raw", "alive", "port_os"]
    for name, mode in modes.items():
        assert mode["kind"] == "mode"
        assert mode["file"] == "lev/szczecin/nmap_python/nmap_python.py"
        assert mode["line"] == definition_line(package / "nmap_python.py", name)
    assert modes["raw"]["params"][0]["name"] == "argv"
    assert modes["raw"]["params"][0]["placeholder"] == '["-h"]'
    ip, ports = modes["port_os"]["params"]
    assert (ip["name"], ip["type"], ip["required"], ip["placeholder"]) == (
        "ip", "str", True, "127.0.0.1")
    assert (ports["type"], ports["required"], ports["default"]) == ("str | None", False, None)
    assert ports["regex"] == r"^[0-9TUSP:,\-]+$"
    assert modes["alive"]["example"] == 'await nmap_python.alive("127.0.0.1 ::1")'
    assert modes["alive"]["cats"] == {"attck": ["TA0007", "TA0043"],
                                      "blackarch": ["recon", "scanner"]}
    server_port = manifest["exports"][3]
    assert server_port["file"] == "lev/szczecin/nmap_python/asset.py"
    assert server_port["line"] == definition_line(package / "asset.py", "server_port")
    assert [p["name"] for p in server_port["params"]] == ["ip", "ports"]
    assert server_port["unknown_params"] == []


def test_example_workflow_only_package_imports_its_sibling():
    report = check_package(HUB / "szczecin.lan_audit")
    assert report.problems == []
    exports = report.manifest["exports"]
    assert [(e["kind"], e["name"]) for e in exports] == [
        ("workflow", "open_services"), ("workflow", "quick_check")]
    assert {e["file"] for e in exports} == {"lev/szczecin/lan_audit/asset.py"}
    assert "images" not in exports[0]
    assert exports[1]["params"][1]["regex"] == r"^[0-9TUSP:,\-]+$"


def test_example_modeless_tool():
    report = check_package(HUB / "szczecin.alive")
    assert report.problems == []
    (tool,) = report.manifest["exports"]
    assert (tool["kind"], tool["name"], tool["qualname"]) == (
        "tool", "alive", "lev.szczecin.alive.alive_tool:alive")
    assert tool["file"] == "lev/szczecin/alive/alive_tool.py"
    assert (tool["homepage"], tool["version"]) == ("https://nmap.org", "v7.93")
    assert [mode["name"] for mode in tool["modes"]] == ["alive"]
    assert tool["modes"][0]["line"] == tool["line"]
    assert tool["images"] == ["localhost/lev-nmap:latest"]
    assert tool["example"] == 'await alive("127.0.0.1 ::1")'


@pytest.mark.parametrize("package", ["szczecin.nmap_python", "szczecin.lan_audit",
                                     "szczecin.alive"])
def test_examples_pass_lev_check(capsys, package):
    code, out, err = lev(capsys, "check", str(HUB / package))
    assert code == 0, out + err
    assert out.splitlines()[0].startswith(f"lev.{package} 1.0.0")
    assert out.splitlines()[-1] == "0 errors, 0 warnings"


def test_check_json_and_readable_output(capsys):
    code, out, _ = lev(capsys, "check", str(HUB / "szczecin.nmap_python"), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["problems"] == [] and data["manifest"]["package"] == "lev.szczecin.nmap_python"
    code, out, _ = lev(capsys, "check", str(HUB / "szczecin.nmap_python"))
    assert "  mode port_os(ip: str, ports: str | None = None)  [lev/szczecin/nmap_python/" in out
    assert "      --ports: str | None, default None, placeholder 22,80,443,8000-8100" in out
    assert "    images: localhost/lev-nmap:latest" in out
    assert "    categories: Discovery (TA0007), Reconnaissance (TA0043)" in out


def test_checking_writes_no_bytecode_into_the_package():
    check_package(HUB / "szczecin.alive")
    assert not list((HUB / "szczecin.alive").rglob("__pycache__"))


# -- the seed's own code -----------------------------------------------------------------

# The seed's asset.py ("Write workflow") and __init__.py ("Module import", first version),
# verbatim (tabs included).
FIXTURES = Path(__file__).resolve().parent / "fixtures_packages"
SEED_ASSET = (FIXTURES / "seed_asset.py.txt").read_text()
SEED_INIT = (FIXTURES / "seed_init.py.txt").read_text()
# The tool module the seed's chapter builds before: a tool function returning a Cr.
SEED_NMAP = '''
    """Nmap, the network scanner.
    Homepage: https://nmap.org
    Type: IMAGE-BASED
    Version: v7.93
    """
    import levrt
    from levrt import Cr, ctx, remote, annot
    from levrt.annot.cats import Attck, BlackArch

    @annot.meta(desc="nmap alive hosts",
                params=[annot.Param("ip", "targets", holder="127.0.0.1/32")],
                cats=[Attck.Reconnaissance])
    def alive(ip: str, ping: bool = True) -> Cr:
        """Find live hosts.
        ```
        await nmap.alive("127.0.0.1/32")
        ```
        """
        @remote
        def entry():
            import subprocess, xml.etree.ElementTree as ET
            out = subprocess.run(["nmap", "-sn", "-oX", "-", ip],
                                 capture_output=True, text=True).stdout
            hosts = [h.find("address").get("addr") for h in ET.fromstring(out).iter("host")]
            ctx.set(alive=hosts)
        return Cr("localhost/lev-nmap:latest", "demo/nmap.alive@1.0", entry=entry())

    @annot.meta(desc="nmap ports and OS", params=[annot.Param("ip", "one host")],
                cats=[Attck.Reconnaissance, BlackArch.Scanner])
    def port_os(ip: str) -> Cr:
        """Scan one host's ports and OS.
        ```
        await nmap.port_os("127.0.0.1")
        ```
        """
        @remote
        def entry():
            import subprocess
            out = subprocess.run(["nmap", "-sV", "-O", "-oX", "-", ip],
                                 capture_output=True, text=True).stdout
            ctx.set(host=ip, xml=out)
        return Cr("localhost/lev-nmap:latest", "demo/nmap.port_os@1.0", entry=entry())
'''


@pytest.fixture
def seed_package(tmp_path):
    root = write_package(tmp_path, "szczecin.nmap_python", {"nmap.py": SEED_NMAP})
    package = root / "lev" / "szczecin" / "nmap_python"
    (package / "asset.py").write_text(SEED_ASSET)
    (package / "__init__.py").write_text(SEED_INIT)
    return root


def test_seed_bugs_are_reported_with_file_and_line(seed_package, capsys):
    init, asset = "lev/szczecin/nmap_python/__init__.py", "lev/szczecin/nmap_python/asset.py"
    report = check_package(seed_package)
    assert report.manifest is None  # its __init__ cannot be imported
    assert found(report) == {
        # the seed's asset.py defines only server_port; __init__ imports two more from it
        ("error", init, 4, "import-missing"),
        ("error", init, 7, "export-undefined"),
        ("error", asset, 6, "param-unknown"),
        ("warning", asset, 12, "example-undefined"),
        ("error", asset, 33, "name-undefined"),
    }
    text = "\n".join(map(str, report.problems))
    assert (f"{init}:7: error: export nmap_python is neither defined nor imported in "
            "__init__.py") in text
    assert f"{asset}:6: error: Param 'server' names no parameter of server_port(ip)" in text
    assert f"{asset}:33: error: os_reult is not defined in server_port (did you mean " \
           "os_result" in text
    assert (f"{asset}:12: warning: the example of server_port calls server_post, which the "
            "package does not define (did you mean server_port?)") in text
    assert f"{init}:4: error: cannot import alive_nmap_python from " \
           "lev.szczecin.nmap_python.asset" in text

    code, out, err = lev(capsys, "check", str(seed_package))
    assert code == 1
    assert "Traceback" not in out + err
    assert f"{seed_package}/{asset}:6: error: Param 'server'" in out
    assert out.splitlines()[-1] == "5 errors, 1 warning"


def test_seed_import_failure_is_reported_where_static_checks_say_nothing(seed_package):
    # With the two workflows the seed's next section adds, the import gets as far as the
    # __lev__ line and fails there (NameError): the static error at that line explains it.
    asset = seed_package / "lev" / "szczecin" / "nmap_python" / "asset.py"
    asset.write_text(SEED_ASSET + textwrap.dedent('''
        async def alive_nmap_python(ip: str):
            """Live hosts.
            ```
            await alive_nmap_python("127.0.0.1")
            ```
            """
            return await (await nmap.alive(ip)).get()

        async def port_os_nmap_python(ip: str):
            """Ports.
            ```
            await port_os_nmap_python("127.0.0.1")
            ```
            """
            return await (await nmap.port_os(ip)).get()
    '''))
    with pytest.raises(PackageError) as caught:
        package_manifest(seed_package)
    assert (caught.value.file, caught.value.line) == ("lev/szczecin/nmap_python/__init__.py", 7)
    assert "NameError: name 'nmap_python' is not defined" in str(caught.value)
    codes = {(p.file, p.line, p.code) for p in check_package(seed_package).errors}
    assert ("lev/szczecin/nmap_python/__init__.py", 7, "export-undefined") in codes
    assert not any(code == "import" for _, _, code in codes)


# -- each check on a minimal package -----------------------------------------------------


def test_demo_package_is_clean(tmp_path):
    report = check_package(demo_package(tmp_path))
    assert report.problems == []
    assert [e["name"] for e in report.manifest["exports"]] == ["demo", "demo_flow"]


def test_unknown_categories_suggest_members(tmp_path):
    tool = TOOL.replace("cats=[Attck.Discovery, BlackArch.Misc]",
                        "cats=[Attck.Recon,\n                      BlackArch.Scaner, 'recon']")
    root = demo_package(tmp_path, **{"demo.py": tool})
    report = check_package(root)
    demo = "lev/zz/demo/demo.py"
    line = line_of(root / demo, "Attck.Recon")
    assert found(report, "error") == {
        ("error", demo, line, "category-unknown"),
        ("error", demo, line + 1, "category-unknown"),
        ("error", demo, line + 1, "category-form"),
    }
    messages = [p.message for p in report.problems]
    assert "unknown category Attck.Recon (did you mean Attck.Reconnaissance?)" in messages
    assert any(m.startswith("unknown category BlackArch.Scaner (did you mean BlackArch.Scanner")
               for m in messages)
    assert ("category 'recon' is not an Attck or BlackArch member: write BlackArch.Recon"
            in messages)


def test_workflow_calling_a_mode_the_tool_module_lacks(tmp_path):
    flow = FLOW.replace("demo.hello(ip)", "demo.helo(ip)")
    root = demo_package(tmp_path, **{"asset.py": flow})
    report = check_package(root, run_import=False)
    (problem,) = report.problems
    assert (problem.file, problem.line, problem.code) == (
        "lev/zz/demo/asset.py", line_of(root / "lev/zz/demo/asset.py", "demo.helo"),
        "mode-missing")
    assert problem.message == ("demo.helo(...): lev.zz.demo.demo has no helo; its modes: hello "
                               "(did you mean hello?)")


def test_mode_missing_in_a_sibling_packages_tool_module(tmp_path):
    hub = tmp_path / "lev-hub"
    demo_package(hub)
    root = write_package(hub, "zz.audit", {
        "__init__.py": '''
            """zz.audit: workflows only."""
            from levrt import annot
            from .asset import audit
            __lev__ = annot.meta([audit])
        ''',
        "asset.py": '''
            from levrt import annot
            from lev.zz.demo import demo as tool


            @annot.meta(desc="audit")
            async def audit(ip: str) -> list:
                """Audit.
                ```
                await audit("127.0.0.1")
                ```
                """
                first = await (await tool.hello(ip)).get()
                return [first, await (await tool.port_scan(ip)).get()]
        ''',
    })
    report = check_package(root)
    assert report.manifest is not None  # the sibling imports
    assert found(report) == {("error", "lev/zz/audit/asset.py", 13, "mode-missing")}


def test_bare_image_ids_are_warnings(tmp_path, capsys):
    long_id = "3f" * 32
    tool = TOOL.replace('Cr("localhost/lev-demo:latest"', f'Cr("{long_id}"') + textwrap.dedent(f'''
        @annot.meta(desc="other")
        def other(ip: str) -> Cr:
            """Other.
            ```
            await demo.other("x")
            ```
            """
            return Cr(image="sha256:{long_id}", cmd=["true"])

        @annot.meta(desc="short")
        def short(ip: str) -> Cr:
            """Short.
            ```
            await demo.short("x")
            ```
            """
            return Cr("3f2a9c0d1b7e", cmd=["true"])
    ''').replace("\n", "\n    ")
    root = demo_package(tmp_path, **{"demo.py": tool})
    report = check_package(root, run_import=False)
    assert {(p.level, p.code) for p in report.problems} == {("warning", "image-id")}
    assert len(report.problems) == 3
    assert "is a local image id" in report.problems[0].message
    code, out, _ = lev(capsys, "check", str(root))
    assert code == 0
    assert out.splitlines()[-1] == "0 errors, 3 warnings"


def test_missing_docstrings_and_examples_are_warnings(tmp_path):
    tool = TOOL.replace('"""demo: says hello.', '"""demo: says hello.').replace(
        '''        """Say hello.
        ```
        await demo.hello("127.0.0.1")
        ```
        """
''', '')
    flow = FLOW.replace('''        """Say hello through the tool.
        ```
        await demo_flow("127.0.0.1")
        ```
        """''', '''        """Say hello through the tool."""''')
    root = demo_package(tmp_path, **{"demo.py": tool, "asset.py": flow})
    report = check_package(root)
    assert report.ok
    assert found(report) == {
        ("warning", "lev/zz/demo/demo.py", line_of(root / "lev/zz/demo/demo.py", "def hello"),
         "doc-missing"),
        ("warning", "lev/zz/demo/asset.py", line_of(root / "lev/zz/demo/asset.py", '"""Say'),
         "example-missing"),
    }


def test_example_calling_a_mode_that_does_not_exist(tmp_path):
    tool = TOOL.replace('await demo.hello("127.0.0.1")',
                        'doc = await demo.hello("127.0.0.1")\n        await demo.helo(doc)')
    root = demo_package(tmp_path, **{"demo.py": tool})
    report = check_package(root, run_import=False)
    (problem,) = report.problems
    assert (problem.level, problem.code) == ("warning", "example-undefined")
    assert problem.line == line_of(root / "lev/zz/demo/demo.py", "demo.helo")
    assert "calls demo.helo, but lev.zz.demo.demo has no helo" in problem.message


def test_import_failure_in_a_submodule_names_file_and_line(tmp_path):
    flow = FLOW.replace("from . import demo\n", "from . import demo\n    print('noise')\n"
                        "    LIMITS = {'a': 1}['b']\n")
    root = demo_package(tmp_path, **{"asset.py": flow})
    with pytest.raises(PackageError) as caught:
        package_manifest(root)
    error = caught.value
    assert (error.file, error.line) == ("lev/zz/demo/asset.py", 4)
    assert str(error) == "lev/zz/demo/asset.py:4: cannot import lev.zz.demo: KeyError: 'b'"
    report = check_package(root)
    assert found(report) == {("error", "lev/zz/demo/asset.py", 4, "import")}


def test_import_failure_in_a_sibling_package_names_both_places(tmp_path):
    hub = tmp_path / "lev-hub"
    demo_package(hub, **{"demo.py": TOOL + "    raise RuntimeError('no scanner here')\n"})
    root = write_package(hub, "zz.audit", {
        "__init__.py": '''
            """zz.audit."""
            from levrt import annot
            from lev.zz.demo import demo
            __lev__ = annot.meta([demo])
        ''',
    })
    report = check_package(root)
    (problem,) = report.problems
    assert (problem.file, problem.line, problem.code) == ("lev/zz/audit/__init__.py", 3, "import")
    sibling = (hub / "zz.demo" / "lev" / "zz" / "demo" / "demo.py").resolve()
    assert problem.message == (
        "cannot import lev.zz.audit: RuntimeError: no scanner here (raised at "
        f"{sibling}:{line_of(sibling, 'no scanner here')})")


def test_no_import_option_checks_statically(tmp_path, capsys):
    root = demo_package(tmp_path, **{"asset.py": FLOW + "    raise SystemExit(3)\n"})
    code, out, _ = lev(capsys, "check", str(root), "--no-import")
    assert (code, out) == (0, "0 errors, 0 warnings\n")
    code, out, _ = lev(capsys, "check", str(root), "--json")
    assert code == 1
    (problem,) = json.loads(out)["problems"]
    assert problem["message"] == "cannot import lev.zz.demo: SystemExit: 3"


def test_syntax_error_is_reported_once(tmp_path):
    root = demo_package(tmp_path, **{"asset.py": FLOW + "    def broken(:\n"})
    report = check_package(root)
    line = line_of(root / "lev/zz/demo/asset.py", "def broken")
    assert found(report) == {("error", "lev/zz/demo/asset.py", line, "syntax")}


def test_params_resolved_through_names_and_modules(tmp_path):
    root = demo_package(tmp_path, **{
        "common.py": '''
            from levrt import annot
            ADDRESS = annot.Param("address", "where")
        ''',
        "asset.py": FLOW.replace("from . import demo", "from . import demo\n"
                                 "    from .common import ADDRESS\n"
                                 "    PORT = annot.Param('port', 'which')").replace(
            '@annot.meta(desc="hello, then done")',
            '@annot.meta(desc="hello, then done", params=[ADDRESS, PORT, annot.ARGV])'),
    })
    report = check_package(root, run_import=False)
    assert sorted((p.code, p.message) for p in report.problems) == [
        ("param-unknown", "Param 'address' names no parameter of demo_flow(ip)"),
        ("param-unknown", "Param 'argv' names no parameter of demo_flow(ip)"),
        ("param-unknown", "Param 'port' names no parameter of demo_flow(ip)"),
    ]


def test_params_built_by_code_come_from_the_manifest(tmp_path):
    flow = FLOW.replace('@annot.meta(desc="hello, then done")',
                        '@annot.meta(desc="hello, then done", '
                        'params=[annot.Param(n, "x") for n in ("ip", "port")])')
    root = demo_package(tmp_path, **{"asset.py": flow})
    report = check_package(root)
    line = line_of(root / "lev/zz/demo/asset.py", "@annot.meta")
    assert found(report) == {("error", "lev/zz/demo/asset.py", line, "param-unknown")}


def test_undefined_names_follow_python_scoping(tmp_path):
    flow = '''
        import os
        from levrt import annot

        CONST = 1


        def helper():
            return CONST


        @annot.meta(desc="scopes")
        async def demo_flow(ip: "UnknownType") -> "AlsoUnknown":
            """Scopes.
            ```
            await demo_flow("x")
            ```
            """
            global LATER
            LATER = 2
            squares = [n * n for n in range(3) if n]
            table = {k: v for k, v in zip("ab", squares)}
            total = sum(x for x in squares)
            if (count := len(table)) > 1:
                pass
            add = lambda a, b=CONST: a + b + count  # noqa: E731
            def inner(y):
                nonlocal total
                total += y
                return y + missing_inner
            class Local:
                attr = 1
                seen = [n for n in [attr]]  # the first iterable runs in the class
                def method(self):
                    return attr
            try:
                pass
            except Exception as err:
                print(err)
            match ip:
                case [first, *rest]:
                    print(first, rest)
                case {"k": value, **others}:
                    print(value, others)
            print(os.sep, helper(), LATER, add, inner, Local, undefined_top, __name__)
            return [z for z in [typo_in_comp]]
    '''
    root = demo_package(tmp_path, **{"asset.py": flow})
    report = check_package(root, run_import=False)
    path = root / "lev/zz/demo/asset.py"
    assert {(p.line, p.message.split()[0]) for p in report.problems} == {
        (line_of(path, "missing_inner"), "missing_inner"),
        (line_of(path, "return attr"), "attr"),
        (line_of(path, "undefined_top"), "undefined_top"),
        (line_of(path, "typo_in_comp"), "typo_in_comp"),
    }


def test_exports_that_are_not_names(tmp_path):
    init = INIT.replace("annot.meta([demo, demo_flow])", "annot.meta([demo, 'demo_flow', int])")
    report = check_package(demo_package(tmp_path, **{"__init__.py": init}), run_import=False)
    assert {p.code for p in report.problems} == {"export-kind"}
    assert len(report.problems) == 2


def test_missing_and_malformed_lev(tmp_path):
    root = demo_package(tmp_path / "a", **{"__init__.py": '"""zz.demo."""\n'})
    report = check_package(root)
    assert found(report) == {("error", "lev/zz/demo/__init__.py", None, "lev-missing")}
    root = demo_package(tmp_path / "b", **{"__init__.py": "__lev__ = [1, 2]\n"})
    report = check_package(root)
    assert found(report) == {("error", "lev/zz/demo/__init__.py", 1, "lev-form")}
    assert report.manifest is None


def test_lev_that_is_not_a_manifest(tmp_path):
    init = INIT.replace("annot.meta([demo, demo_flow])", '{"levrt": 1, "exports": 5}')
    root = demo_package(tmp_path, **{"__init__.py": init})
    with pytest.raises(PackageError) as caught:
        package_manifest(root)
    assert str(caught.value) == (
        "lev/zz/demo/__init__.py:5: __lev__ must be the manifest annot.meta([...]) returns, not "
        "dict {'exports': 5, 'levrt': 1}: write __lev__ = annot.meta([tool_module, workflow, "
        "...])")
    report = check_package(root)
    assert found(report) == {("error", "lev/zz/demo/__init__.py", 5, "lev-form")}


def test_probe_timeout_kills_the_import(tmp_path):
    root = demo_package(tmp_path, **{"asset.py": "import time\ntime.sleep(30)\n"})
    with pytest.raises(PackageError, match="took longer than 1 s"):
        package_manifest(root, timeout=1)


def test_static_check_runs_no_package_code(tmp_path):
    marker = tmp_path / "ran"
    init = INIT + f"    open({str(marker)!r}, 'w').close()\n"
    root = demo_package(tmp_path, **{"__init__.py": init})
    assert check_package(root, run_import=False).problems == []
    assert not marker.exists()
    check_package(root)
    assert marker.exists()


@pytest.mark.parametrize(("pyproject", "message"), [
    (None, "pyproject.toml: missing: a hub package folder holds pyproject.toml"),
    ('[project]\nname = "lev.zz.demo"\n', "pyproject.toml:1: [project] has no version"),
    ('[project]\nname = "zz.demo"\nversion = "1"\n',
     "pyproject.toml:2: project name 'zz.demo': hub packages are named lev.USER.TOOL"),
    ('[project]\nversion = "1"\nname = "lev.Zz.demo"\n',
     "pyproject.toml:3: project name 'lev.Zz.demo': USER must be lowercase"),
    ('[project\nname = 1', "pyproject.toml:1: not valid TOML"),
    ('[project]\nname = "lev.zz.other"\nversion = "1"\n',
     "lev/zz/other/__init__.py: the package lev.zz.other is missing"),
])
def test_layout_errors(tmp_path, capsys, pyproject, message):
    root = demo_package(tmp_path)
    if pyproject is None:
        (root / "pyproject.toml").unlink()
    else:
        (root / "pyproject.toml").write_text(pyproject)
    with pytest.raises(PackageError) as caught:
        read_package(root)
    assert message in str(caught.value)
    code, out, err = lev(capsys, "check", str(root))
    assert code == 1 and err == ""
    # The code under lev/zz/demo is checked and imported all the same: the layout is the
    # one problem, and the package's manifest is shown.
    assert out.splitlines()[-1] == "1 error, 0 warnings"
    assert message.split(": ", 1)[-1].split(":")[0] in out
    if "is missing" not in message:
        assert "does not import" not in out
        assert "tool demo" in out


def test_read_package(tmp_path):
    info = read_package(HUB / "szczecin.lan_audit")
    assert (info.name, info.module, info.user, info.tool, info.version) == (
        "lev.szczecin.lan_audit", "lev.szczecin.lan_audit", "szczecin", "lan_audit", "1.0.0")
    assert info.package_dir == Path("lev/szczecin/lan_audit")
    assert info.root == (HUB / "szczecin.lan_audit").resolve()
    with pytest.raises(PackageError, match="no such directory"):
        read_package(tmp_path / "nowhere")


def test_problem_and_error_text():
    problem = Problem("error", "lev/a/b/x.py", 12, "name-undefined", "y is not defined")
    assert str(problem) == "lev/a/b/x.py:12: error: y is not defined"
    assert problem.to_dict()["code"] == "name-undefined"
    assert str(Problem("warning", "lev/a/b/x.py", None, "c", "m")) == "lev/a/b/x.py: warning: m"
    error = PackageError("boom", file="x.py", line=3)
    assert isinstance(error, ValueError) and str(error) == "x.py:3: boom"


# -- lev new -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["joe.nmap", "a1.b_2_c"])
def test_new_good_names(tmp_path, capsys, name):
    code, out, _ = lev(capsys, "new", name, "--dir", str(tmp_path))
    assert code == 0
    folder = tmp_path / name
    assert out.splitlines()[0] == f"created {folder} (lev.{name})"
    user, tool = name.split(".")
    package = folder / "lev" / user / tool
    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} == {
        "pyproject.toml", "main.py", "Dockerfile", "README.md", f"tests/test_{tool}.py",
        f"lev/{user}/{tool}/__init__.py", f"lev/{user}/{tool}/{tool}.py",
        f"lev/{user}/{tool}/asset.py"}
    assert not (folder / "lev" / "__init__.py").exists()  # namespace packages
    assert "__lev__ = annot.meta(" in (package / "__init__.py").read_text()
    assert "ARG BASE=localhost/lev-base:bookworm\nFROM ${BASE}" in (
        folder / "Dockerfile").read_text()
    assert read_package(folder).name == f"lev.{name}"


@pytest.mark.parametrize(("name", "rule"), [
    ("Joe.nmap", "'Joe.nmap': USER must be lowercase letters, digits and _ starting with a "
                 "letter"),
    ("joe.Nmap", "TOOL must be lowercase letters, digits and _ starting with a letter"),
    ("1joe.nmap", "USER must be lowercase letters"),
    ("joe.nm-ap", "TOOL must be lowercase letters"),
    ("_joe.nmap", "USER must be lowercase letters"),
    ("joe", "a package name is USER.TOOL: two parts joined by one dot"),
    ("joe.nmap.x", "a package name is USER.TOOL"),
    ("class.nmap", "USER must not be a Python keyword (class)"),
    ("joe.import", "TOOL must not be a Python keyword (import)"),
    ("joe.lev", "TOOL must not be lev, asset or annot"),
    ("joe.asset", "TOOL must not be lev, asset or annot"),
])
def test_new_refuses_bad_names_with_the_rule(tmp_path, capsys, name, rule):
    code, out, err = lev(capsys, "new", name, "--dir", str(tmp_path))
    assert code == 2
    assert err.startswith("lev: error: ") and rule in err and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_new_refuses_an_existing_folder(tmp_path, capsys):
    (tmp_path / "joe.nmap").mkdir()
    code, _, err = lev(capsys, "new", "joe.nmap", "--dir", str(tmp_path))
    assert code == 1
    assert err == f"lev: error: {tmp_path / 'joe.nmap'} already exists: pick another --dir, " \
                  "or remove it first\n"
    with pytest.raises(PackageError, match="no such directory"):
        scaffold(tmp_path / "nowhere", "joe.nmap")


def test_scaffold_passes_check_and_its_own_tests(tmp_path, capsys):
    folder = scaffold(tmp_path, "joe.hello")
    code, out, _ = lev(capsys, "check", str(folder))
    assert code == 0
    assert out.splitlines()[-1] == "0 errors, 0 warnings"
    manifest = check_package(folder).manifest
    tool, flow = manifest["exports"]
    assert (tool["name"], [m["name"] for m in tool["modes"]]) == ("hello", ["hello"])
    assert tool["images"] == [".joe.hello:0.1.0"]
    assert tool["modes"][0]["params"][0]["placeholder"] == "world"
    assert flow["name"] == "hello_hello" and flow["kind"] == "workflow"
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=folder, capture_output=True, text=True, timeout=120)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout


# -- wheels ------------------------------------------------------------------------------


def test_build_wheel_of_an_example(tmp_path):
    wheel = build_wheel(HUB / "szczecin.nmap_python", tmp_path / "dist")
    assert wheel.parent == (tmp_path / "dist").resolve()
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        fields = archive.read(metadata).decode()
    assert {"lev/szczecin/nmap_python/__init__.py", "lev/szczecin/nmap_python/asset.py",
            "lev/szczecin/nmap_python/nmap_python.py"} <= set(names)
    assert not any(n.startswith("lev/__init__") or "__pycache__" in n for n in names)
    assert "Name: lev.szczecin.nmap_python\n" in fields
    assert "Version: 1.0.0\n" in fields


def test_build_wheel_failure_is_a_package_error(tmp_path):
    root = demo_package(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[build-system]\nrequires = []\n'
                         'build-backend = "hatchling.build"\n\n[tool.hatch.build]\n'
                         'packages = 5\n')
    with pytest.raises(PackageError, match="building the wheel of lev.zz.demo failed"):
        build_wheel(root, tmp_path / "dist")


# -- malformed input: problems, never crashes --------------------------------------------

_ATOMS = ["1", "'tool'", "None", "object", "int", "demo", "demo_flow", "lambda: 0",
          "undefined_name", "{}", "3.5"]
_VALID_EXPORTS = {"demo", "demo_flow"}
_lev_items = st.recursive(
    st.sampled_from(_ATOMS),
    lambda inner: st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
    max_leaves=6)
_lev_sources = st.one_of(
    st.lists(_lev_items, max_size=4).map(lambda xs: f"annot.meta([{', '.join(xs)}])"),
    _lev_items.map(lambda x: f"annot.meta({x})"),
    _lev_items,
)
_CATS = ["Attck.Discovery", "BlackArch.Misc", "Attck.Recon", "BlackArch.Scaner", "'recon'", "7",
         "Attck.discovery"]
_GOOD_CATS = {"Attck.Discovery", "BlackArch.Misc"}
_PARAMS = ['annot.Param("ip", "d")', 'annot.Param("times", "d")', 'annot.Param("server", "d")',
           'annot.Param("", "d")', "5", "annot.ARGV"]
_GOOD_PARAMS = {'annot.Param("ip", "d")', 'annot.Param("times", "d")'}


def _malformed_lev(source: str) -> bool:
    prefix, suffix = "annot.meta([", "])"
    if not (source.startswith(prefix) and source.endswith(suffix)):
        return True
    inner = source[len(prefix):-len(suffix)]
    # An empty list is allowed (a warning): the platform just shows nothing.
    return bool(inner) and any(item.strip() not in _VALID_EXPORTS for item in inner.split(","))


def _generated(parent: Path, lev_source: str, cats: list[str], params: list[str]) -> Path:
    init = INIT.replace("annot.meta([demo, demo_flow])", lev_source)
    tool = TOOL.replace("cats=[Attck.Discovery, BlackArch.Misc]", f"cats=[{', '.join(cats)}]")
    tool = tool.replace('params=[annot.Param("ip", "target", holder="127.0.0.1")]',
                        f"params=[{', '.join(params)}]")
    return demo_package(parent, **{"__init__.py": init, "demo.py": tool})


_examples = dict(lev_source=_lev_sources, cats=st.lists(st.sampled_from(_CATS), max_size=3),
                 params=st.lists(st.sampled_from(_PARAMS), max_size=3, unique=True))


def _expect_problems(report, lev_source, cats, params):
    assert all(isinstance(problem, Problem) for problem in report.problems)
    malformed = (_malformed_lev(lev_source) or not set(cats) <= _GOOD_CATS
                 or not set(params) <= _GOOD_PARAMS)
    if malformed:
        assert report.errors, report.problems
    assert not any("Traceback" in problem.message for problem in report.problems)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**_examples)
def test_malformed_packages_give_problems_statically(lev_source, cats, params):
    with tempfile.TemporaryDirectory() as parent:
        root = _generated(Path(parent), lev_source, cats, params)
        report = check_package(root, run_import=False)
    _expect_problems(report, lev_source, cats, params)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**_examples)
def test_malformed_packages_through_the_probe(lev_source, cats, params):
    with tempfile.TemporaryDirectory() as parent:
        root = _generated(Path(parent), lev_source, cats, params)
        report = check_package(root)
        probe = subprocess.run([sys.executable, "-m", "levrt.packages._probe", str(root)],
                               capture_output=True, text=True, timeout=60)
    _expect_problems(report, lev_source, cats, params)
    assert "Traceback" not in probe.stderr
    answer = json.loads(probe.stdout)
    assert answer["ok"] is (report.manifest is not None)


_json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5)
    | st.sampled_from([object, int, types, print]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["levrt", "exports", "kind", "name", "qualname", "modes"]),
                      inner, max_size=4),
    max_leaves=10)


@settings(max_examples=150, deadline=None)
@given(value=_json_like)
def test_probe_accepts_only_a_manifest_as_lev(value):
    module = types.ModuleType("lev.zz.demo")
    module.__file__ = "/nonexistent/lev/zz/demo/__init__.py"
    module.__lev__ = value
    info = PackageInfo("lev.zz.demo", "zz", "demo", "0.1.0", None, Path("/nonexistent"))
    try:
        manifest = build_manifest(module, info)
    except PackageError as exc:
        assert exc.file == "lev/zz/demo/__init__.py"
        assert "__lev__ must be the manifest annot.meta([...]) returns" in exc.message
    else:
        json.dumps(manifest)
        assert isinstance(manifest["exports"], list)


# -- a tool module's own __lev__ (the original's form) -------------------------------------

GREETER_INIT = '''
    """zz.greet: the issue's greeter."""
    from levrt import annot
    from . import greeter
    __lev__ = annot.meta([greeter], desc="greetings", tags=["pkg"])
'''
GREETER = '''
    """Greets whoever asks."""
    from levrt import Cr, annot, ctx, remote
    from levrt.annot.cats import Attck


    @annot.meta(desc="Greet", params=[annot.Param("who", "whom to greet")])
    def greet(who: str = "there") -> Cr:
        """Greet someone.
        ```
        await greeter.greet("you")
        ```
        """
        @remote
        def entry():
            ctx.set(msg=f"hey {who}")
        return Cr("localhost/lev-base:bookworm", entry=entry())

    __lev__ = annot.meta([greet], desc="greeter", cats={Attck: [Attck.Reconnaissance]},
                         tags=["demo"])
'''


def test_the_issues_greeter_imports_and_shows_one_tool_with_one_mode(tmp_path, capsys):
    root = write_package(tmp_path, "zz.greet", {"__init__.py": GREETER_INIT,
                                                 "greeter.py": GREETER})
    report = check_package(root)
    assert report.problems == []
    manifest = report.manifest
    assert (manifest["desc"], manifest["tags"]) == ("greetings", ["pkg"])
    (tool,) = manifest["exports"]
    assert (tool["kind"], tool["name"], tool["desc"]) == ("tool", "greeter", "greeter")
    assert tool["cats"] == {"attck": ["TA0043"]} and tool["tags"] == ["demo"]
    assert [mode["name"] for mode in tool["modes"]] == ["greet"]
    code, out, _ = lev(capsys, "check", str(root))
    assert code == 0
    assert "tool greeter  [lev/zz/greet/greeter.py:1]\n    greeter\n" in out
    assert "  greetings\n  tags: pkg\n" in out


def test_tool_module_lev_findings(tmp_path):
    tool = GREETER.replace("__lev__ = annot.meta([greet]", "__lev__ = annot.meta([greet, flow, X]")
    tool += '''
    X = 1


    @annot.meta(desc="left out")
    def wave() -> Cr:
        return Cr("localhost/lev-base:bookworm", cmd=["true"])


    async def flow():
        """A workflow.
        ```
        await flow()
        ```
        """
'''
    root = write_package(tmp_path, "zz.greet", {"__init__.py": GREETER_INIT, "greeter.py": tool})
    path = root / "lev/zz/greet/greeter.py"
    report = check_package(root)
    listed = line_of(path, "__lev__ = annot.meta(")
    assert found(report) == {
        ("error", "lev/zz/greet/greeter.py", listed, "mode-kind"),  # flow and X, one line
        ("warning", "lev/zz/greet/greeter.py", line_of(path, "def wave("), "mode-unlisted"),
    }
    messages = sorted(p.message for p in report.problems if p.code == "mode-kind")
    assert "lists X, a value, not a function" in messages[0]
    assert "lists flow, an async function" in messages[1]


def test_tools_without_modes_are_errors(tmp_path):
    root = write_package(tmp_path, "zz.greet", {
        "__init__.py": GREETER_INIT.replace("[greeter]", "[greeter, bare]").replace(
            "from . import greeter", "from . import bare, greeter"),
        "greeter.py": GREETER.replace("annot.meta([greet]", "annot.meta([]"),
        "bare.py": '"""Nothing here."""\n'})
    report = check_package(root)
    assert {(p.file, p.code) for p in report.errors} == {
        ("lev/zz/greet/greeter.py", "tool-empty"), ("lev/zz/greet/bare.py", "tool-empty")}


def test_async_modes_returning_cr_and_breakpoints_are_warnings(tmp_path):
    tool = GREETER.replace("            ctx.set(", "            import pdb\n"
                           "            pdb.set_trace()\n            breakpoint()\n"
                           "            ctx.set(")
    tool += '''

    async def later(who: str) -> Cr:
        return Cr("localhost/lev-base:bookworm", cmd=["echo", who])
'''
    root = write_package(tmp_path, "zz.greet", {"__init__.py": GREETER_INIT, "greeter.py": tool})
    path = root / "lev/zz/greet/greeter.py"
    report = check_package(root, run_import=False)
    assert found(report) == {
        ("warning", "lev/zz/greet/greeter.py", line_of(path, "pdb.set_trace()"), "breakpoint"),
        ("warning", "lev/zz/greet/greeter.py", line_of(path, "breakpoint()"), "breakpoint"),
        ("warning", "lev/zz/greet/greeter.py", line_of(path, "async def later"), "async-cr"),
    }
    assert all("skipped unless lev run --debug" in p.message for p in report.problems
               if p.code == "breakpoint")


def test_pdm_workspace_without_pyproject_is_still_checked(tmp_path, capsys):
    root = write_package(tmp_path, "zz.greet", {
        "__init__.py": GREETER_INIT,
        "greeter.py": GREETER.replace("greeter.greet(", "greeter.shout("),
        "/.pdm.toml": "[python]\npath = \"/usr/bin/python3\"\n",
        "/__pypackages__/3.10/lib/README": "installed packages\n"}, pyproject=False)
    report = check_package(root)
    assert found(report) == {("error", "pyproject.toml", None, "layout"),
                             ("warning", "lev/zz/greet/greeter.py",
                              line_of(root / "lev/zz/greet/greeter.py", "greeter.shout("),
                              "example-undefined")}
    assert report.manifest["version"] == "0.0.0"
    code, out, _ = lev(capsys, "check", str(root))
    assert code == 1 and "does not import" not in out and "tool greeter" in out


def test_no_import_headline_without_an_import(tmp_path, capsys):
    code, out, _ = lev(capsys, "check", str(tmp_path))
    assert code == 1
    assert "does not import" not in out
    assert "pyproject.toml: error: missing" in out


def test_a_listed_mode_without_annotation_is_checked_like_one(tmp_path):
    tool = GREETER.replace("    __lev__ = annot.meta([greet]", '''
    def plain() -> Cr:
        """A mode without @annot.meta.
        ```
        await greeter.plain()
        ```
        """
        return Cr("localhost/lev-base:bookworm", cmd=["echo", whom])

    __lev__ = annot.meta([greet, plain]''')
    root = write_package(tmp_path, "zz.greet", {"__init__.py": GREETER_INIT, "greeter.py": tool})
    report = check_package(root)
    assert found(report) == {("error", "lev/zz/greet/greeter.py",
                              line_of(root / "lev/zz/greet/greeter.py", "echo"),
                              "name-undefined")}
    assert [mode["name"] for mode in report.manifest["exports"][0]["modes"]] == ["greet", "plain"]


def test_an_empty_image_is_an_error(tmp_path):
    # Seen in a published package: Cr("", entry=entry()) imports, then no run can start.
    root = demo_package(tmp_path, **{"demo.py": TOOL.replace('Cr("localhost/lev-demo:latest"',
                                                             'Cr(""')})
    report = check_package(root, run_import=False)
    assert found(report) == {("error", "lev/zz/demo/demo.py",
                              line_of(root / "lev/zz/demo/demo.py", 'Cr(""'), "image-empty")}


def test_a_pdm_workspaces_own_dependencies_are_importable(tmp_path):
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    root = write_package(tmp_path, "zz.greet", {
        "__init__.py": GREETER_INIT.replace("from . import greeter",
                                            "from . import greeter\n    import pdm_installed_dep"),
        "greeter.py": GREETER,
        f"/__pypackages__/{version}/lib/pdm_installed_dep.py": "VALUE = 1\n"})
    report = check_package(root)
    assert report.problems == [] and report.manifest is not None


def test_lev_given_by_keyword_and_params_in_lev(tmp_path):
    init = GREETER_INIT.replace('annot.meta([greeter], desc="greetings", tags=["pkg"])',
                                'annot.meta(exports=[greeter],\n'
                                '                     params=[annot.Param("x", "y")])')
    root = write_package(tmp_path, "zz.greet", {"__init__.py": init, "greeter.py": GREETER})
    report = check_package(root)
    assert found(report) == {("warning", "lev/zz/greet/__init__.py",
                              line_of(root / "lev/zz/greet/__init__.py", "params="),
                              "lev-params")}
    assert report.manifest["exports"][0]["name"] == "greeter"
