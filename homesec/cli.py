"""`homesec`: the command line. Local commands (broker files, config; the nodes add theirs, such as `models`
and `faces`) and remote ones over MQTT.

Remote commands (train, labels, forget, rename, merge, not, status, arm, disarm, capture, enable, disable,
visits, visitors) connect as the `admin` MQTT user, so the broker's ACLs apply to them as to any node.
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
from homesec.broker_cli import (
    add_listen_options,
    broker_config_shown,
    init_port,
    listen_address,
    print_next_steps,
)
from homesec.cli_archive import add_archive_commands
from homesec.cliutil import (
    EXIT_FAILED,
    EXIT_NO_ANSWER,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    cli_config,
    fail,
    gallery_request,
    quiet_stdout,
    record_broker_port,
    remote_client,
    report,
)
from homesec.config import Config, ConfigError, node_sections
from homesec.contract import (
    JPEG_CONTENT_TYPE,
    ArmCommand,
    ArmedState,
    Availability,
    CameraEnabled,
    CameraState,
    CaptureCommand,
    ContractError,
    DeleteLabel,
    EnableCommand,
    GallerySummary,
    ListLabels,
    MergeLabels,
    NotLabel,
    RenameLabel,
    Role,
    ShowCommand,
    TrainRequest,
    TrainResult,
    UndoNot,
    check_name,
    meta_property,
    parse,
    split_node,
    training_request_id,
)
from homesec.plugins import node_plugins

if TYPE_CHECKING:
    from homesec.remote import RemoteClient

log = logging.getLogger("homesec")


# ------------------------------------------------------------------------------------------ broker


def _instances(config: Config, section: str, given: list[str] | None) -> list[str]:
    """The configured instance of a node section (its `id` or `instance`) and those given on the line."""
    plugin = next((p for p in node_plugins() if p.section == section), None)
    sections = node_sections(config, plugin) if plugin else []  # all the [[cameras]]
    found = [split_node(plugin.node_name(s))[1] for s in sections] if plugin else []
    return [*found, *(given or [])]


def cmd_broker_init(args: argparse.Namespace) -> int:
    from homesec.broker import discovery_prefix, ha_photos, prepare_local_broker
    from homesec.files import private_dir

    config = cli_config(args)
    private_dir(config.data_dir)
    files = prepare_local_broker(
        config.data_dir,
        init_port(args, config),
        prefix=config.mqtt.prefix,
        bind=(bind := listen_address(args, config.data_dir)),
        cameras=_instances(config, "camera", args.camera),
        recognizers=_instances(config, "recognizer", args.recognizer),
        discovery_prefix=discovery_prefix(config),
        ha_photos=ha_photos(config),
    )
    record_broker_port(config.data_dir, files.port)  # the command line dials this port from now on
    users = ", ".join(a.user for a in files.accounts)
    print(f"accounts: {users}")
    print(f"passwords: {config.data_dir / 'secrets'} (one file per user, mode 600; and the recognizer group)")
    print(f"broker config: {broker_config_shown(files, compose=args.compose)}")
    print_next_steps(files, bind, compose=args.compose)
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
        shown = repr(result.name or result.label)
        if result.name not in (None, result.label):  # a name in another script: the id to type, too
            shown += f" (label {result.label!r})"
        done = result.notice or "enrolled"  # "already enrolled": the same photo again, nothing added
        print(f"{path}: {done} as {shown} (enrollment {result.enrollment_id})")
    else:
        hint = (
            " (--force)"
            if result.looks_like
            else " (--largest)"
            if "ask for the largest" in (result.reason or "")
            else ""
        )
        print(f"{path}: refused: {result.reason}{hint}")


PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


def photos_in(paths: list[str]) -> tuple[list[str], list[str]]:
    """The photos named, a directory standing for the photos in it (sorted by name, not its
    sub-directories); and the directories without any."""
    photos, empty = [], []
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            photos.append(given)
            continue
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
        photos += [str(p) for p in found]
        if not found:
            empty.append(given)
    return photos, empty


def cmd_train(args: argparse.Namespace) -> int:
    label = check_name(args.label)
    images, empty = photos_in(args.images)
    for folder in empty:
        print(f"{folder}: no photo in it (.jpg, .jpeg, .png)", file=sys.stderr)
    failed = len(empty)
    with remote_client(args) as remote:
        for image in images:
            path = Path(image)
            try:
                data = path.read_bytes()
            except OSError as exc:
                print(f"{image}: cannot read: {exc.strerror}", file=sys.stderr)
                failed += 1
                continue
            req = TrainRequest(
                # the same id for the same photo: training it again after a timeout does not enroll twice
                request_id=training_request_id(label, data, largest=args.largest, force=args.force),
                label=label,
                image_b64=base64.b64encode(data).decode(),
                largest=args.largest,
                force=args.force,
                source="cli",
            )
            result = _train_one(remote, req, image, args.timeout)
            _print_train(image, result, args.json)
            failed += not result.ok
    return EXIT_FAILED if failed else EXIT_OK


def _train_one(remote: RemoteClient, req: TrainRequest, image: str, timeout: float) -> TrainResult:
    from homesec.requests import NoAnswer

    try:
        return remote.request(remote.topics.train, req, TrainResult, req.request_id, timeout)
    except NoAnswer as exc:  # the recognizer may have enrolled it and been slow to say so
        raise CliError(
            f"{image}: {exc}; it may have been enrolled all the same: run the same command again, "
            "no photo is enrolled twice",
            EXIT_NO_ANSWER,
        ) from None


def cmd_labels(args: argparse.Namespace) -> int:
    result = gallery_request(args, ListLabels())
    if args.json:
        print(json.dumps(result.labels))
    elif not result.labels:
        print("no one is enrolled yet: `homesec train NAME photo.jpg`")
    else:
        for label, count in sorted(result.labels.items()):
            name = result.names.get(label, label)
            also = "" if name == label else f"\t(label {label})"
            print(f"{name}\t{count} photo{'s' if count != 1 else ''}{also}")
        for label, count in sorted(result.negatives.items()):
            print(
                f"not {result.names.get(label, label)}\t{count} face{'s' if count != 1 else ''} marked as not them"
            )
        for c in result.conflicts:  # one person under two names is ambiguous, so unknown, at every sighting
            one, other = result.names.get(c.label, c.label), result.names.get(c.other, c.other)
            print(
                f"conflict: {one} and {other} look alike ({c.similarity:.2f}); "
                f"if they are one person: homesec merge {one!r} {other!r}"
            )
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_merge(args: argparse.Namespace) -> int:
    result = gallery_request(args, MergeLabels(label=check_name(args.label), into=check_name(args.into)))
    if args.json:
        print(result.model_dump_json())
    else:
        print(f"merged {args.label!r} into {args.into!r}" if result.ok else f"refused: {result.reason}")
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_not(args: argparse.Namespace) -> int:
    if args.undo is not None:
        return _undo_not(args)
    if args.label is None:
        raise CliError("say who the face is not: homesec not NAME --event EVENT_ID (or --undo N)", EXIT_USAGE)
    label = check_name(args.label)
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
    result = gallery_request(args, cmd)
    if args.json:
        print(result.model_dump_json())
    elif result.ok:
        print(f"noted: that face is not {label!r}; it will not be named {label!r} again")
        if result.negative_id is not None:
            print(f"(a mistake? take it back: homesec not --undo {result.negative_id})")
    else:
        print(f"refused: {result.reason}")
    return EXIT_OK if result.ok else EXIT_FAILED


def _undo_not(args: argparse.Namespace) -> int:
    """Take a "not X" back (the negative its answer named): that face may be named X again."""
    if args.label is not None or args.event is not None or args.photo is not None:
        raise CliError("--undo takes only the number `homesec not` printed: homesec not --undo N", EXIT_USAGE)
    result = gallery_request(args, UndoNot(negative_id=args.undo))
    return report(args, result, f"taken back (number {args.undo}): that face may be named as before")


def cmd_forget(args: argparse.Namespace) -> int:
    result = gallery_request(args, DeleteLabel(label=check_name(args.label)))
    photos = f"{result.removed} photo{'s' if result.removed != 1 else ''}"
    return report(args, result, f"forgot {args.label!r} ({photos})")


def cmd_rename(args: argparse.Namespace) -> int:
    result = gallery_request(args, RenameLabel(label=check_name(args.old), new_label=check_name(args.new)))
    return report(args, result, f"renamed {args.old!r} to {args.new!r}")


def cmd_status(args: argparse.Namespace) -> int:
    with remote_client(args) as remote:
        t = remote.topics
        nodes = remote.nodes()
        gallery = remote.retained(t.gallery, settle=0.1)
        armed = remote.retained(t.armed, settle=0.1)
        cameras = remote.retained(t.camera_state("+"), settle=0.1)
        where = _broker_of(remote)
    status: dict[str, object] = {"nodes": nodes}
    # A camera node online may still not see (its stream down, a wrong password): its retained state.
    seen = (parse(CameraState, m.payload) for m in cameras)
    sight = {c.camera: {"state": c.state, "reason": c.reason} for c in seen}
    if sight:
        status["cameras"] = sight
    if gallery:
        status["gallery"] = parse(GallerySummary, gallery[-1].payload).labels
    if armed:
        status["armed"] = parse(ArmedState, armed[-1].payload).armed
    extra = _plugin_status(cli_config(args))
    status.update(extra)
    if args.json:
        print(json.dumps(status))  # the state as found, for a script to judge (`"nodes": {}` included)
        return EXIT_OK
    for node, state in sorted(nodes.items()):
        print(f"{node:<24} {state}")
    if not nodes:  # the wrong broker, most likely: this one never heard of homesec
        raise CliError(
            f"no node has ever connected to the broker at {where}: is `homesec up` (or are the nodes) "
            "running, and is this their data dir? (`homesec config check --show` shows which broker "
            "and data dir this command uses)"
        )
    for camera, sees in sorted(sight.items()):
        why = f" ({sees['reason']})" if sees["reason"] else ""
        print(f"camera {camera} sees: {sees['state']}{why}")
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


def _broker_of(remote: RemoteClient) -> str:
    settings = remote.bus.settings
    return f"{settings.host}:{settings.port}"


def cmd_arm(args: argparse.Namespace) -> int:
    """Arm or disarm, and wait for the notifier to say it did (its retained armed state)."""
    wanted = args.command == "arm"
    with remote_client(args) as remote:
        t = remote.topics
        msg = remote.command(
            t.armed_cmd,
            ArmCommand(armed=wanted, by="cli"),
            t.armed,
            lambda m: (s := parse(ArmedState, m.payload)).armed == wanted and s.by == "cli",
            args.timeout,
        )
    state = parse(ArmedState, msg.payload)
    print(state.model_dump_json() if args.json else f"{'armed' if state.armed else 'disarmed'} (confirmed)")
    return EXIT_OK


def _camera_online(remote: RemoteClient, camera: str) -> None:
    """Refuse a command for a camera that is unknown, or known but not running."""
    cameras = {
        split_node(node)[1]: state
        for node, state in remote.nodes().items()
        if split_node(node)[0] == Role.CAMERA
    }
    if camera not in cameras:
        known = ", ".join(sorted(cameras)) or "none has ever connected"
        raise CliError(f"no camera {camera!r} (known cameras: {known}; `homesec status`)")
    if cameras[camera] != Availability.ONLINE:
        raise CliError(f"camera {camera!r} is {cameras[camera]}: nothing sent (`homesec status`)")


def _capture_message(args: argparse.Namespace) -> tuple[CaptureCommand | ShowCommand, bytes | None]:
    """The capture command, or with `--image` the photo to show the camera (a JPEG) and its `meta`."""
    if args.image is None:
        return CaptureCommand(), None
    try:
        jpeg = Path(args.image).read_bytes()
    except OSError as exc:
        raise CliError(f"{args.image}: cannot read: {exc.strerror}") from None
    if jpeg[:2] != b"\xff\xd8":
        raise CliError(f"{args.image}: not a JPEG (the camera shows JPEG photos)", EXIT_USAGE)
    return ShowCommand(), jpeg


def cmd_capture(args: argparse.Namespace) -> int:
    cmd, jpeg = _capture_message(args)
    with remote_client(args) as remote:
        _camera_online(remote, args.camera)
        t = remote.topics
        if jpeg is None:
            topic = t.camera_cmd_capture(args.camera)
            sent = remote.bus.publish_confirmed(topic, cmd)
        else:  # the camera treats the photo as a capture of its own (docs/mqtt.md, cmd/show)
            topic = t.camera_cmd_show(args.camera)
            sent = remote.bus.publish_confirmed(
                topic, jpeg, user_properties=meta_property(cmd), content_type=JPEG_CONTENT_TYPE
            )
        if not sent:
            raise CliError(f"the broker refused {topic}")
    if args.json:
        print(json.dumps({"camera": args.camera, "request_id": cmd.request_id, "sent": True}))
    else:
        print(f"capture asked of {args.camera}: its photos go through the recognizer (`homesec visits`)")
    return EXIT_OK


def cmd_enable(args: argparse.Namespace) -> int:
    """Enable or disable a camera, and wait for it to say so (its retained enabled state)."""
    wanted = args.command == "enable"
    with remote_client(args) as remote:
        _camera_online(remote, args.camera)
        t = remote.topics
        msg = remote.command(
            t.camera_cmd_enable(args.camera),
            EnableCommand(enabled=wanted),
            t.camera_enabled(args.camera),
            lambda m: parse(CameraEnabled, m.payload).enabled == wanted,
            args.timeout,
        )
    state = parse(CameraEnabled, msg.payload)
    if args.json:
        print(state.model_dump_json())
    else:
        print(f"camera {state.camera} {'enabled' if state.enabled else 'disabled'} (confirmed)")
    return EXIT_OK


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
    up.add_argument(
        "--port", type=int, help="broker port, which must be free (default: 18830, or a free one when taken)"
    )
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
    add_listen_options(init)
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
    train.add_argument(
        "images", nargs="+", metavar="IMAGE", help="a photo, or a directory: its .jpg/.jpeg/.png photos"
    )
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
    not_.add_argument("label", nargs="?", help="the name the face was wrongly given")
    not_.add_argument("--event", metavar="EVENT_ID", help="the event the face was named in (the alert's)")
    not_.add_argument("--seq", type=int, default=0, help="the snapshot of the event (default 0)")
    not_.add_argument("--face", type=int, default=0, help="the face's index in the result (default 0)")
    not_.add_argument("--photo", metavar="PHOTO", help="or: a photo of the person who is not LABEL")
    not_.add_argument(
        "--undo", type=int, metavar="N", help='take back the "not" numbered N (the number it printed)'
    )
    remote("status", "nodes online, armed state, enrolled people", cmd_status)
    remote("arm", "send alerts (waits for the notifier to confirm)", cmd_arm)
    remote("disarm", "stop sending alerts (waits for the notifier to confirm)", cmd_arm)
    capture = remote("capture", "take a snapshot burst now", cmd_capture)
    capture.add_argument("camera", nargs="?", default="door")
    capture.add_argument(
        "--image", metavar="FILE", help="show the camera this JPEG instead: it is taken as its snapshot"
    )
    for verb, what in (
        ("enable", "a camera takes snapshots and alerts again"),
        ("disable", "a camera takes no snapshots (no alerts) until enabled"),
    ):
        camera = remote(verb, f"{what} (waits for it to confirm)", cmd_enable)
        camera.add_argument("camera", metavar="CAMERA")
    add_archive_commands(remote)

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

    private_umask()
    args = build_parser().parse_args(argv)
    setup_logging("DEBUG" if args.verbose else "WARNING")
    try:
        return int(args.func(args))
    except (ConfigError, ContractError) as exc:
        return _failed(args, str(exc), EXIT_USAGE)
    except TimeoutError as exc:
        if not _is_no_answer(exc):
            raise
        return _failed(args, str(exc), EXIT_NO_ANSWER)
    except BrokenPipeError:  # `homesec visits --json | head`: the reader has had enough
        quiet_stdout()
        return EXIT_FAILED
    except (CliError, ConnectionError) as exc:
        return _failed(args, str(exc), getattr(exc, "code", EXIT_FAILED))
    except KeyboardInterrupt:
        return 130


def _failed(args: argparse.Namespace, message: str, code: int) -> int:
    """The reason on stderr; with --json also on stdout, so a script reading it gets an answer too."""
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "error": message, "exit_code": code}))
    return fail(message, code)


def _is_no_answer(exc: BaseException) -> bool:
    """A request's NoAnswer, without importing homesec.requests (and paho) for local commands such as
    `homesec faces`: a NoAnswer can only come from a command that imported it."""
    requests = sys.modules.get("homesec.requests")
    return requests is not None and isinstance(exc, requests.NoAnswer)
