"""The Mosquitto side: one account per node instance, its access rules, the broker config, and a broker
process for local runs.

Access is enforced by Mosquitto's dynamic security plugin (shipped with Mosquitto 2.0), not by an
`acl_file`: only the plugin checks SUBSCRIBE (an `acl_file` grants every subscription and drops the
messages later, so a foreign member of the recognizers' shared group silently takes its round-robin
share) and only it binds a user to a client id. The rules are built from the contract's topic builders,
per user; the committed `mosquitto/acl` is a readable render of them for the default config (a test
compares it with a fresh one).
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from homesec.config import Config, node_client_id, node_user
from homesec.contract import Role, Topics, node_name
from homesec.files import write_atomic

log = logging.getLogger(__name__)

# Snapshots of a 12 MP camera at high JPEG quality stay under this; base64 training photos too.
MAX_PACKET_SIZE = 16 * 1024 * 1024
MAX_QUEUED_MESSAGES = 1000
# Persistence: saved after this many changes to the broker's store (see docs/reliability.md for the
# measured cost). The camera keeps each snapshot until its result is seen, so what a broker crash
# loses between two saves is published again: persistence is the second line of defence.
AUTOSAVE_CHANGES = 20
GROUP_FILE = "recognizer-group"
DYNSEC_FILE = "dynamic-security.json"
CONTAINER_PLUGIN = "/usr/lib/mosquitto_dynamic_security.so"

Action = Literal["publish", "subscribe", "share"]
Rule = tuple[bool, Action, str]  # allowed?, what, topic filter


@dataclass(frozen=True)
class Account:
    """One MQTT user. Node users are bound to one client id (derived from their password, so no other
    credential can guess it); the people's users (admin: the command line, viewer: debugging) are not,
    so two commands can run at once."""

    user: str
    role: Role
    instance: str = ""
    bind: bool = True
    rules: tuple[Rule, ...] = ()
    """Instead of the role's rules (test harnesses use this for an observer that sees everything)."""
    photos: bool = True
    """Home Assistant's account only: it may read the snapshots and alerts (`[homeassistant] photos`)."""

    @property
    def bound(self) -> bool:
        return self.bind and self.role not in (Role.ADMIN, Role.VIEWER, Role.HOMEASSISTANT)


def deployment_accounts(
    cameras: Iterable[str], recognizers: Iterable[str], *, ha_photos: bool = True
) -> list[Account]:
    accounts = [Account(node_user(node_name(Role.CAMERA, c)), Role.CAMERA, c) for c in sorted(set(cameras))]
    accounts += [
        Account(node_user(node_name(Role.RECOGNIZER, r)), Role.RECOGNIZER, r)
        for r in sorted(set(recognizers))
    ]
    accounts += [
        Account(node_user(node_name(Role.NOTIFIER, "main")), Role.NOTIFIER, "main"),
        Account(str(Role.ADMIN), Role.ADMIN),
        Account(str(Role.VIEWER), Role.VIEWER),
        # Home Assistant's MQTT integration (it picks its own client id) and the bridge that announces
        # homesec to it (homeassistant_node).
        Account(str(Role.HOMEASSISTANT), Role.HOMEASSISTANT, photos=ha_photos),
        Account(node_user(node_name(Role.HA_BRIDGE, "main")), Role.HA_BRIDGE, "main"),
    ]
    return accounts


def _camera_rules(t: Topics, camera: str) -> list[Rule]:
    own = [t.snapshot(camera), t.motion(camera), t.camera_enabled(camera), t.camera_state(camera)]
    own += [t.available(f"{Role.CAMERA}/{camera}"), t.error(f"{Role.CAMERA}/{camera}")]
    return [
        *[(True, "publish", topic) for topic in own],
        (True, "subscribe", t.camera_cmd_capture(camera).rsplit("/", 1)[0] + "/#"),
        (True, "subscribe", t.result(camera)),  # the end-to-end confirmation of its snapshots
    ]


def _recognizer_rules(t: Topics, instance: str) -> list[Rule]:
    node = f"{Role.RECOGNIZER}/{instance}"  # `+` for a harness account that is every replica
    answers = [t.all_results, t.all_alerts, t.gallery, t.train_result, t.gallery_result, t.search_result]
    return [
        (True, "share", t.shared_snapshots),
        (True, "subscribe", t.all_snapshots),
        *[(True, "publish", topic) for topic in [*answers, t.available(node), t.error(node)]],
        (True, "publish", t.reply_root + "#"),
        (True, "subscribe", t.gallery_cmd.rsplit("/", 1)[0] + "/#"),
        (True, "subscribe", t.train),
        (True, "subscribe", t.train_raw_filter),
        # The HTTP API's state routes (docs/http.md) and the web page: read the house's state, and, for
        # admin tokens only, arm and enable cameras as the `homesec` command line does.
        *[(True, "subscribe", topic) for topic in [t.all_available, t.armed, t.camera_enabled("+")]],
        (True, "subscribe", t.camera_state("+")),  # the web page's Now: is the camera's video coming?
        (True, "publish", t.armed_cmd),
        (True, "publish", t.camera_cmd_enable("+")),
        (True, "publish", t.camera_cmd_capture("+")),  # the web page's capture button
    ]


def _notifier_rules(t: Topics, instance: str) -> list[Rule]:
    node = f"{Role.NOTIFIER}/{instance}"
    commands = [
        t.train,
        t.train_raw_filter,
        t.gallery_cmd.rsplit("/", 1)[0] + "/#",
        t.camera_cmd_capture("+"),
    ]
    # Results (no photo) tell it when a later frame of a visit named the stranger it alerted of.
    reads = [t.all_alerts, t.all_results, t.all_available, t.camera_enabled("+"), t.gallery, t.armed]
    return [
        *[(True, "publish", topic) for topic in [t.armed, t.delivered, t.available(node), t.error(node)]],
        *[(True, "publish", topic) for topic in commands],
        *[(True, "subscribe", topic) for topic in reads],
        (True, "subscribe", t.armed_cmd.rsplit("/", 1)[0] + "/#"),
        (True, "subscribe", t.reply(str(Role.NOTIFIER), "#")),
    ]


def _ha_bridge_rules(t: Topics, instance: str) -> list[Rule]:
    """The bridge reads state and results (no photo) and writes discovery configs and derived state."""
    node = f"{Role.HA_BRIDGE}/{instance}"
    own = [t.ha_all_discovery, t.ha_visit("+"), t.ha_last_person("+"), t.ha_last_seen("+")]
    own += [t.ha_recognizers, t.available(node), t.error(node)]
    # Its own configs (retained) tell it, after a restart, which forgotten person to remove.
    reads = [t.all_available, t.all_results, t.gallery, t.ha_all_discovery, t.ha_status]
    return [
        *[(True, "publish", topic) for topic in own],
        *[(True, "subscribe", topic) for topic in reads],
    ]


def _homeassistant_rules(t: Topics, photos: bool) -> list[Rule]:
    """Home Assistant reads what its entities show, including, unless `[homeassistant] photos` is off, the
    photos of the image entities (it is the household's own screen, as Telegram is the notifier's); it
    writes only the commands its switches and buttons send, and its own birth message."""
    cameras = [t.motion("+"), t.camera_enabled("+"), t.camera_state("+")]
    cameras += [t.snapshot("+"), t.alert("+")] if photos else []
    derived = [t.ha_visit("+"), t.ha_last_person("+"), t.ha_last_seen("+"), t.ha_recognizers]
    reads = [f"{t.discovery_prefix}/#", t.all_available, t.armed, t.gallery, *cameras, *derived]
    commands = [t.armed_cmd, t.camera_cmd_enable("+"), t.camera_cmd_capture("+"), t.ha_status]
    return [
        *[(True, "subscribe", topic) for topic in reads],
        *[(True, "publish", topic) for topic in commands],
    ]


def _no_photos(t: Topics) -> list[Rule]:
    """Snapshots and alerts carry photos of the people at the door: the recognizer reads the first, the
    notifier the second, and nobody else. A photo shown to a camera (`cmd/show`) goes to its camera only."""
    photos = [t.all_snapshots, t.all_alerts, t.camera_cmd_show("+")]
    return [(False, "subscribe", topic) for topic in photos]


def rules_for(account: Account, t: Topics) -> list[Rule]:
    """What `account` may do (a denial takes precedence over a broader allowance)."""
    if account.rules:
        return list(account.rules)
    if account.role == Role.CAMERA:
        return _camera_rules(t, account.instance)
    if account.role == Role.RECOGNIZER:
        return _recognizer_rules(t, account.instance)
    if account.role == Role.NOTIFIER:
        return _notifier_rules(t, account.instance)
    if account.role == Role.HA_BRIDGE:
        return _ha_bridge_rules(t, account.instance)
    if account.role == Role.HOMEASSISTANT:
        return _homeassistant_rules(t, account.photos)
    everything: Rule = (True, "subscribe", f"{t.prefix}/#")
    if account.role == Role.VIEWER:
        return [*_no_photos(t), everything]
    commands = [
        t.train,
        t.train_raw_filter,
        t.gallery_cmd.rsplit("/", 1)[0] + "/#",
        t.camera_cmd_capture("+"),
        t.camera_cmd_show("+"),
    ]
    commands += [t.camera_cmd_enable("+"), t.armed_cmd.rsplit("/", 1)[0] + "/#"]
    return [*_no_photos(t), everything, *[(True, "publish", topic) for topic in commands]]


def _dynsec_acls(rules: list[Rule]) -> list[dict[str, object]]:
    acls: list[dict[str, object]] = []
    for allow, action, topic in rules:
        priority = 0 if allow else 10  # a denial wins over a broader allowance
        if action == "publish":
            kinds = [("publishClientSend", topic)]
        elif action == "share":
            kinds = [("subscribeLiteral", topic), ("publishClientReceive", topic.split("/", 2)[2])]
        else:
            kinds = [("subscribePattern", topic), ("publishClientReceive", topic)]
        acls += [{"acltype": k, "topic": f, "priority": priority, "allow": allow} for k, f in kinds]
    return acls


def _dynsec_client(account: Account, password: str) -> dict[str, object]:
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
    client: dict[str, object] = {
        "username": account.user,
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": 101,
        "roles": [{"rolename": account.user}],
    }
    if account.bound:
        client["clientid"] = node_client_id(account.user, password)
    return client


def render_dynsec(accounts: list[Account], passwords: dict[str, str], topics: Topics) -> str:
    """The plugin's file: each account with its password hash, client id and its own role."""
    body = {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": [_dynsec_client(a, passwords[a.user]) for a in accounts],
        "groups": [],
        "roles": [{"rolename": a.user, "acls": _dynsec_acls(rules_for(a, topics))} for a in accounts],
    }
    return json.dumps(body, indent=1) + "\n"


WHY = {
    Role.CAMERA: "publishes its own snapshots and motion only; reads its own commands and results",
    Role.RECOGNIZER: "the only reader of snapshots (secret shared group); its HTTP API may arm, enable, capture",
    Role.NOTIFIER: "reads alerts and state; the Telegram bot may train, capture, forget",
    Role.ADMIN: "the `homesec` command line: sends commands, reads everything but photos",
    Role.VIEWER: "read-only, for debugging with mosquitto_sub; no photos",
    Role.HOMEASSISTANT: "Home Assistant: reads what its entities show; writes only arm, enable, capture",
    Role.HA_BRIDGE: "announces homesec to Home Assistant: discovery configs and derived state; no photos",
}


def render_acl(prefix: str = "homesec", cameras: Iterable[str] = ("door",)) -> str:
    """A readable listing of every account's rules (for the default config: camera `door`, recognizer
    `main`); the broker enforces them from dynamic-security.json."""
    topics = Topics(prefix, share_group="<secret group>")
    out = [
        "# Generated by `homesec broker render` from homesec/broker.py: edit there, not here.",
        "# For reading only: the broker enforces these rules through its dynamic security plugin, from",
        "# <data_dir>/broker/dynamic-security.json (written by `homesec broker init` and `homesec up`).",
        "# One user per node instance; node users are bound to one client id each. Nothing else is allowed.",
        "",
    ]
    for account in deployment_accounts(cameras, ["main"]):
        out += [f"# {account.role}: {WHY[account.role]}", f"user {account.user}"]
        out += [
            f"{'' if allow else 'deny '}{action} {topic}"
            for allow, action, topic in rules_for(account, topics)
        ]
        out.append("")
    return "\n".join(out)


def render_conf(
    *,
    port: int,
    bind: str,
    dynsec_file: Path | str,
    plugin: Path | str,
    persistence_dir: Path | str,
    log_dest: str = "stderr",
    run_as_root: bool = False,
) -> str:
    lines = [
        "# homesec broker: no anonymous access; per-node users, client ids and rules (dynamic security).",
        "# Generated by `homesec broker render` from homesec/broker.py.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"plugin {plugin}",
        f"plugin_opt_config_file {dynsec_file}",
        "",
        "# Queued QoS 1 messages and persistent sessions survive a broker restart; saved after every",
        f"# {AUTOSAVE_CHANGES} changes (docs/reliability.md: the cost measured, and why not after each one).",
        "persistence true",
        f"persistence_location {str(persistence_dir).rstrip('/')}/",
        "autosave_on_changes true",
        f"autosave_interval {AUTOSAVE_CHANGES}",
        "",
        "# Room for full-resolution snapshots; larger packets are refused and logged.",
        f"max_packet_size {MAX_PACKET_SIZE}",
        "# What a persistent session keeps while its node is away (the rest is dropped and logged).",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        "",
        f"log_dest {log_dest}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
        "",
        f"listener {port} {bind}".rstrip(),
        "",
        "# TLS listener for nodes on other machines (e.g. the camera Pi). Uncomment, point at your",
        "# certificates, and set mqtt.port = 8883 and mqtt.tls.enabled = true on the nodes:",
        "# listener 8883",
        "# cafile /mosquitto/certs/ca.crt",
        "# certfile /mosquitto/certs/server.crt",
        "# keyfile /mosquitto/certs/server.key",
        "# tls_version tlsv1.2",
    ]
    if run_as_root:
        lines.insert(3, "user root")
    return "\n".join(lines) + "\n"


def render_container_conf() -> str:
    """mosquitto.conf as shipped in mosquitto/ for docker-compose: the paths the container sees."""
    return render_conf(
        port=1883,
        bind="",
        dynsec_file=f"/mosquitto/config/{DYNSEC_FILE}",
        plugin=CONTAINER_PLUGIN,
        persistence_dir="/mosquitto/data",
        log_dest="stdout",
    )


def dynsec_plugin() -> Path:
    """The installed Mosquitto's dynamic security plugin (Debian puts it under the multiarch dir)."""
    patterns = ["/usr/lib/*/mosquitto_dynamic_security.so", "/usr/lib/mosquitto_dynamic_security.so"]
    patterns += [
        "/usr/local/lib/mosquitto_dynamic_security.so",
        "/opt/homebrew/lib/mosquitto_dynamic_security.so",
    ]
    for pattern in patterns:
        if found := sorted(glob.glob(pattern)):
            return Path(found[0])
    # No local Mosquitto (a docker set-up runs `broker init` on a host without one): the image's path.
    return Path(CONTAINER_PLUGIN)


def ensure_secret(path: Path) -> str:
    """A random secret kept (mode 600) in `path`, created on first use."""
    if not path.exists():
        write_atomic(path, secrets.token_urlsafe(24).encode() + b"\n")
    return path.read_text().strip()


def ensure_passwords(secrets_dir: Path, users: Iterable[str]) -> dict[str, str]:
    """One random password per user, created once and kept in `secrets_dir`."""
    secrets_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(secrets_dir, 0o700)
    return {user: ensure_secret(secrets_dir / f"mqtt-{user}.password") for user in users}


def known_instances(secrets_dir: Path, role: Role) -> list[str]:
    """Instances of `role` that have a password already: a camera added once keeps its account."""
    head = f"mqtt-{role}-"
    return [p.name[len(head) : -len(".password")] for p in secrets_dir.glob(f"{head}*.password")]


def discovery_prefix(config: Config) -> str:
    """Home Assistant's discovery prefix from the `[homeassistant]` section when the bridge is installed
    (read by name: the core imports no node package), for the homeassistant account's rules."""
    section = getattr(config, "homeassistant", None)
    return str(getattr(section, "discovery_prefix", Topics.discovery_prefix))


def ha_photos(config: Config) -> bool:
    """`[homeassistant] photos`: may Home Assistant's account read the snapshots and alerts (read by name,
    as `discovery_prefix`; on when the bridge is not installed, as the section's default)."""
    return bool(getattr(getattr(config, "homeassistant", None), "photos", True))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@dataclass
class BrokerFiles:
    directory: Path
    conf: Path
    passwords: dict[str, str]
    port: int
    accounts: list[Account]
    group: str


def prepare_local_broker(
    directory: Path,
    port: int,
    *,
    prefix: str = "homesec",
    bind: str = "127.0.0.1",
    cameras: Iterable[str] = ("door",),
    recognizers: Iterable[str] = ("main",),
    extra: Iterable[Account] = (),
    group: str | None = None,
    discovery_prefix: str = Topics.discovery_prefix,
    ha_photos: bool = True,
) -> BrokerFiles:
    """Accounts, group secret and config for a broker run from `directory` (its secrets/ and broker/
    folders). Cameras and recognizers that have a password already keep their accounts."""
    secrets_dir = directory / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True)
    cameras = {*cameras, *known_instances(secrets_dir, Role.CAMERA)}
    recognizers = {*recognizers, *known_instances(secrets_dir, Role.RECOGNIZER)}
    accounts = [*deployment_accounts(cameras, recognizers, ha_photos=ha_photos), *extra]
    passwords = ensure_passwords(secrets_dir, [a.user for a in accounts])
    if group is not None:
        write_atomic(secrets_dir / GROUP_FILE, group.encode() + b"\n")
    group = ensure_secret(secrets_dir / GROUP_FILE)
    broker_dir = directory / "broker"
    (broker_dir / "db").mkdir(parents=True, exist_ok=True)
    dynsec = broker_dir / DYNSEC_FILE
    # Hashes only, in the private data dir; readable so the docker image's broker (uid 1883) loads it.
    topics = Topics(prefix, share_group=group, discovery_prefix=discovery_prefix)
    write_atomic(dynsec, render_dynsec(accounts, passwords, topics).encode(), 0o644)
    conf = broker_dir / "mosquitto.conf"
    body = render_conf(
        port=port,
        bind=bind,
        dynsec_file=dynsec,
        plugin=dynsec_plugin(),
        persistence_dir=broker_dir / "db",
        run_as_root=os.geteuid() == 0,
    )
    write_atomic(conf, body.encode())
    return BrokerFiles(directory, conf, passwords, port, accounts, group)


class MosquittoProcess:
    """A mosquitto child process: start, wait for its port, stop (and wait for it to exit)."""

    def __init__(self, conf: Path, port: int, log_file: Path) -> None:
        self.conf, self.port, self.log_file = conf, port, log_file
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def executable() -> str:
        exe = shutil.which("mosquitto") or next(
            (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
        )
        if exe is None:
            raise FileNotFoundError("mosquitto is not installed (Debian/Ubuntu: apt-get install mosquitto)")
        return exe

    def start(self, timeout: float = 10.0) -> None:
        log_fh = open(self.log_file, "ab")  # noqa: SIM115 - lives as long as the process
        # A session of its own: a Ctrl-C at the terminal reaches its owner only, which stops the broker
        # after the nodes (they say `stopped` on it first).
        self.proc = subprocess.Popen(
            [self.executable(), "-c", str(self.conf)], stdout=log_fh, stderr=log_fh, start_new_session=True
        )
        log_fh.close()  # the child has its own copy
        deadline = time.monotonic() + timeout
        while not port_open("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start on port {self.port}; see {self.log_file}")
            time.sleep(0.05)

    def exit_code(self) -> int | None:
        """None while it runs (or was never started); its exit code once it died."""
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
