"""`homesec up`: the whole system on one machine, for trying it out and for development.

Starts a mosquitto of its own with the project's config (passwords created in the data dir on the first
run; a free port, since a system broker often holds 1883), the recognizer, the notifier and a camera
(a replay of the demo photos unless configured otherwise), each as its own process, enrolls the demo
owner, prints what happens on the bus, and stops everything cleanly on Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from homesec.broker import (
    MosquittoProcess,
    discovery_prefix,
    free_port,
    ha_photos,
    port_open,
    prepare_local_broker,
)
from homesec.bus import Message, MqttBus
from homesec.cliutil import EXIT_USAGE, PORT_FILE, CliError, forget_broker_port, record_broker_port, say
from homesec.config import Config, load_config, mqtt_for_role, node_sections, secret_keys
from homesec.contract import META_PROPERTY, Role, Topics, split_node
from homesec.files import private_dir, private_umask
from homesec.plugins import NodePlugin, node_plugins, plugin_for

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "demo"
PREFERRED_PORT = 18830


def pick_port(wanted: int | None, preferred: int = PREFERRED_PORT) -> tuple[int, str | None]:
    """The broker's port, and a note when it is not the one the user would expect. A port asked for with
    --port that is taken is an error: the user meant that one."""
    if wanted:
        if port_open("127.0.0.1", wanted):
            raise CliError(
                f"port {wanted} is taken (another broker, or a `homesec up` still running?): choose a "
                f"free one with --port, or leave --port out to use {preferred} or else any free port",
                EXIT_USAGE,
            )
        return wanted, None
    if not port_open("127.0.0.1", preferred):
        return preferred, None
    port = free_port()
    return port, f"port {preferred} is taken, so this run's broker listens on port {port}"


def _short(face: dict[str, object]) -> str:
    label = face.get("name") or face.get("label") or "unknown"  # the display name, in any script
    sim = face.get("similarity")
    why = f" ({face['rejected']})" if face.get("rejected") else ""
    return f"{label} {sim:.2f}{why}" if isinstance(sim, float) else f"{label}{why}"


def describe(topics: Topics, msg: Message) -> str | None:
    """One human line for a bus message, or None for the ones not worth printing. (The monitor is the
    viewer: it sees no photos, so snapshots and alerts show through their results and deliveries.)"""
    if msg.retain:
        return None  # state left from an earlier run, replayed at subscription: not news
    parts = topics.levels(msg.topic)
    try:
        body = json.loads(msg.user_properties.get(META_PROPERTY) or msg.payload or b"null")
    except (ValueError, UnicodeDecodeError):
        body = None
    if parts[-1] == "available":
        return f"[{'/'.join(parts[:-1])}] {msg.payload.decode(errors='replace')}"
    if not isinstance(body, dict):
        return None
    if parts[-1] == "error":
        return f"[{body.get('node')}] ERROR {body.get('error')} on {body.get('topic')}: {body.get('detail')}"
    if parts[0] == "camera" and parts[-1] == "motion":
        return f"[camera {parts[1]}] motion {body['state']} ({body['trigger']})"
    if parts[0] == "camera" and parts[-1] == "state":  # its video source: online, offline, error
        why = f": {body['reason']}" if body.get("reason") else ""
        return f"[camera {parts[1]}] source {body['state']}{why}"
    if parts[:2] == ["recognizer", "result"]:
        faces = ", ".join(_short(f) for f in body["faces"]) or "no face"
        total = body.get("timings_ms", {}).get("total")
        took = f" in {total:.0f} ms" if isinstance(total, float | int) else ""
        return f"[recognizer] {parts[2]} #{body['seq'] + 1}: {faces} -> {body['verdict'].upper()}{took}"
    if msg.topic == topics.train_result:
        who = repr(body["label"])
        if body.get("name") and body["name"] != body["label"]:  # as `homesec train` says it
            who = f"{body['name']!r} (label {who})"
        ok = f"enrolled {who}" if body["ok"] else f"refused {who}: {body['reason']}"
        return f"[recognizer] training: {ok}"
    if msg.topic == topics.delivered:
        where = f"Telegram chat {body['chat_id']}" if body["channel"] == "telegram" else "the outbox"
        event = str(body["event_id"])  # a Frigate event's id whole: its first 8 characters are all 'frigate-'
        short = event if event.startswith("frigate-") else event[:8]
        return f"[notifier] alert {short} from {body['camera']} sent to {where}"
    if msg.topic == topics.armed:
        return f"[notifier] {'armed' if body['armed'] else 'disarmed'}"
    return None


class Supervisor:
    """Runs the node processes, restarts one that dies (with a pause), stops them all on request."""

    def __init__(self, envs: dict[str, dict[str, str]], log_dir: Path, config_path: Path | None) -> None:
        self.envs, self.log_dir, self.config_path = envs, log_dir, config_path
        self.programs: dict[str, str] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def spawn(self, name: str, program: str) -> None:
        cmd = [sys.executable, "-m", program]
        if self.config_path:
            cmd += ["--config", str(self.config_path)]
        with open(self.log_dir / f"{name}.log", "ab") as log:  # the child keeps its own copy
            self.programs[name] = program
            self.procs[name] = subprocess.Popen(
                cmd, env=self.envs[name], stdout=log, stderr=log, cwd=os.getcwd(), start_new_session=True
            )

    def watch(self) -> None:
        for name, proc in list(self.procs.items()):
            code = proc.poll()
            if code is not None and not self.stopping:
                say(f"[up] {name} exited with code {code}; see {self.log_dir / (name + '.log')}")
                if code == 2:  # bad config or missing models: restarting will not help
                    raise SystemExit(f"{name} cannot start; fix the problem above and run again")
                time.sleep(2)
                self.spawn(name, self.programs[name])

    def stop(self) -> None:
        self.stopping = True
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def watch_broker(broker: MosquittoProcess) -> None:
    """Like a node: a broker that died is reported and started again, on the same port (the nodes
    reconnect by themselves; what it had not saved yet, the cameras publish again)."""
    code = broker.exit_code()
    if code is None:
        return
    say(f"[up] mosquitto exited with code {code}; restarting it on port {broker.port}")
    try:
        broker.start()
    except RuntimeError as exc:  # e.g. something else took the port meanwhile: try again next round
        say(f"[up] {exc}")
        return
    say(f"[up] mosquitto is back on 127.0.0.1:{broker.port}")


def _secret_variables() -> set[str]:
    """Environment variables that carry a secret (and their `_FILE` forms)."""
    names = set(secret_keys().values())
    return names | {f"{name}_FILE" for name in names}


def node_envs(local: Config, demo_dir: Path | None, environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Each node's environment, by section: the local broker and data dir, no secret but its own (each
    node finds its MQTT password in the data dir), and what its plugin adds (the camera: the demo scene
    unless it has a source of its own)."""
    base = {k: v for k, v in environ.items() if k not in _secret_variables()}
    base.update(
        HOMESEC_MQTT__HOST=local.mqtt.host,
        HOMESEC_MQTT__PORT=str(local.mqtt.port),
        HOMESEC_DATA_DIR=str(local.data_dir),
        PYTHONUNBUFFERED="1",
    )
    envs = {}
    for plugin in node_plugins():
        own = {*plugin.secrets.values()}
        own |= {f"{name}_FILE" for name in own}
        env = {**base, **{k: v for k, v in environ.items() if k in own}}
        if plugin.up_env is not None:
            plugin.up_env(local.section(plugin.settings), demo_dir, env)
        envs[plugin.section] = env
    return envs


def _notes(config: Config, data_dir: Path) -> list[str]:
    notes = []
    for plugin in node_plugins():
        if plugin.up_note is not None and (note := plugin.up_note(config.section(plugin.settings), data_dir)):
            notes.append(note)
    return notes


def _node_name(plugin: NodePlugin[Any], config: Config) -> str:
    return plugin.node_name(config.section(plugin.settings))


def _enroll_demo_owner(local: Config) -> None:
    from homesec.contract import GalleryResult, ListLabels, TrainRequest, TrainResult
    from homesec.remote import RemoteClient

    photos = sorted((DEMO / "enroll").glob("*.jpg"))
    recognizer = plugin_for(Role.RECOGNIZER)
    if not photos or recognizer is None:
        return
    with RemoteClient(local) as remote:
        remote.wait_online(_node_name(recognizer, local), timeout=120)
        cmd = ListLabels()
        labels = remote.request(remote.topics.gallery_cmd, cmd, GalleryResult, cmd.request_id, 60).labels
        if labels:
            say(f"[up] enrolled already: {', '.join(sorted(labels))}")
            return
        for photo in photos:
            req = TrainRequest(
                label="owner", image_b64=base64.b64encode(photo.read_bytes()).decode(), source="demo"
            )
            result = remote.request(remote.topics.train, req, TrainResult, req.request_id, 60)
            if not result.ok:
                say(f"[up] the demo owner photo {photo} was refused: {result.reason}")


def _show(line: str | None) -> None:
    if line:
        say(time.strftime("%H:%M:%S"), line)


def _instances(config: Config, role: Role) -> list[str]:
    """Every configured instance of `role` (all the `[[cameras]]`), each with its broker account."""
    plugin = plugin_for(role)
    if plugin is None:
        return []
    return [split_node(plugin.node_name(s))[1] for s in node_sections(config, plugin)]


def run_up(args: argparse.Namespace) -> int:
    private_umask()
    config = load_config(args.config)
    data_dir = config.data_dir.resolve()
    private_dir(data_dir)
    port, moved = pick_port(args.port)
    files = prepare_local_broker(
        data_dir,
        port,
        prefix=config.mqtt.prefix,
        cameras=_instances(config, Role.CAMERA),
        recognizers=_instances(config, Role.RECOGNIZER),
        discovery_prefix=discovery_prefix(config),
        ha_photos=ha_photos(config),
    )
    # The configuration every node and helper client of this run uses: this broker, this data dir.
    local = config.model_copy(
        update={
            "data_dir": data_dir,
            "mqtt": config.mqtt.model_copy(update={"host": "127.0.0.1", "port": port}),
        }
    )
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    # Before anything starts, so nothing is left behind. The children run in sessions of their own (a
    # Ctrl-C or a closed terminal reaches `up` only), so they stop in order: the nodes, then the broker.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    broker = MosquittoProcess(files.conf, port, log_dir / "mosquitto.log")
    sup = Supervisor(node_envs(local, args.demo_dir, os.environ), log_dir, args.config)
    viewer: MqttBus | None = None
    try:
        _start_broker(broker, data_dir)
        if moved:
            say(f"[up] {moved}")
        say(f"[up] mosquitto on 127.0.0.1:{port} (config {files.conf}); node logs in {log_dir}")
        viewer = _start_monitor(local)
        # Consumers first: a node's first messages then land in subscriptions that already exist.
        for plugin in sorted(node_plugins(), key=lambda p: p.stage, reverse=True):
            sup.spawn(plugin.section, plugin.program)
        for note in _notes(config, data_dir):
            say(f"[up] {note}")
        say(f"[up] watch the bus on port {port}: {watch_recipe(local)}")
        say(
            f"[up] `homesec status` and the other commands find this broker (port {port}) through "
            f"{data_dir / PORT_FILE} while this runs; Ctrl-C stops everything"
        )
        if not args.no_enroll:
            threading.Thread(target=_enroll_quietly, args=(local,), daemon=True).start()
        while not stop.wait(1):
            watch_broker(broker)
            sup.watch()
    finally:
        say("[up] stopping")
        # The nodes first, while the broker still runs: each says `stopped` before it goes.
        sup.stop()
        if viewer is not None:
            viewer.stop()
        broker.stop()
        forget_broker_port(data_dir, os.getpid())
    return 0


def _start_broker(broker: MosquittoProcess, data_dir: Path) -> None:
    try:
        broker.start()
    except FileNotFoundError as exc:  # no mosquitto installed
        raise CliError(str(exc)) from None
    except RuntimeError as exc:  # e.g. another process took the port since it was chosen
        raise CliError(f"{exc}; run `homesec up` again (or give a free --port)") from None
    record_broker_port(data_dir, broker.port, owner=os.getpid())


def _start_monitor(local: Config) -> MqttBus:
    """The viewer that prints one line per bus message worth seeing."""
    viewer = MqttBus(mqtt_for_role(local, Role.VIEWER), node="up/viewer", persistent=False, announce=False)
    topics = viewer.topics
    viewer.subscribe(f"{topics.prefix}/#", lambda m: _show(describe(topics, m)))
    viewer.start()
    return viewer


def watch_recipe(local: Config) -> str:
    """The `mosquitto_sub` line that shows this broker's traffic as the viewer, without the JPEG bytes
    of the image topics the viewer may read (`-T` leaves them out)."""
    t = Topics(local.mqtt.prefix)
    password = local.data_dir / "secrets" / f"mqtt-{Role.VIEWER}.password"
    images = " ".join(f"-T '{f}'" for f in (t.train_raw_filter, t.search_cmd))
    return (
        f'mosquitto_sub -V mqttv5 -p {local.mqtt.port} -u viewer -P "$(cat {password})" '
        f"-t '{t.prefix}/#' {images} -v"
    )


def _enroll_quietly(local: Config) -> None:
    try:
        _enroll_demo_owner(local)
    except Exception as exc:  # the demo goes on without an owner; say why
        say(f"[up] could not enroll the demo owner: {exc}")
