"""`homesec`: the command line. Local commands (broker files, config; the nodes add theirs, such as `models`
and `faces`) and remote ones over MQTT.

Remote commands (train, labels, forget, rename, merge, not, status, arm, disarm, capture) connect as the `admin`
MQTT user, so the broker's ACLs apply to them as to any node.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from homesec.broker import render_acl, render_container_conf
from homesec.cliutil import EXIT_FAILED, EXIT_NO_ANSWER, EXIT_OK, EXIT_USAGE, CliError, cli_config, fail
from homesec.config import Config, ConfigError
from homesec.contract import (
    ArmCommand,
    ArmedState,
    CaptureCommand,
    ContractError,
    DeleteLabel,
    GalleryCommand,
    GalleryResult,
    GallerySummary,
    ListLabels,
    MergeLabels,
    NotLabel,
    RenameLabel,
    TrainRequest,
    TrainResult,
    check_label,
    parse,
    split_node,
)
from homesec.plugins import node_plugins

if TYPE_CHECKING:
    from homesec.remote import RemoteClient

log = logging.getLogger("homesec")


def _remote(args: argparse.Namespace) -> RemoteClient:
    from homesec.remote import RemoteClient

    return RemoteClient(cli_config(args))


# ------------------------------------------------------------------------------------------ broker


def _instances(config: Config, section: str, given: list[str] | None) -> list[str]:
    """The configured instance of a node section (its `id` or `instance`) and those given on the line."""
    plugin = next((p for p in node_plugins() if p.section == section), None)
    found = [split_node(plugin.node_name(config.section(plugin.settings)))[1]] if plugin else []
    return [*found, *(given or [])]


def cmd_broker_init(args: argparse.Namespace) -> int:
    from homesec.broker import prepare_local_broker
    from homesec.files import private_dir

    config = cli_config(args)
    private_dir(config.data_dir)
    files = prepare_local_broker(
        config.data_dir,
        args.port or config.mqtt.port,
        prefix=config.mqtt.prefix,
        cameras=_instances(config, "camera", args.camera),
        recognizers=_instances(config, "recognizer", args.recognizer),
    )
    users = ", ".join(a.user for a in files.accounts)
    print(f"accounts: {users}")
    print(f"passwords: {config.data_dir / 'secrets'} (one file per user, mode 600; and the recognizer group)")
    print(f"broker config: {files.conf}")
    print(f"run it:  mosquitto -c {files.conf}")
    return EXIT_OK


def cmd_broker_render(args: argparse.Namespace) -> int:
    """The files shipped in mosquitto/ (for docker-compose): config paths as the container sees them."""
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "acl").write_text(render_acl(args.prefix))
    (out / "mosquitto.conf").write_text(render_container_conf())
    print(f"wrote {out / 'acl'} (for reading) and {out / 'mosquitto.conf'}")
    return EXIT_OK


# -------------------------------------------------------------------------------- remote commands


def _print_train(path: str, result: TrainResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"path": path, **result.model_dump(mode="json")}))
    elif result.ok:
        print(f"{path}: enrolled as {result.label!r} (enrollment {result.enrollment_id})")
    else:
        hint = (
            " (--force)"
            if result.looks_like
            else " (--largest)"
            if "ask for the largest" in (result.reason or "")
            else ""
        )
        print(f"{path}: refused: {result.reason}{hint}")


def cmd_train(args: argparse.Namespace) -> int:
    label = check_label(args.label)
    failed = 0
    with _remote(args) as remote:
        for image in args.images:
            path = Path(image)
            try:
                data = path.read_bytes()
            except OSError as exc:
                print(f"{image}: cannot read: {exc.strerror}", file=sys.stderr)
                failed += 1
                continue
            req = TrainRequest(
                label=label,
                image_b64=base64.b64encode(data).decode(),
                largest=args.largest,
                force=args.force,
                source="cli",
            )
            result = remote.request(remote.topics.train, req, TrainResult, req.request_id, args.timeout)
            _print_train(image, result, args.json)
            failed += not result.ok
    return EXIT_FAILED if failed else EXIT_OK


def _gallery(args: argparse.Namespace, cmd: GalleryCommand) -> GalleryResult:
    with _remote(args) as remote:
        return remote.request(remote.topics.gallery_cmd, cmd, GalleryResult, cmd.request_id, args.timeout)


def cmd_labels(args: argparse.Namespace) -> int:
    result = _gallery(args, ListLabels())
    if args.json:
        print(json.dumps(result.labels))
    elif not result.labels:
        print("no one is enrolled yet: `homesec train NAME photo.jpg`")
    else:
        for label, count in sorted(result.labels.items()):
            print(f"{label}\t{count} photo{'s' if count != 1 else ''}")
        for label, count in sorted(result.negatives.items()):
            print(f"not {label}\t{count} face{'s' if count != 1 else ''} marked as not them")
        for c in result.conflicts:  # one person under two names is ambiguous, so unknown, at every sighting
            print(
                f"conflict: {c.label} and {c.other} look alike ({c.similarity:.2f}); "
                f"if they are one person: homesec merge {c.label!r} {c.other!r}"
            )
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_merge(args: argparse.Namespace) -> int:
    result = _gallery(args, MergeLabels(label=check_label(args.label), into=check_label(args.into)))
    if args.json:
        print(result.model_dump_json())
    else:
        print(f"merged {args.label!r} into {args.into!r}" if result.ok else f"refused: {result.reason}")
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_not(args: argparse.Namespace) -> int:
    label = check_label(args.label)
    if args.photo is not None:
        try:
            image = base64.b64encode(Path(args.photo).read_bytes()).decode()
        except OSError as exc:
            raise CliError(f"{args.photo}: cannot read: {exc.strerror}") from None
        cmd = NotLabel(label=label, image_b64=image)
    elif args.event is not None:
        cmd = NotLabel(label=label, event_id=args.event, seq=args.seq, face=args.face)
    else:
        raise CliError("say which face: --event EVENT_ID [--seq N] [--face I], or --photo PHOTO", EXIT_USAGE)
    result = _gallery(args, cmd)
    if args.json:
        print(result.model_dump_json())
    elif result.ok:
        print(f"noted: that face is not {label!r}; it will not be named {label!r} again")
    else:
        print(f"refused: {result.reason}")
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_forget(args: argparse.Namespace) -> int:
    result = _gallery(args, DeleteLabel(label=check_label(args.label)))
    photos = f"{result.removed} photo{'s' if result.removed != 1 else ''}"
    print(f"forgot {args.label!r} ({photos})" if result.ok else f"refused: {result.reason}")
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_rename(args: argparse.Namespace) -> int:
    result = _gallery(args, RenameLabel(label=check_label(args.old), new_label=check_label(args.new)))
    print(f"renamed {args.old!r} to {args.new!r}" if result.ok else f"refused: {result.reason}")
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    with _remote(args) as remote:
        t = remote.topics
        nodes = {t.node_from_available(m.topic): m.payload.decode() for m in remote.retained(t.all_available)}
        gallery = remote.retained(t.gallery, settle=0.1)
        armed = remote.retained(t.armed, settle=0.1)
    status: dict[str, object] = {"nodes": nodes}
    if gallery:
        status["gallery"] = parse(GallerySummary, gallery[-1].payload).labels
    if armed:
        status["armed"] = parse(ArmedState, armed[-1].payload).armed
    extra = _plugin_status(cli_config(args))
    status.update(extra)
    if args.json:
        print(json.dumps(status))
        return EXIT_OK
    for node, state in sorted(nodes.items()):
        print(f"{node:<24} {state}")
    if not nodes:
        print("no node has ever connected to this broker")
    if "armed" in status:
        print(f"armed: {'yes' if status['armed'] else 'no'}")
    if "gallery" in status:
        print(f"enrolled: {', '.join(sorted(status['gallery'])) or 'nobody'}")  # type: ignore[call-overload]
    for section, facts in extra.items():
        for name, value in facts.items():
            print(f"{section} {name}: {value}")
    return EXIT_OK


def _plugin_status(config: Config) -> dict[str, dict[str, str]]:
    """What the nodes' plugins add beyond MQTT (the recognizer: its HTTP API), by section."""
    found = {}
    for plugin in node_plugins():
        if plugin.status is None:
            continue
        if facts := plugin.status(config.section(plugin.settings), config.data_dir):
            found[plugin.section] = facts
    return found


def _send(args: argparse.Namespace, topic_of: Callable[..., str], payload: object) -> int:
    with _remote(args) as remote:
        topic = topic_of(remote.topics)
        if not remote.bus.publish_confirmed(topic, payload):  # type: ignore[arg-type]
            raise CliError(f"the broker refused {topic}")
    print(f"sent to {topic}")
    return EXIT_OK


def cmd_arm(args: argparse.Namespace) -> int:
    return _send(args, lambda t: t.armed_cmd, ArmCommand(armed=args.command == "arm", by="cli"))


def cmd_capture(args: argparse.Namespace) -> int:
    return _send(args, lambda t: t.camera_cmd_capture(args.camera), CaptureCommand())


# ------------------------------------------------------------------------------------------- config


def cmd_config_check(args: argparse.Namespace) -> int:
    config = cli_config(args)
    if args.show:
        print(json.dumps(config.model_dump(mode="json"), indent=2))
    else:
        print("configuration is valid")
    return EXIT_OK


def cmd_config_render(args: argparse.Namespace) -> int:
    from homesec.config_doc import render_example, render_table

    print(render_example() if args.cfg == "example" else render_table(), end="")
    return EXIT_OK


def cmd_up(args: argparse.Namespace) -> int:
    from homesec.up import run_up

    return run_up(args)


# ------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="homesec", description="homesec: edge home security over MQTT")
    parser.add_argument("--config", type=Path, help="TOML config (default: $HOMESEC_CONFIG, else defaults)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run broker + all nodes locally (demo camera unless configured)")
    up.add_argument("--port", type=int, help="broker port (default: a free one, 1883 being often taken)")
    up.add_argument("--demo-dir", type=Path, help="replay these images as the camera")
    up.add_argument("--no-enroll", action="store_true", help="do not enroll the demo owner")
    up.set_defaults(func=cmd_up)

    broker = sub.add_parser("broker", help="Mosquitto files").add_subparsers(dest="broker_cmd", required=True)
    init = broker.add_parser(
        "init", help="create the accounts (one per node) and a broker config in the data dir"
    )
    init.add_argument("--port", type=int)
    init.add_argument("--camera", action="append", metavar="ID", help="an account for this camera too")
    init.add_argument("--recognizer", action="append", metavar="ID", help="an account for this replica too")
    init.set_defaults(func=cmd_broker_init)
    render = broker.add_parser("render", help="write the shipped mosquitto/ files (for docker-compose)")
    render.add_argument("--out", type=Path, default=Path("mosquitto"))
    render.add_argument("--prefix", default="homesec")
    render.set_defaults(func=cmd_broker_render)

    for plugin in node_plugins():
        if plugin.add_commands is not None:
            plugin.add_commands(sub)

    def remote(name: str, help_: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=func)
        return p

    train = remote("train", "enroll LABEL from photos (through the running recognizer)", cmd_train)
    train.add_argument("label")
    train.add_argument("images", nargs="+", metavar="IMAGE")
    train.add_argument("--largest", action="store_true", help="several faces: enroll the largest")
    train.add_argument(
        "--force", action="store_true", help="enroll even when the face already looks like someone else"
    )
    remote("labels", "list enrolled people (and the ones that look alike)", cmd_labels)
    forget = remote("forget", "delete a person and all their photos", cmd_forget)
    forget.add_argument("label")
    rename = remote("rename", "rename a person", cmd_rename)
    rename.add_argument("old")
    rename.add_argument("new")
    merge = remote("merge", "join LABEL into INTO: one person enrolled under two names", cmd_merge)
    merge.add_argument("label")
    merge.add_argument("into")
    not_ = remote("not", "a face wrongly named LABEL: never name it LABEL again", cmd_not)
    not_.add_argument("label")
    not_.add_argument("--event", metavar="EVENT_ID", help="the event the face was named in (the alert's)")
    not_.add_argument("--seq", type=int, default=0, help="the snapshot of the event (default 0)")
    not_.add_argument("--face", type=int, default=0, help="the face's index in the result (default 0)")
    not_.add_argument("--photo", metavar="PHOTO", help="or: a photo of the person who is not LABEL")
    remote("status", "nodes online, armed state, enrolled people", cmd_status)
    remote("arm", "send alerts", cmd_arm)
    remote("disarm", "stop sending alerts", cmd_arm)
    capture = remote("capture", "take a snapshot burst now", cmd_capture)
    capture.add_argument("camera", nargs="?", default="door")

    cfg = sub.add_parser("config", help="validate the configuration").add_subparsers(
        dest="cfg", required=True
    )
    check = cfg.add_parser("check", help="validate and report the first bad key")
    check.add_argument("--show", action="store_true", help="print the effective configuration")
    check.set_defaults(func=cmd_config_check)
    cfg.add_parser("example", help="print a commented example config").set_defaults(func=cmd_config_render)
    cfg.add_parser("table", help="print the configuration reference").set_defaults(func=cmd_config_render)
    return parser


def main(argv: list[str] | None = None) -> int:
    from homesec.files import private_umask
    from homesec.logs import setup_logging
    from homesec.requests import NoAnswer

    private_umask()
    args = build_parser().parse_args(argv)
    setup_logging("DEBUG" if args.verbose else "WARNING")
    try:
        return int(args.func(args))
    except (ConfigError, ContractError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except NoAnswer as exc:
        return fail(str(exc), EXIT_NO_ANSWER)
    except (CliError, ConnectionError) as exc:
        return fail(str(exc), getattr(exc, "code", EXIT_FAILED))
    except KeyboardInterrupt:
        return 130
