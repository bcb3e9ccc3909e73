"""Packages and call forms of the original platform's docs (repository talentsec/lev_doc: the
API pages 15.*, API.levrt.Task and the tutorials 5-12) on levrt, unchanged.

The fixture packages under fixtures_packages/compat.* are written the way those tutorials
write theirs. Each is imported and checked (lev check shows only its true findings), its
manifest is compared, and each of its exports runs through `lev run` on the process
executor and on the docker executor (image localhost/lev-base:bookworm).
"""

import asyncio
import json
import os
import pathlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import levrt
from levrt import Concurrent, Cr, TaskFailed, annot, ctx, remote
from levrt.annot.cats import Attck, BlackArch, parse_category
from levrt.packages import check_package

FIXTURES = Path(__file__).resolve().parent / "fixtures_packages"
IMAGE = "localhost/lev-base:bookworm"
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


# -- the fixture packages: import, check, manifest -------------------------------------------

# package -> (the problems lev check must find, exactly; the exports as
# (kind, name, desc, cats, tags, modes or None for a workflow))
PACKAGES = {
    "compat.hello_world": (set(), [
        ("tool", "hello", "hello world", {"attck": ["TA0043"]}, ["hello", "demo"],
         ["hello", "hi", "exp"]),
        ("workflow", "hello_world", "hello world", {}, [], None),
    ]),
    # Its __lev__ leaves the annotated port_os out: the one true finding.
    "compat.probe": ({("warning", "lev/compat/probe/probe.py", 47, "mode-unlisted")}, [
        ("tool", "probe", "probe-update", {"attck": ["TA0043"], "blackarch": ["scanner"]}, [],
         ["raw", "alive"]),
    ]),
    "compat.flows": (set(), [
        ("workflow", "concurrent", "check many domains, two at a time",
         {"attck": ["TA0043"], "blackarch": ["recon"]}, [], None),
        ("workflow", "background", "a check in the background", {}, [], None),
        ("workflow", "extra_namespace2", "the namespace demo1 inside demo2", {}, [], None),
    ]),
    "compat.alive": (set(), [
        ("tool", "alive", "ICMP-like look at whether a host is alive",
         {"attck": ["TA0007"], "blackarch": ["recon"]}, ["alive"], ["alive"]),
    ]),
}


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_fixture_package_checks_and_shows_the_right_manifest(package):
    problems, exports = PACKAGES[package]
    report = check_package(FIXTURES / package)
    assert {(p.level, p.file, p.line, p.code) for p in report.problems} == problems
    assert report.manifest is not None
    shown = [(entry["kind"], entry["name"], entry["desc"], entry["cats"], entry["tags"],
              [mode["name"] for mode in entry["modes"]] if "modes" in entry else None)
             for entry in report.manifest["exports"]]
    assert shown == exports


def test_package_level_keywords_describe_the_package():
    manifest = check_package(FIXTURES / "compat.flows").manifest
    assert (manifest["desc"], manifest["tags"], manifest["cats"]) == (
        "workflow practices", ["workflow"], {})
    # A tool module's docstring header still reaches its tool.
    (tool, _) = check_package(FIXTURES / "compat.hello_world").manifest["exports"]
    assert (tool["type"], tool["version"], tool["homepage"]) == ("IMAGE-BASED", "v1.0.0", None)


# -- the fixture packages run through lev run, on both executors ------------------------------


@pytest.fixture(scope="module")
def engine() -> bool:
    """Whether a Docker API answers, asked once for the module (a busy engine may miss one
    ping; the runs themselves then say so)."""
    from levrt.executors.docker import engine_url

    return engine_url() is not None


@pytest.fixture(params=["process", "docker"])
def executor(request):
    if request.param == "docker" and not request.getfixturevalue("engine"):
        if IN_CI:
            pytest.fail("CI is set but no Docker API answers (scripts/engine.sh starts one)")
        pytest.skip("no Docker API answers here")
    return request.param


def lev_run(tmp_path: Path, executor: str, target: str, *options: str) -> dict:
    """``lev run FIXTURE_TARGET OPTIONS --json`` in a process of its own; its JSON bundle."""
    env = {**os.environ, "LEV_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "levrt", "run", f"{FIXTURES}/{target}", *options,
         "--executor", executor, "--json"],
        capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    bundle = json.loads(done.stdout)
    assert bundle["job"]["status"] == "done"
    assert {run["status"] for run in bundle["runs"]} <= {"done"}
    return bundle


RUNS = [
    ("compat.hello_world:hello_world", ["--length", "5"],
     ["Hello, world!", "Hi, world!", "2.71828"]),
    ("compat.hello_world:hello.hi", ["--who", "you"], {"msg": "Hi, you!"}),
    ("compat.hello_world:hello.hello", [], {"msg": "Hello, world!"}),
    ("compat.probe:probe.raw", ["--argv=-sn,127.0.0.1"], {"result": "-sn 127.0.0.1\n"}),
    ("compat.probe:probe.alive", ["--ip", "127.0.0.1"],
     {"target": "127.0.0.1", "alive": ["127.0.0.1"]}),
    ("compat.flows:concurrent", ["--domains", "a.example,b.example,c.example"],
     [{"domain": f"{name}.example", "record": f"v=DMARC1; p=none; rua=mailto:dmarc@{name}.example"}
      for name in "abc"]),
    ("compat.flows:background", ["--domain", "x.example"],
     {"domain": "x.example", "started": True, "finished": True}),
    ("compat.flows:extra_namespace2", ["--ip", "x.example"],
     "compat/checker.dmarc@1.0|demo1|demo2"),
    ("compat.alive:alive", ["--ip", "127.0.0.1"], {"target": "127.0.0.1", "alive": ["127.0.0.1"]}),
]


@pytest.mark.parametrize(("target", "options", "result"), RUNS,
                         ids=[target for target, _, _ in RUNS])
def test_fixture_exports_run_through_lev_run(tmp_path, executor, target, options, result):
    bundle = lev_run(tmp_path, executor, target, *options)
    assert bundle["job"]["executor"] == executor
    assert bundle["result"] == result
    if target.endswith(":hello_world"):
        # The "lev" logger of a workflow writes to the job's log.
        texts = [line["text"] for line in bundle["log"]]
        assert any("[lev app - hello world] Hi, world!" in text for text in texts)


def test_main_py_runs_as_the_local_testing_chapter_does(tmp_path):
    # `python main.py` in the package folder: levrt.run(main()) of a workflow imported from
    # lev.<user>.<tool>, with the "lev" logger at DEBUG.
    env = {**os.environ, "LEV_HOME": str(tmp_path / "home"), "LEV_EXECUTOR": "process",
           "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "main.py"], cwd=FIXTURES / "compat.hello_world",
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "['Hello, world!', 'Hi, world!', '2.718281828']" in done.stdout
    assert "DEBUG:lev:[lev app - hello world] debug test" in done.stderr


# -- call forms of the API pages, through the process executor --------------------------------


def run(coro):
    return levrt.run(coro, echo=False)


def greeting(who: str) -> Cr:
    @remote
    def entry():
        ctx.set(msg=f"hey {who}")
    # levrt.Cr(image, schema, host, entry, ...): the construction method's order.
    return Cr(IMAGE, "compat/greet@1.0", False, entry)


def slow() -> Cr:
    @remote
    def entry():
        import time
        ctx.set(started=True)
        time.sleep(60)
    return Cr(IMAGE, entry=entry())


def files_tool(config: bytes, blob: pathlib.Path) -> Cr:
    @levrt.remote
    def entry():
        with open("/data/blob") as f:
            ctx.set(config=open("/etc/config.json").read(), blob=f.read())
    return Cr(IMAGE, entry=entry, files={"/etc/config.json": config, "/data/blob": blob})


def hello() -> Cr:
    return Cr("alpine:latest", cmd=["echo", "hello,world"])


def test_cr_document_and_task_forms():
    async def main():
        doc = await greeting("you")
        assert {"msg": "hey you"} == await doc.get()
        assert await doc == {"msg": "hey you"}  # await t_result, as the workflow chapter does
        assert doc.coll.collection_name == "compat/greet@1.0"
        assert await doc.get(projection={"msg": 1}) == {"msg": "hey you"}
        assert await doc.get(query={"msg": "nope"}) is None

        result = await greeting("again").done()
        assert (await result.get())["msg"] == "hey again"

        task = await greeting("later").start()
        again = await task()  # result = await task(), as the background example writes it
        assert await again.get() == {"msg": "hey later"}

        task = await slow().start()
        for _ in range(200):  # until the entry has stored something
            if [data async for data in levrt.lev.doc.all() if data.get("started")]:
                break
            await asyncio.sleep(0.05)
        await task.signal(signal="SIGTERM")
        try:
            await task.done()
        except TaskFailed as failed:
            # What the entry stored before the signal is kept (docs/sdk.md).
            kept = [data async for data in levrt.lev.doc.all() if data.get("started")]
            return failed.exit_code, kept
        return None

    assert run(main()) == (-signal.SIGTERM, [{"started": True}])


def test_default_signal_is_sigint():
    async def main():
        task = await slow().start()
        await task.signal()
        with pytest.raises(TaskFailed):
            await task
    run(main())


def test_files_and_cmd_forms(tmp_path):
    blob = tmp_path / "local_path"
    blob.write_text("blob text")

    async def main():
        doc = await files_tool(json.dumps({"k": 1}).encode(), pathlib.Path(blob))
        data = await doc.get()
        await hello()  # the hello-world chapter: Cr(image, cmd=[...]); nothing stored
        return data

    assert run(main()) == {"config": '{"k": 1}', "blob": "blob text"}


def test_concurrent_forms():
    async def scan(url: str):
        return (await greeting(url)).coll.name

    async def main():
        tasks = []
        async with Concurrent(limit=5) as c:
            for url in ("a", "b"):
                tasks.append(c.start(scan(url)))
            tasks.append(c.start(coroutine=greeting("c")))
        names = [await tasks[0], await tasks[1]]
        return names, await (await tasks[2])

    assert run(main()) == (["compat/greet@1.0"] * 2, {"msg": "hey c"})


def test_namespace_forms():
    async def main():
        names = []
        with ctx / "example":
            names.append((await greeting("e")).coll.name)
        with ctx / "httpbin" / "org":
            names.append((await greeting("h")).coll.name)
        return names

    # Decision (docs/sdk.md): the collection is "<schema>|inner|outer", as the original was
    # observed to store it; the API page's comments show another order.
    assert run(main()) == ["compat/greet@1.0|example", "compat/greet@1.0|org|httpbin"]


def test_annot_forms():
    @annot.meta(desc="Detect live hosts on LAN",
                params=[annot.Param("ip", "target ip to scan", holder="192.168.1.1/24")],
                cats={Attck: [Attck.Reconnaissance], BlackArch: [BlackArch.Scanner]},
                tags=["nmap", "scan"])
    def alive(ip: str) -> Cr:
        return Cr(IMAGE)

    @annot.meta(desc="raw", params=[annot.ARGV], cats=[Attck.Reconnaissance])
    def raw(argv: list[str]) -> Cr:
        return Cr(IMAGE)

    manifest = annot.meta([raw, alive], "nmap-update", None,
                          {Attck: [Attck.Reconnaissance], BlackArch: [BlackArch.Scanner]},
                          ["nmap"])
    assert (manifest["desc"], manifest["tags"]) == ("nmap-update", ["nmap"])
    assert manifest["cats"] == {"attck": ["TA0043"], "blackarch": ["scanner"]}
    assert [entry["name"] for entry in manifest["exports"]] == ["raw", "alive"]
    assert annot.ARGV.name == "argv"


# The appendix of the API pages (15.7): every category it lists exists, under the member
# name the tutorials spell (first letters capitalized) and under its slug or tactic id.
BLACKARCH_SLUGS = (
    "webapp fuzzer scanner proxy windows dos disassembler cracker voip exploitation recon spoof "
    "forensic crypto backdoor networking misc defensive wireless automation sniffer binary "
    "packer reversing mobile malware code-audit social honeypot hardware fingerprint decompiler "
    "config debugger firmware bluetooth database automobile nfc tunnel drone unpacker radio "
    "keylogger stego anti-forensic ids gpu").split()
ATTCK = {
    "Reconnaissance": "TA0043", "ResourceDevelopment": "TA0042", "InitialAccess": "TA0001",
    "Execution": "TA0002", "Persistence": "TA0003", "PrivilegeEscalation": "TA0004",
    "DefenseEvasion": "TA0005", "CredentialAccess": "TA0006", "Discovery": "TA0007",
    "LateralMovement": "TA0008", "Collection": "TA0009", "CommandandControl": "TA0011",
    "Exfiltration": "TA0010", "Impact": "TA0040", "NetworkEffects": "TA0038",
    "RemoteServiceEffects": "TA0039",
}


def test_every_category_of_the_appendix_exists():
    for slug in BLACKARCH_SLUGS:
        member = BlackArch(slug)
        assert member.name == "".join(part.capitalize() for part in slug.split("-"))
        assert parse_category(slug) is member
    for name, tactic in ATTCK.items():
        assert getattr(Attck, name).value == tactic
        assert parse_category(tactic) is getattr(Attck, name)


def test_cr_takes_every_argument_by_position_in_the_documented_order():
    redis = Cr("redis:latest", cmd=["--port", "9001"], ports=[9001])
    cr = Cr(IMAGE, "ts/issues@1.0", True, None, ["--option", "-f"], ["PATH=/bin"],
            {"/etc/config.json": b"{}"}, {"proxy": "other-host"}, [8000], {"redis": redis})
    assert (cr.schema, cr.host, cr.cmd, cr.env) == (
        "ts/issues@1.0", True, ["--option", "-f"], {"PATH": "/bin"})
    assert (cr.files, cr.links, cr.ports, cr.services) == (
        {"/etc/config.json": b"{}"}, {"proxy": "other-host"}, [8000], {"redis": redis})


def test_an_uncalled_entry_that_needs_arguments_is_refused_at_once():
    @remote
    def entry(argv):
        ctx.set(argv=argv)

    with pytest.raises(TypeError, match=r"entry: entry takes arguments; pass its call"):
        Cr(IMAGE, entry=entry)


def test_services_written_as_a_set_get_a_clear_error():
    # The Cr page's table writes {"redis", Cr("redis:latest")}: a set, not a dict.
    with pytest.raises(TypeError, match=r"services: expected \{name: Cr\}"):
        Cr(IMAGE, services={"redis", Cr("redis:latest")})


# -- forms the CLI and the image builder take -------------------------------------------


@pytest.mark.parametrize("recipe", ["dockerfile", "Containerfile"])
def test_image_build_takes_other_recipe_names(tmp_path, recipe):
    from levrt.executors import ExecutorError
    from levrt.executors.docker import build_image, engine_url

    if engine_url() is None:
        if IN_CI:
            pytest.fail("CI is set but no Docker API answers")
        pytest.skip("no Docker API answers here")
    root = tmp_path / "compat.recipe"
    (root / "lev/compat/recipe").mkdir(parents=True)
    (root / "lev/compat/recipe/__init__.py").write_text("")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "lev.compat.recipe"\nversion = "0.1.0"\n')
    (root / recipe).write_text(f"FROM {IMAGE}\nLABEL lev.compat.test=1\n")
    tag = f"localhost/lev-compat-test:{recipe.lower()}"
    try:
        build_image(root, [tag], progress=lambda line: None)
    except ExecutorError as exc:
        pytest.fail(str(exc))
    finally:
        import docker

        client = docker.DockerClient(base_url=engine_url())
        try:
            client.images.remove(tag)
        except docker.errors.ImageNotFound:
            pass
        client.close()


def test_the_tutorials_name_parameter_is_settable(tmp_path):
    package = tmp_path / "compat.named"
    (package / "lev/compat/named").mkdir(parents=True)
    (package / "pyproject.toml").write_text(
        '[project]\nname = "lev.compat.named"\nversion = "0.1.0"\n')
    (package / "lev/compat/named/__init__.py").write_text(
        "from levrt import annot\nfrom . import hello\n__lev__ = annot.meta([hello])\n")
    (package / "lev/compat/named/hello.py").write_text(
        "import levrt\nfrom levrt import Cr, ctx, annot\n\n"
        '@annot.meta(desc="Hello", params=[annot.Param("name", "person name")])\n'
        'def hello(name: str = "world") -> Cr:\n'
        "    @levrt.remote\n    def entry():\n"
        '        ctx.set(msg=f"Hello, {name}!")\n'
        f'    return Cr("{IMAGE}", entry=entry())\n\n'
        "__lev__ = annot.meta([hello], desc=\"hello world\")\n")
    env = {**os.environ, "LEV_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "levrt", "run", f"{package}:hello.hello", "--name", "you",
         "--executor", "process", "--json"],
        capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["result"] == {"msg": "Hello, you!"}
