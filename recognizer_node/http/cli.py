"""`homesec api token create|list|revoke`: the HTTP API's bearer tokens (local files, no MQTT).

Exit codes: 0 done; 1 `revoke` matched no token; 2 usage or an unreadable token store.
"""

from __future__ import annotations

import argparse
import json

from homesec.cliutil import EXIT_FAILED, EXIT_OK, EXIT_USAGE, cli_config, fail
from homesec.plugins import SubParsers
from recognizer_node.http.tokens import Scope, TokenStore, TokenStoreError

MIN_REVOKE_ID = 4  # a shorter prefix could revoke tokens by accident


def _store(args: argparse.Namespace) -> TokenStore:
    return TokenStore.of(cli_config(args).data_dir)


def cmd_token_create(args: argparse.Namespace) -> int:
    try:
        token, record = _store(args).create(Scope(args.scope), args.name or f"cli ({args.scope})")
    except TokenStoreError as exc:
        return fail(str(exc), EXIT_USAGE)
    if args.json:
        print(json.dumps({"token": token, "id": record.id, "scope": record.scope, "name": record.name}))
    else:  # the plain text exists only here: the store keeps its hash
        print(token)
        print(f"{record.scope} token {record.id} created; it is shown only now", flush=True)
    return EXIT_OK


def cmd_token_list(args: argparse.Namespace) -> int:
    try:
        records = _store(args).records()
    except TokenStoreError as exc:
        return fail(str(exc), EXIT_USAGE)
    for r in records:
        if args.json:
            print(json.dumps({"id": r.id, "scope": r.scope, "name": r.name, "created": r.created}))
        else:
            print(f"{r.id}  {r.scope:<6}  {r.created}  {r.name}")
    return EXIT_OK


def cmd_token_revoke(args: argparse.Namespace) -> int:
    if len(args.id) < MIN_REVOKE_ID:
        return fail(
            f"give at least {MIN_REVOKE_ID} characters of the token id (`homesec api token list`)", EXIT_USAGE
        )
    try:
        gone = _store(args).revoke(args.id)
    except TokenStoreError as exc:
        return fail(str(exc), EXIT_USAGE)
    if not gone:
        return fail(f"no token with id {args.id}", EXIT_FAILED)
    print(f"revoked {gone} token{'s' if gone > 1 else ''}")
    return EXIT_OK


def add_commands(subparsers: SubParsers) -> None:
    api = subparsers.add_parser("api", help="the recognizer's HTTP API: bearer tokens")
    sub = api.add_subparsers(dest="api_cmd", required=True)
    token = sub.add_parser("token", help="create, list and revoke API tokens").add_subparsers(
        dest="token_cmd", required=True
    )
    create = token.add_parser("create", help="a new token (printed once; only its hash is stored)")
    create.add_argument(
        "--scope", choices=[s.value for s in Scope], required=True, help="viewer changes nothing"
    )
    create.add_argument("--name", help="what the token is for (shown by `list`)")
    create.set_defaults(func=cmd_token_create)
    listing = token.add_parser("list", help="the tokens: id, scope, creation time, name")
    listing.set_defaults(func=cmd_token_list)
    revoke = token.add_parser("revoke", help="forget a token (refused from the next request on)")
    revoke.add_argument("id", help="the token id from `list` (or its first characters)")
    revoke.set_defaults(func=cmd_token_revoke)
    for p in (create, listing):
        p.add_argument("--json", action="store_true", help="machine-readable output")
