"""docker-compose.yml, proven as far as a machine without a Docker engine allows.

The compose model is `docker-compose config` (when Debian's docker-compose is installed), else the file
with compose's interpolation applied here. Each service then runs as compose would run it: its command
(or the Dockerfile's CMD) as its `user:`, with the Dockerfile's ENV and its own environment, its bind
mounts at their host paths (a file mount is a hard link: only the file's own permissions count, as in a
container), the image's files where the image has them, and the broker with the shipped mosquitto.conf
on the published port. The data dir is made as a user would make it: `homesec broker init --compose`
run as that uid, and its printed lines put into .env.

Not proven here (docs/deploy.md): the image build, named volumes' initialisation, the compose network
(a service name is 127.0.0.1 here and a container port is its published port), restart policies.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from homesec.broker import MosquittoProcess, dynsec_plugin, free_port
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
COMPOSE_UID = 10001  # the host user who owns the data dir, when the tests run as root
# Runs a venv's console script with any interpreter of the same Python version.
LAUNCH = (
    "import runpy, site, sys; site.addsitedir(sys.argv[1]); sys.argv = sys.argv[2:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")

pytestmark = pytest.mark.integration


# ----------------------------------------------------------------------------------- the compose model


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}` and `$$`, everywhere."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3)
        unset = name not in env or (op is not None and op.startswith(":") and env[name] == "")
        if op is not None and op.endswith("?") and unset:
            raise ValueError(f"compose refuses to start: {name}: {arg}")
        if op is not None and op.endswith("-") and unset:
            return arg
        return env.get(name, "")

    return _VAR.sub(one, value)


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def compose_model(env_file: Path) -> dict[str, Any]:
    """`docker-compose config` with this .env, or the same resolution done here; either way only the
    services that would run (Debian's docker-compose 1.29 lists every service, whatever its profiles)."""
    env = read_env_file(env_file)
    if shutil.which("docker-compose"):
        out = subprocess.run(
            ["docker-compose", "--env-file", str(env_file), "-f", str(REPO / "docker-compose.yml"), "config"],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
            env={"PATH": os.environ["PATH"]},
        ).stdout
        model: dict[str, Any] = yaml.safe_load(out)
    else:
        raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())  # `<<` merges as compose does
        model = dict(interpolate({k: v for k, v in raw.items() if not k.startswith("x-")}, env))
    active = set(filter(None, env.get("COMPOSE_PROFILES", "").split(",")))
    model["services"] = {  # a service with profiles runs only when one of them is active
        name: s
        for name, s in model["services"].items()
        if not s.get("profiles") or active & set(s["profiles"])
    }
    return model


@dataclass
class Mount:
    source: str  # a host path, or a named volume's name
    target: str
    named: bool


def mounts(service: dict[str, Any]) -> list[Mount]:
    found = []
    for v in service.get("volumes", []):
        if isinstance(v, dict):
            source, target, named = v["source"], v["target"], v["type"] == "volume"
        else:
            source, target = v.split(":")[:2]
            named = not source.startswith(("/", ".", "~"))
        if not named:
            source = str((REPO / source).resolve())  # compose resolves relative to the compose file
        found.append(Mount(source, target, named))
    return found


def published(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port of each `ports:` entry."""
    ports = {}
    for p in service.get("ports", []):
        if isinstance(p, dict):
            ports[int(p["target"])] = int(p["published"])
        else:
            parts = str(p).split("/")[0].split(":")
            ports[int(parts[-1])] = int(parts[-2])
    return ports


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


@dataclass
class Image:
    env: dict[str, str] = field(default_factory=dict)
    user: str = "root"
    workdir: str = "/"
    cmd: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)


def dockerfile() -> Image:
    text = re.sub(r"\\\n(\s*#.*\n)*", " ", (REPO / "Dockerfile").read_text())  # join continued lines
    image = Image()
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "ENV":
            image.env.update(item.split("=", 1) for item in shlex.split(rest))  # type: ignore[misc]
        elif word == "USER":
            image.user = rest.strip()
        elif word == "WORKDIR":
            image.workdir = rest.strip()
        elif word == "CMD":
            image.cmd = json.loads(rest)
        elif word == "RUN":
            image.runs.append(rest)
    return image


# ------------------------------------------------------------------------------------ running it here


class Host:
    """Where compose's paths land on this machine: bind mounts at their sources, file mounts as hard
    links, named volumes and the image's files under `root`."""

    def __init__(self, root: Path, model: dict[str, Any]) -> None:
        self.root = root
        self.model = model
        self.ports = {c: h for s in model["services"].values() for c, h in published(s).items()}
        self.services = set(model["services"])

    def path(self, service: str, container_path: str) -> Path:
        inside = [
            m
            for m in mounts(self.model["services"][service])
            if container_path == m.target or container_path.startswith(m.target.rstrip("/") + "/")
        ]
        best = max(inside, key=lambda m: len(m.target), default=None)  # the innermost mount wins
        if best is None:
            return self.root / "image" / container_path.lstrip("/")
        rest = container_path[len(best.target) :].lstrip("/")
        if best.named:
            return self.root / "volumes" / best.source / rest
        source = Path(best.source)
        if source.is_file():
            link = self.root / "mounts" / service / best.target.lstrip("/")
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                os.link(source, link)
            return link
        return source / rest

    def value(self, service: str, key: str, value: str) -> str:
        """An environment value as this machine needs it: paths, service names and container ports."""
        if value.startswith("/"):
            return str(self.path(service, value))
        if value in self.services:
            return "127.0.0.1"
        if key.endswith("PORT") and value.isdigit() and int(value) in self.ports:
            return str(self.ports[int(value)])
        return value


def user_ids(spec: str) -> tuple[int, int]:
    user, _, group = spec.partition(":")
    return int(user), int(group or user)


def run_as(uid: int, gid: int) -> dict[str, Any]:
    """Popen arguments that run a child as `uid:gid` (only root may switch; otherwise it must be us)."""
    if os.geteuid() == 0:
        return {"user": uid, "group": gid, "extra_groups": []}
    assert (uid, gid) == (os.getuid(), os.getgid()), "not root: the compose user must be this user"
    return {}


@cache
def interpreter(uid: int, gid: int) -> str:
    """A Python that `uid` may run: this one, else (this one sits in a private home, as pyenv's under
    /root does) the system's Python of the same version, given this venv's packages. The image has its
    own Python in /usr/local either way."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for exe in (sys.executable, f"/usr/bin/python{version}"):
        try:
            subprocess.run([exe, "-c", "pass"], check=True, capture_output=True, **run_as(uid, gid))
        except (OSError, subprocess.CalledProcessError):
            continue
        return exe
    raise AssertionError(f"no Python {version} that uid {uid} may run")


def program(uid: int, gid: int, name: str, *args: str) -> list[str]:
    """The command line that runs this venv's console script `name` as `uid`."""
    site_packages, bin_dir = install_for(uid, gid)
    return [interpreter(uid, gid), "-c", LAUNCH, site_packages, str(bin_dir / name), *args]


NODE_PACKAGES = ("homesec", "camera_node", "recognizer_node", "notifier_node", "homeassistant_node")


@cache
def install_for(uid: int, gid: int) -> tuple[str, Path]:
    """This venv's packages and scripts where `uid` can read them: in place, or, when the checkout sits
    in a directory only its owner may enter (a clone in `mktemp -d`), a hard-linked copy of them and of
    the project's packages (the image has its own copy too), removed when the tests end."""
    site_packages = sysconfig.get_paths()["purelib"]
    probe = [
        interpreter(uid, gid),
        "-c",
        "import os, sys; os.listdir(sys.argv[1]); open(sys.argv[2]).close()",
    ]
    try:
        subprocess.run([*probe, site_packages, str(VENV_BIN / "homesec")], check=True, capture_output=True,
                       **run_as(uid, gid))  # fmt: skip
        return site_packages, VENV_BIN
    except subprocess.CalledProcessError:
        pass
    root = Path(tempfile.mkdtemp(prefix="homesec-compose-install-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    root.chmod(0o755)
    site = root / "site"
    _linked_copy(Path(site_packages), site)
    for package in NODE_PACKAGES:  # found on the path before the editable install's finder
        _linked_copy(REPO / package, site / package)
    shutil.copytree(VENV_BIN, root / "bin", symlinks=True)
    return str(site), root / "bin"


def _linked_copy(source: Path, target: Path) -> None:
    """`cp -al`, or a plain copy across file systems."""
    try:
        shutil.copytree(source, target, copy_function=os.link, symlinks=True)
    except OSError:
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, symlinks=True)


def start_broker(host: Host, logs: Path) -> MosquittoProcess:
    """The mosquitto service: the shipped config, its mounts' paths, the image's plugin, its port."""
    service = host.model["services"]["mosquitto"]
    conf = host.path("mosquitto", "/mosquitto/config/mosquitto.conf")
    lines = []
    for line in conf.read_text().splitlines():
        key, _, arg = line.partition(" ")
        if key == "plugin":  # inside the image: the eclipse image's Mosquitto is this machine's
            arg = str(dynsec_plugin())
        elif key == "listener" and arg.split()[0].isdigit():
            arg = str(published(service)[int(arg.split()[0])])
        elif arg.startswith("/"):
            arg = str(host.path("mosquitto", arg)) + ("/" if arg.endswith("/") else "")
        lines.append(f"{key} {arg}".rstrip() if arg else line)
    data = host.path("mosquitto", "/mosquitto/data")
    data.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:  # started as root, mosquitto drops to its user, as in the image
        shutil.chown(data, "mosquitto", "mosquitto")
    local_conf = host.root / "mosquitto.conf"
    local_conf.write_text("\n".join(lines) + "\n")
    broker = MosquittoProcess(local_conf, published(service)[1883], logs / "mosquitto.log")
    broker.start()
    return broker


def start_node(host: Host, image: Image, name: str, logs: Path) -> subprocess.Popen[bytes]:
    service = host.model["services"][name]
    env = {**image.env, **environment(service)}
    env = {k: host.value(name, k, v) for k, v in env.items()}
    env.update(PATH=f"{VENV_BIN}:/usr/bin:/bin", HOME="/")  # docker's HOME for a uid without an account
    command = service.get("command") or image.cmd
    command = shlex.split(command) if isinstance(command, str) else command
    uid, gid = user_ids(service.get("user", image.user))
    workdir = host.path(name, service.get("working_dir", image.workdir))
    with open(logs / f"{name}.log", "wb") as log:
        return subprocess.Popen(
            program(uid, gid, *command),
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            **run_as(uid, gid),
        )


def build_image(root: Path, image: Image, models: Path) -> None:
    """The image's models as `homesec models install` leaves them (owner-only, umask 077), then the
    Dockerfile's own chmod of them."""
    target = root / "image" / image.env["HOMESEC_RECOGNIZER__MODELS_DIR"].lstrip("/")
    shutil.copytree(models, target)
    os.chmod(target, 0o700)
    for f in target.iterdir():
        os.chmod(f, 0o600)
    chmod = next(re.search(r"chmod -R a\+rX (\S+)", r) for r in image.runs if "chmod -R a+rX" in r)
    assert chmod is not None, "the Dockerfile must open the models to the run-time uid"
    subprocess.run(["chmod", "-R", "a+rX", str(root / "image" / chmod.group(1).lstrip("/"))], check=True)


def broker_init(home: Path, uid: int, gid: int, port: int) -> dict[str, str]:
    """`homesec broker init --compose` as the user who owns the data dir: the .env lines it prints."""
    out = subprocess.run(
        program(uid, gid, "homesec", "broker", "init", "--compose", "--port", str(port)),
        cwd=home,
        env={"PATH": os.environ["PATH"], "HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
        **run_as(uid, gid),
    ).stdout
    return dict(re.findall(r"^  (HOMESEC_[A-Z_]+)=(\S+)$", out, re.MULTILINE))


@dataclass
class Stack:
    home: Path
    uid: int
    gid: int
    env: dict[str, str]
    host: Host
    nodes: dict[str, subprocess.Popen[bytes]]
    logs: Path

    def homesec(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The `homesec` command line on the host, as the data dir's owner, in its directory."""
        return subprocess.run(
            program(self.uid, self.gid, "homesec", *args),
            cwd=self.home,
            env={"PATH": os.environ["PATH"], "HOME": str(self.home)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            **run_as(self.uid, self.gid),
        )

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def stack(models_dir: Path) -> Iterator[Stack]:
    # A user's shell and `docker build` run with umask 022 (homesec's own CLI, run in-process by other
    # tests, leaves 077 behind): the image's folders are then open to every uid, as in the image.
    umask = os.umask(0o022)
    root = Path(tempfile.mkdtemp(prefix="homesec-compose-"))
    os.chmod(root, 0o755)  # a foreign uid must reach its home below, as on a real host
    processes: list[subprocess.Popen[bytes]] = []
    broker: MosquittoProcess | None = None
    try:
        uid, gid = (COMPOSE_UID, COMPOSE_UID) if os.geteuid() == 0 else (os.getuid(), os.getgid())
        home, logs = root / "home", root / "logs"
        home.mkdir()
        os.chown(home, uid, gid)
        logs.mkdir()
        printed = broker_init(home, uid, gid, free_port())
        env = {**read_env_file(REPO / ".env.example"), **printed, "HOMESEC_HTTP_PORT": str(free_port())}
        env["COMPOSE_PROFILES"] = "homeassistant"  # every service, the optional ones too
        (root / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        model = compose_model(root / ".env")
        host, image = Host(root, model), dockerfile()
        build_image(root, image, models_dir)
        broker = start_broker(host, logs)
        nodes = {n: start_node(host, image, n, logs) for n, s in model["services"].items() if "build" in s}
        processes += nodes.values()
        yield Stack(home, uid, gid, env, host, nodes, logs)
    finally:
        for proc in processes:
            proc.terminate()
        for proc in processes:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if broker is not None:
            broker.stop()
        shutil.rmtree(root, ignore_errors=True)
        os.umask(umask)


# ----------------------------------------------------------------------------------------------- tests


def test_the_compose_file_has_the_broker_and_the_server_nodes_only(tmp_path: Path) -> None:
    """The camera of a Pi runs on the Pi (docs/raspberry-pi.md): no `pi` profile, no camera service.
    The Home Assistant bridge is there for a household that asks for it (COMPOSE_PROFILES)."""
    model = compose_model(REPO / ".env.example")
    assert set(model["services"]) == {"mosquitto", "recognizer", "notifier"}
    assert not any("profiles" in s for s in model["services"].values())
    env_file = tmp_path / ".env"
    env_file.write_text((REPO / ".env.example").read_text() + "COMPOSE_PROFILES=homeassistant\n")
    services = compose_model(env_file)["services"]
    assert set(services) == {"mosquitto", "recognizer", "notifier", "homeassistant"}
    assert services["homeassistant"]["command"] == ["homesec-homeassistant"]
    assert published(model["services"]["mosquitto"]) == {1883: 1884}, "1883 is this host's own Mosquitto"
    assert "secrets" not in model, "no secret file is required: the nodes read theirs in the data dir"


def test_compose_refuses_to_start_without_the_data_dirs_owner(tmp_path: Path) -> None:
    env = read_env_file(REPO / ".env.example")
    del env["HOMESEC_UID"]
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    with pytest.raises((ValueError, subprocess.CalledProcessError)):
        compose_model(env_file)


def test_every_node_comes_up_online_as_the_data_dirs_owner(stack: Stack) -> None:
    def online() -> bool:
        for name, proc in stack.nodes.items():
            assert proc.poll() is None, f"{name} exited {proc.returncode}:\n{stack.log(name)}"
        done = stack.homesec("status", "--json")
        nodes = json.loads(done.stdout or "{}").get("nodes", {})
        expected = ("recognizer/main", "notifier/main", "habridge/main")
        return all(nodes.get(node) == "online" for node in expected)

    wait_until(online, timeout=60, interval=0.5)
    for name in stack.nodes:
        assert "Permission denied" not in stack.log(name)
    # Everything the nodes wrote stays the owner's, private, and reachable from the host.
    data = stack.home / ".homesec-data"
    for path in [data, *data.rglob("*")]:
        st = path.lstat()
        assert st.st_uid == stack.uid, f"{path} belongs to {st.st_uid}"
        if path.is_file() and path.name != "dynamic-security.json":
            assert st.st_mode & 0o077 == 0, f"{path} is readable by others"


def test_the_telegram_token_is_optional_and_the_outbox_is_on_the_host(stack: Stack) -> None:
    assert stack.env["HOMESEC_TELEGRAM_TOKEN_FILE"] == ""
    wait_until(lambda: "outbox" in stack.log("notifier") or stack.nodes["notifier"].poll() is not None)
    assert stack.nodes["notifier"].poll() is None, stack.log("notifier")
    assert f"alerts go to {stack.home / '.homesec-data' / 'outbox'}" in stack.log("notifier")


def test_the_http_api_answers_on_its_published_port(stack: Stack) -> None:
    import httpx

    url = f"http://127.0.0.1:{stack.env['HOMESEC_HTTP_PORT']}/api/health"

    def ready() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout=60, interval=0.2)


def test_home_assistant_reads_the_bridges_discovery_on_the_published_port(stack: Stack) -> None:
    """Home Assistant, on another machine, logs in to the broker's published port as `homeassistant`
    with the password `broker init` wrote (docs/home-assistant.md) and finds the bridge's entities."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    password = (stack.home / ".homesec-data" / "secrets" / "mqtt-homeassistant.password").read_text().strip()
    topics: list[str] = []
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set("homeassistant", password)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("homeassistant/+/homesec/+/config", qos=1)
    client.on_message = lambda c, u, msg: topics.append(msg.topic)
    client.connect("127.0.0.1", int(stack.env["HOMESEC_BROKER_PORT"]), keepalive=10)
    client.loop_start()
    try:
        wait_until(
            lambda: any(t.endswith("/switch/homesec/system_armed/config") for t in topics),
            timeout=60,
            interval=0.2,
        )
    finally:
        client.disconnect()
        client.loop_stop()
