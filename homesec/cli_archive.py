"""`homesec visits` and `homesec visitors`: the recognizer's event archive from the command line, over
MQTT (`recognizer/cmd/archive` to read, `recognizer/cmd/gallery` to name or dismiss a visitor).

The filters are the HTTP API's (`GET /api/events`, docs/http.md); `--json` prints the recognizer's
answer objects as they are.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from homesec.cliutil import EXIT_OK, CliError, gallery_request, remote_client, report
from homesec.contract import (
    ArchiveAnswer,
    ArchiveQuery,
    DismissVisitor,
    GalleryResult,
    ListLabels,
    NameVisitor,
    Verdict,
    check_name,
    from_iso,
    utc_now,
)

if TYPE_CHECKING:
    from homesec.remote import RemoteClient

Remote = Callable[[str, str, Callable[[argparse.Namespace], int]], argparse.ArgumentParser]
_AGO = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def moment(text: str) -> datetime:
    """An ISO-8601 time (with an offset, or `Z`), or a time ago: `30m`, `12h`, `7d`, `2w`."""
    if m := _AGO.match(text.strip()):
        return utc_now() - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        return from_iso(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc} (or say how long ago: 30m, 12h, 7d, 2w)") from None


def _ask(args: argparse.Namespace, query: ArchiveQuery, remote: RemoteClient | None = None) -> ArchiveAnswer:
    if remote is None:
        with remote_client(args) as own:
            return _ask(args, query, own)
    answer = remote.request(remote.topics.archive_cmd, query, ArchiveAnswer, query.request_id, args.timeout)
    if not answer.ok:
        raise CliError(f"refused: {answer.reason}")
    return answer


def _names(args: argparse.Namespace, remote: RemoteClient) -> dict[str, str]:
    """label -> display name, from the gallery: the archive keeps labels, the household knows names."""
    cmd = ListLabels()
    return remote.request(remote.topics.gallery_cmd, cmd, GalleryResult, cmd.request_id, args.timeout).names


def _local(iso: str) -> str:
    return from_iso(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _who(event: dict[str, Any], names: dict[str, str]) -> str:
    people = [
        *(names.get(label, label) for label in event["labels"]),
        *(f"visitor {v}" for v in event["visitors"]),
    ]
    return ", ".join(people) or "nobody named"


def cmd_visits(args: argparse.Namespace) -> int:
    with remote_client(args) as remote:
        names = {} if args.json else _names(args, remote)  # for the lines shown; JSON keeps the labels
        query = ArchiveQuery(
            what="events",
            camera=args.camera,
            verdict=args.verdict,
            label=args.person,  # a label or a display name: the recognizer resolves it
            visitor=args.visitor,
            since=args.since,
            until=args.until,
            offset=args.offset,
            limit=args.limit,
        )
        answer = _ask(args, query, remote)
    if args.json:
        page = {"events": answer.events, "total": answer.total, "offset": query.offset}
        print(json.dumps({**page, "next_offset": answer.next_offset}))  # the shape of GET /api/events
        return EXIT_OK
    for e in answer.events:
        verdicts = "/".join(e["verdicts"])
        shots = f"{e['snapshots']} photo{'s' if e['snapshots'] != 1 else ''}"
        print(
            f"{_local(e['first'])}  {e['camera']:<8} {verdicts:<16} {_who(e, names):<24} {shots}  event {e['event_id']}"
        )
    more = f"; more: --offset {answer.next_offset}" if answer.next_offset is not None else ""
    print(f"{len(answer.events)} of {answer.total} visit(s){more}")
    return EXIT_OK


def cmd_visitors(args: argparse.Namespace) -> int:
    with remote_client(args) as remote:
        answer = _ask(args, ArchiveQuery(what="visitors", offset=args.offset, limit=args.limit), remote)
        if args.json:
            print(json.dumps(answer.visitors))
            return EXIT_OK
        names = _names(args, remote) if any(v.get("label") for v in answer.visitors) else {}
    if not answer.visitors:
        print("no recurring unknown visitor yet")
    for v in answer.visitors:
        named = f"  named {names.get(v['label'], v['label'])!r}" if v.get("label") else ""
        print(
            f"visitor {v['visitor']:<5} {v['events']} visit(s), {v['faces']} face(s), last seen "
            f"{_local(v['last_seen'])}, first {_local(v['first_seen'])}{named}"
        )
    if answer.visitors:
        print("name one: homesec visitors name ID NAME; forget one: homesec visitors dismiss ID")
    return EXIT_OK


def cmd_visitor_name(args: argparse.Namespace) -> int:
    result = gallery_request(args, NameVisitor(visitor=args.id, label=check_name(args.name)))
    done = f"visitor {args.id} is {args.name!r} from now on ({result.enrolled} face(s) enrolled)"
    return report(args, result, done)


def cmd_visitor_dismiss(args: argparse.Namespace) -> int:
    result = gallery_request(args, DismissVisitor(visitor=args.id))
    return report(args, result, f"visitor {args.id} dismissed: its faces are no longer grouped")


def _count(low: int, high: int) -> Callable[[str], int]:
    def parse_count(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not in {low}-{high}")
        return value

    return parse_count


def _page(p: argparse.ArgumentParser, limit: int) -> None:
    p.add_argument("--limit", type=_count(1, 500), default=limit, metavar="N", help="at most N (1-500)")
    p.add_argument(
        "--offset", type=_count(0, 2**31), default=0, metavar="N", help="skip the first N (the next page)"
    )


def _leaf(
    sub: Any, name: str, help_: str, func: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    """A sub-command of `visitors`; its options also go after it (SUPPRESS: not to undo the parent's)."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_)
    p.add_argument("--timeout", type=float, default=argparse.SUPPRESS, help="seconds to wait for the answer")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    p.set_defaults(func=func)
    return p


def add_archive_commands(remote: Remote) -> None:
    visits = remote("visits", "the visit history (the recognizer's event archive), newest first", cmd_visits)
    visits.add_argument("--camera", metavar="ID")
    visits.add_argument("--verdict", type=Verdict, choices=list(Verdict), metavar="VERDICT",
                        help=f"visits with a photo of this verdict: {', '.join(Verdict)}")  # fmt: skip
    visits.add_argument("--person", metavar="NAME", help="visits where this enrolled person was named")
    visits.add_argument("--visitor", type=int, metavar="ID", help="visits of this unknown visitor")
    visits.add_argument(
        "--since", type=moment, metavar="WHEN", help="ISO time (2026-12-01T08:00Z) or 12h, 7d ago"
    )
    visits.add_argument("--until", type=moment, metavar="WHEN", help="ISO time, or how long ago")
    _page(visits, 20)
    visitors = remote(
        "visitors", "recurring unknown visitors: list them, name one, dismiss one", cmd_visitors
    )
    _page(visitors, 50)
    sub = visitors.add_subparsers(dest="visitors_cmd", metavar="{name,dismiss}")
    name = _leaf(sub, "name", "enroll a visitor's faces as NAME: named from now on", cmd_visitor_name)
    name.add_argument("id", type=int, metavar="ID")
    name.add_argument("name", metavar="NAME")
    dismiss = _leaf(sub, "dismiss", "forget a visitor (its faces stay in their visits)", cmd_visitor_dismiss)
    dismiss.add_argument("id", type=int, metavar="ID")
