"""`homesec web password`: set or remove the household password of the web page (a local file, no MQTT).

Exit codes: 0 done; 1 `--remove` found no password; 2 usage (too short, the two entries differ).
"""

from __future__ import annotations

import argparse
import getpass
import sys

from homesec.cliutil import EXIT_FAILED, EXIT_OK, EXIT_USAGE, cli_config, fail
from homesec.plugins import SubParsers
from recognizer_node.http.tokens import STORE_NAME, Scope, secrets_dir
from recognizer_node.web.password import Password, PasswordError


def _password(args: argparse.Namespace) -> Password:
    return Password.beside(secrets_dir(cli_config(args).data_dir) / STORE_NAME)


def _typed() -> str | None:
    """The new password: asked twice on a terminal, else the first line of stdin (for scripts)."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("new web password: ")
    return first if getpass.getpass("again: ") == first else None


def cmd_password(args: argparse.Namespace) -> int:
    password = _password(args)
    if args.remove:
        if not password.remove():
            return fail("no web password is set", EXIT_FAILED)
        print("web password removed; the sessions it opened end at their next request")
        return EXIT_OK
    typed = _typed()
    if typed is None:
        return fail("the two passwords differ; nothing changed", EXIT_USAGE)
    try:
        password.set(typed, Scope(args.scope))
    except PasswordError as exc:
        return fail(str(exc), EXIT_USAGE)
    print(f"web password set ({args.scope}); sign in with it at /login. Older password sessions end.")
    return EXIT_OK


def add_commands(subparsers: SubParsers) -> None:
    web = subparsers.add_parser("web", help="the household's web page: its sign-in password")
    sub = web.add_subparsers(dest="web_cmd", required=True)
    password = sub.add_parser(
        "password", help="set the password /login takes besides API tokens (asked twice; or one stdin line)"
    )
    password.add_argument(
        "--scope", choices=[s.value for s in Scope], default=Scope.ADMIN.value,
        help="what its sessions may do (default admin; viewer changes nothing)",
    )  # fmt: skip
    password.add_argument("--remove", action="store_true", help="no password: API tokens only")
    password.set_defaults(func=cmd_password)
