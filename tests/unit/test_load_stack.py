"""``load_stack`` on good manifests: every kind, long and short forms, directories, stdin,
``.env``, env files, host paths and digests, stack names, limits, and speed."""

from __future__ import annotations

import hashlib
import io
import os
import pathlib
import time

import pytest

from reconciler import load
from reconciler.load import yamltree
from schemas import manifests

GOOD = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "load" / "good"
ENV = {"PATH": "/usr/bin", "HOME": "/home/tester"}


def sha256(path: pathlib.Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def stack() -> load.DesiredStack:
    return load.load_stack([str(GOOD)], environ=ENV)


def test_the_good_directory(stack: load.DesiredStack) -> None:
    assert stack.name == "good"
    assert stack.files == tuple(
        str(GOOD / name) for name in ("10-infra.yaml", "20-web.yaml", "30-short.yaml")
    )
    assert stack.env_file == str(GOOD / ".env")
    assert stack.warnings == ()
    assert [(o.kind, o.name) for o in stack.objects] == [
        ("Image", "busybox"),
        ("Image", "app"),
        ("Image", "layout"),
        ("Network", "backend"),
        ("Volume", "web-data"),
        ("Volume", "db-data"),
        ("Container", "web"),
        ("Container", "db"),
        ("Container", "worker"),
    ]
    assert [o.name for o in stack.of_kind("Volume")] == ["web-data", "db-data"]
    assert stack.get("Network", "backend") is stack.objects[3]
    assert stack.get("Network", "web") is None
    web = stack.get("Container", "web")
    assert web is not None
    assert str(web.location) == f"{GOOD}/20-web.yaml:2:1"
    assert web.base_dir == str(GOOD)


def test_a_single_string_is_one_path() -> None:
    assert len(load.load_stack(str(GOOD / "10-infra.yaml"), environ=ENV).objects) == 6


def test_images_and_their_files(stack: load.DesiredStack) -> None:
    busybox, app, layout = stack.of_kind("Image")
    assert isinstance(busybox.manifest, manifests.ImageManifest)
    assert busybox.manifest.spec.ref == "docker.io/library/busybox:1.36"
    assert busybox.manifest.spec.pull_policy == "Always"
    assert busybox.manifest.spec.platform == "linux/amd64"
    assert busybox.file_digests == {}
    assert isinstance(app.manifest, manifests.ImageManifest)
    assert app.manifest.spec.import_ is not None
    assert app.manifest.spec.import_.path == str(GOOD / "rootfs.tar")
    assert app.file_digests == {str(GOOD / "rootfs.tar"): sha256(GOOD / "rootfs.tar")}
    # an OCI layout directory: the digest of its index.json
    assert layout.file_digests == {
        str(GOOD / "oci-layout"): sha256(GOOD / "oci-layout" / "index.json")
    }


def test_network_and_volume(stack: load.DesiredStack) -> None:
    network = stack.get("Network", "backend")
    assert network is not None and isinstance(network.manifest, manifests.NetworkManifest)
    assert network.manifest.spec.subnet == "10.89.1.0/24"
    assert network.manifest.metadata.labels == {"tier": "web"}
    volume = stack.get("Volume", "web-data")
    assert volume is not None and isinstance(volume.manifest, manifests.VolumeManifest)
    assert volume.manifest.spec.driver_opts == {"type": "tmpfs", "device": "tmpfs", "o": "size=64m"}
    bare = stack.get("Volume", "db-data")
    assert bare is not None and bare.manifest.spec == manifests.VolumeSpec()


def test_long_form_container(stack: load.DesiredStack) -> None:
    web = stack.get("Container", "web")
    assert web is not None and isinstance(web.manifest, manifests.ContainerManifest)
    spec = web.manifest.spec
    # ${GREETING:-hello} from .env; numbers become strings; $$ is a literal $
    assert spec.env == {"GREETING": "bonjour", "PORT": "8080", "ESCAPED": "$HOME"}
    assert spec.env_from == [str(GOOD / "app.env"), str(GOOD / "override.env")]
    assert web.env_from == {
        "LOG_LEVEL": "info",
        "QUOTED": "a b",
        "SINGLE": "$literal",
        "SHARED": "from-override",  # the later file wins
    }
    assert [(m.type, m.source) for m in spec.mounts] == [
        ("volume", "web-data"),
        ("bind", str(GOOD / "site")),
        ("bind", str(GOOD / "nginx.conf")),
        ("bind", str(GOOD / "made-at-apply")),
        ("tmpfs", None),
    ]
    assert not (GOOD / "made-at-apply").exists()  # the loader creates nothing
    assert web.file_digests == {
        str(GOOD / "app.env"): sha256(GOOD / "app.env"),
        str(GOOD / "override.env"): sha256(GOOD / "override.env"),
        str(GOOD / "nginx.conf"): sha256(GOOD / "nginx.conf"),
    }
    assert [(p.container_port, p.host_port, p.host_ip, p.protocol) for p in spec.ports] == [
        (8080, 8080, None, "tcp"),
        (90, 9090, "127.0.0.1", "udp"),
        (53, 5353, None, "udp"),
    ]
    assert spec.networks[0].aliases == ["www"] and spec.networks[0].ipv4_address == "10.89.1.10"
    assert spec.depends_on[0].condition == "healthy"
    assert spec.healthcheck is not None and spec.healthcheck.start_period == 10.0
    assert spec.resources.memory == 64 * 2**20 and spec.resources.cpus == 0.5
    assert spec.update.strategy == "start-first"
    assert spec.stop_grace_period == 10.0


def test_short_forms(stack: load.DesiredStack) -> None:
    db = stack.get("Container", "db")
    assert db is not None and isinstance(db.manifest, manifests.ContainerManifest)
    spec = db.manifest.spec
    assert spec.command == ["sleep", "infinity"]
    assert spec.env == {"MODE": "primary", "EMPTY": ""}
    assert spec.restart == "no"  # YAML 1.2: not the boolean false
    assert [(p.container_port, p.host_port) for p in spec.ports] == [
        (5432, None),
        (7000, 6000),
        (7001, 6001),
    ]
    assert [(m.type, m.source, m.target, m.read_only) for m in spec.mounts] == [
        ("volume", "db-data", "/var/lib/db", False),
        ("bind", str(GOOD / "site"), "/srv", True),
        ("volume", None, "/scratch", False),
    ]
    assert [n.name for n in spec.networks] == ["backend", "host"]
    assert spec.healthcheck is not None
    assert spec.healthcheck.test == ["CMD-SHELL", "pg_isready || exit 1"]
    assert spec.stop_signal == "SIGQUIT" and spec.stop_grace_period == 90.0
    worker = stack.get("Container", "worker")
    assert worker is not None and isinstance(worker.manifest, manifests.ContainerManifest)
    assert [d.name for d in worker.manifest.spec.depends_on] == ["db", "web"]
    assert worker.manifest.spec.resources.memory == 128 * 10**6


def test_files_and_stdin_mixed(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.yaml").write_text(
        "apiVersion: pyreconcile/v1\nkind: Network\nmetadata: {name: net}\n"
    )
    stdin = io.StringIO(
        "apiVersion: pyreconcile/v1\nkind: Container\nmetadata: {name: c}\n"
        "spec: {image: busybox, networks: [net], mounts: ['./data:/data']}\n"
    )
    (tmp_path / "data").mkdir()
    loaded = load.load_stack(["net.yaml", "-"], environ=ENV, stdin=stdin, stack="mix")
    assert loaded.files == (str(tmp_path / "net.yaml"), "-")
    container = loaded.get("Container", "c")
    assert container is not None
    assert str(container.location) == "-:1:1"
    assert container.base_dir == str(tmp_path)
    assert isinstance(container.manifest, manifests.ContainerManifest)
    assert container.manifest.spec.mounts[0].source == str(tmp_path / "data")


def test_stdin_problems_point_at_dash() -> None:
    with pytest.raises(load.LoadError) as caught:
        load.load_stack(
            ["-"],
            stdin=io.StringIO("apiVersion: pyreconcile/v1\nkind: Volume\nmetadata: {nam: v}\n"),
            stack="s",
        )
    assert [str(p) for p in caught.value.problems] == [
        "-:3:1: metadata.name: missing required field 'name'",
        "-:3:12: metadata.nam: unknown field 'nam', did you mean 'name'?",
    ]


def test_dotenv_beside_the_first_manifest_under_the_environment(tmp_path: pathlib.Path) -> None:
    (tmp_path / ".env").write_text("TAG=from-dotenv\nNAME=from-dotenv\n")
    (tmp_path / "c.yaml").write_text(
        "apiVersion: pyreconcile/v1\nkind: Container\nmetadata: {name: '${NAME}'}\n"
        "spec: {image: 'busybox:${TAG}', env: {X: '${UNSET_VAR}'}}\n"
    )
    loaded = load.load_stack([str(tmp_path / "c.yaml")], environ={"NAME": "from-env"})
    container = loaded.of_kind("Container")[0]
    assert container.name == "from-env"  # the environment wins over .env
    assert isinstance(container.manifest, manifests.ContainerManifest)
    assert container.manifest.spec.image == "busybox:from-dotenv"
    assert [str(w) for w in loaded.warnings] == [
        f"{tmp_path}/c.yaml:4:42: spec.env.X: variable UNSET_VAR is not set: using an empty "
        "string (set it, or write ${UNSET_VAR:-default})"
    ]


def test_a_bad_dotenv_line_is_a_problem(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / ".env").write_text("OK=1\nnot a line\n")
    (tmp_path / "d" / "v.yaml").write_text(
        "apiVersion: pyreconcile/v1\nkind: Volume\nmetadata: {name: v}\n"
    )
    with pytest.raises(load.LoadError) as caught:
        load.load_stack(["d"], environ={})
    assert [str(p) for p in caught.value.problems] == [
        "d/.env:2:1: expected KEY=value, got 'not a line': add '=' and a value"
    ]


@pytest.mark.parametrize(
    ("directory", "expected"),
    [
        ("shop", "shop"),
        ("My_App.v2", "my-app-v2"),
        ("--Weird  Name--", "weird-name"),
        ("x" * 70, "x" * 63),
        ("a" * 62 + "_b", "a" * 62),
    ],
)
def test_stack_named_after_the_directory(
    tmp_path: pathlib.Path, directory: str, expected: str
) -> None:
    where = tmp_path / directory
    where.mkdir()
    (where / "v.yaml").write_text("apiVersion: pyreconcile/v1\nkind: Volume\nmetadata: {name: v}\n")
    assert load.load_stack([str(where / "v.yaml")], environ={}).name == expected
    assert load.load_stack([str(where)], environ={}).name == expected


def test_stack_name_sources_in_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    work = tmp_path / "Work Dir"
    work.mkdir()
    monkeypatch.chdir(work)
    declared = "apiVersion: pyreconcile/v1\nkind: Volume\nmetadata: {name: v, stack: shop}\n"
    plain = "apiVersion: pyreconcile/v1\nkind: Volume\nmetadata: {name: w}\n"
    assert load.load_stack(["-"], stdin=io.StringIO(plain), environ={}).name == "work-dir"
    assert load.load_stack(["-"], stdin=io.StringIO(declared), environ={}).name == "shop"
    loaded = load.load_stack(["-"], stdin=io.StringIO(declared), environ={}, stack="blog")
    assert loaded.name == "blog"
    with pytest.raises(load.LoadError) as caught:
        load.load_stack(["-"], stdin=io.StringIO(plain), environ={}, stack="Bad_Name")
    assert str(caught.value) == (
        "invalid stack name 'Bad_Name': use 1-63 lowercase letters, digits and '-', "
        "starting and ending with a letter or digit"
    )


def test_a_stack_name_cannot_be_derived_from_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    with pytest.raises(load.LoadError) as caught:
        load.load_stack(
            ["-"],
            stdin=io.StringIO("apiVersion: pyreconcile/v1\nkind: Volume\nmetadata: {name: v}\n"),
            environ={},
        )
    assert str(caught.value) == (
        "cannot name the stack after the directory '/': pass --stack NAME or set metadata.stack"
    )


def test_directories_take_yaml_files_only_sorted_once(tmp_path: pathlib.Path) -> None:
    doc = "apiVersion: pyreconcile/v1\nkind: Volume\nmetadata: {{name: {}}}\n"
    for name in ("b.yml", "a.yaml", "c.txt", ".hidden.yaml", "d.yaml~"):
        (tmp_path / name).write_text(doc.format(name.strip(".").split(".")[0]))
    (tmp_path / "sub.yaml").mkdir()
    loaded = load.load_stack([str(tmp_path), str(tmp_path / "a.yaml")], environ={}, stack="s")
    assert [o.name for o in loaded.objects] == ["a", "b"]
    assert loaded.files == (str(tmp_path / "a.yaml"), str(tmp_path / "b.yml"))


def test_input_problems(tmp_path: pathlib.Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(load.LoadError) as caught:
        load.load_stack(
            [str(tmp_path / "empty"), "-", "-", str(tmp_path / "nope.yaml")],
            stdin=io.StringIO(""),
            stack="s",
        )
    assert [str(p) for p in caught.value.problems] == [
        f"directory {tmp_path}/empty has no *.yaml or *.yml file in it",
        "'-' (stdin) is named more than once",
        f"{tmp_path}/nope.yaml: no such file or directory: check the path",
    ]
    with pytest.raises(load.LoadError) as caught:
        load.load_stack([], stack="s")
    assert str(caught.value) == "no manifest given: name a file, a directory or -"


def test_an_empty_file_is_an_empty_stack(tmp_path: pathlib.Path) -> None:
    (tmp_path / "e.yaml").write_text("# nothing yet\n")
    loaded = load.load_stack([str(tmp_path / "e.yaml")], environ={}, stack="s")
    assert loaded.objects == ()


def test_oversized_and_undecodable_files(tmp_path: pathlib.Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * load.MAX_FILE_BYTES + b"\n")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"a: 1\nb: caf\xe9\n")
    with pytest.raises(load.LoadError) as caught:
        load.load_stack([str(big), str(latin)], environ={}, stack="s")
    assert [str(p) for p in caught.value.problems] == [
        f"{big}:1:1: file is larger than 4 MiB: split it into several files",
        f"{latin}:2:7: not UTF-8 text (byte 0xe9): save the file as UTF-8",
    ]
    with pytest.raises(load.LoadError) as caught:
        load.load_stack(["-"], stdin=io.StringIO("x" * (load.MAX_FILE_BYTES + 1)), stack="s")
    assert str(caught.value) == "-:1:1: file is larger than 4 MiB: split it into several files"


def test_too_many_documents(tmp_path: pathlib.Path) -> None:
    doc = "apiVersion: pyreconcile/v1\nkind: Volume\nmetadata: {{name: v{}}}\n"
    (tmp_path / "many.yaml").write_text(
        "---\n".join(doc.format(i) for i in range(load.MAX_DOCUMENTS + 5))
    )
    with pytest.raises(load.LoadError) as caught:
        load.load_stack([str(tmp_path / "many.yaml")], environ={}, stack="s")
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path}/many.yaml:{4 * load.MAX_DOCUMENTS}:1: too many documents: a stack "
        f"holds at most {load.MAX_DOCUMENTS}; split it"
    ]


def test_home_is_expanded_from_the_environment(tmp_path: pathlib.Path) -> None:
    (tmp_path / "conf").write_text("x\n")
    (tmp_path / "c.yaml").write_text(
        "apiVersion: pyreconcile/v1\nkind: Container\nmetadata: {name: c}\n"
        "spec: {image: busybox, mounts: ['~/conf:/conf:ro']}\n"
    )
    loaded = load.load_stack([str(tmp_path / "c.yaml")], environ={"HOME": str(tmp_path)})
    container = loaded.of_kind("Container")[0]
    assert isinstance(container.manifest, manifests.ContainerManifest)
    assert container.manifest.spec.mounts[0].source == str(tmp_path / "conf")
    assert container.file_digests == {str(tmp_path / "conf"): sha256(tmp_path / "conf")}


def test_changing_a_referenced_file_changes_its_digest(tmp_path: pathlib.Path) -> None:
    (tmp_path / "app.env").write_text("A=1\n")
    (tmp_path / "c.yaml").write_text(
        "apiVersion: pyreconcile/v1\nkind: Container\nmetadata: {name: c}\n"
        "spec: {image: busybox, envFrom: [app.env]}\n"
    )
    before = load.load_stack([str(tmp_path)], environ={}).objects[0]
    (tmp_path / "app.env").write_text("A=2\n")
    after = load.load_stack([str(tmp_path)], environ={}).objects[0]
    key = str(tmp_path / "app.env")
    assert before.env_from == {"A": "1"} and after.env_from == {"A": "2"}
    assert before.file_digests[key] != after.file_digests[key]


def fifty_containers(directory: pathlib.Path) -> pathlib.Path:
    docs = [
        "apiVersion: pyreconcile/v1\nkind: Network\nmetadata: {name: backend}\n"
        "spec: {subnet: 10.89.1.0/24}\n",
        "apiVersion: pyreconcile/v1\nkind: Volume\nmetadata: {name: data}\n",
    ]
    for i in range(50):
        docs.append(
            f"""apiVersion: pyreconcile/v1
kind: Container
metadata:
  name: web{i}
  labels: {{tier: web}}
spec:
  image: busybox:1.36
  command: [httpd, -f, -p, "8080", -h, /www]
  env:
    GREETING: hello
    INDEX: "{i}"
    URL: ${{BASE_URL:-http://localhost}}
  workingDir: /www
  restart: always
  ports: ["{8000 + i}:8080"]
  mounts:
    - {{source: data, target: /www}}
    - {{type: tmpfs, target: /tmp, size: 64Mi}}
  networks: [backend]
  dependsOn: [{"web" + str(i - 1) if i else "web49"}]
  healthcheck: {{test: [CMD-SHELL, "wget -qO- localhost:8080"], interval: 5s, retries: 3}}
  resources: {{memory: 64Mi, cpus: 0.5, pids: 100}}
"""
        )
    # one cycle through all fifty: the slowest path of the checks, then drop it
    path = directory / "stack.yaml"
    path.write_text("---\n".join(docs).replace("dependsOn: [web49]", "dependsOn: []"))
    return path


@pytest.mark.parametrize("parser", ["c", "pure"])
def test_fifty_containers_load_fast(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, parser: str
) -> None:
    """The brief's budget is "well under 100 ms" for 50 containers; measured on the
    2-core development VM: about 15 ms with the C parser and 105 ms with the pure-Python
    one (which spends 90 ms in ruamel's scanner). The bounds here are loose, for
    loaded CI machines; the numbers are printed with ``-s``."""
    if parser == "c" and not yamltree.HAVE_C_PARSER:
        pytest.skip("the C YAML parser (ruamel.yaml.clibz) is not installed")
    monkeypatch.setattr(yamltree, "USE_C_PARSER", parser == "c")
    path = fifty_containers(tmp_path)
    load.load_stack([str(path)], environ={})  # warm up imports and pydantic
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        loaded = load.load_stack([str(path)], environ={})
        timings.append(time.perf_counter() - started)
    assert len(loaded.of_kind("Container")) == 50
    best = min(timings)
    print(f"\nload_stack, 50 containers, {parser} parser: {best * 1000:.1f} ms")
    assert best < (0.1 if parser == "c" else 0.5)


def test_paths_are_relative_to_each_manifest(tmp_path: pathlib.Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "conf").write_text("two\n")
    (tmp_path / "one" / "v.yaml").write_text(
        "apiVersion: pyreconcile/v1\nkind: Volume\nmetadata: {name: v}\n"
    )
    (tmp_path / "two" / "c.yaml").write_text(
        "apiVersion: pyreconcile/v1\nkind: Container\nmetadata: {name: c}\n"
        "spec: {image: busybox, mounts: ['./conf:/conf', 'v:/v']}\n"
    )
    loaded = load.load_stack(
        [str(tmp_path / "one" / "v.yaml"), str(tmp_path / "two" / "c.yaml")], environ={}
    )
    assert loaded.name == "one"
    container = loaded.get("Container", "c")
    assert container is not None and container.base_dir == str(tmp_path / "two")
    assert os.path.exists(container.manifest.spec.mounts[0].source or "")  # type: ignore[union-attr]


def test_large_file_digests_are_remembered_until_the_file_changes(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.load import inputs

    big = tmp_path / "image.tar"
    big.write_bytes(b"a" * (2**20 + 1))
    first = inputs.file_digest(str(big))
    assert first == sha256(big)
    reads: list[str] = []
    real = inputs._sha256

    def counting(path: str) -> str:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(inputs, "_sha256", counting)
    assert inputs.file_digest(str(big)) == first
    assert reads == []
    big.write_bytes(b"b" * (2**20 + 2))
    assert inputs.file_digest(str(big)) == sha256(big) != first
    assert reads == [str(big)]
