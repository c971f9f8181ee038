"""Bearer tokens: who may call a route (its scope), and how often (the per-token rate limit)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from recognizer_node.http.context import context
from recognizer_node.http.tokens import Scope, TokenRecord

_bearer = HTTPBearer(
    auto_error=False,
    description="An API token: `homesec api token create --scope admin|viewer`, or the files "
    "`homesec up` writes in <data_dir>/secrets/.",
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def caller(needed: Scope) -> Callable[..., TokenRecord]:
    """A dependency that admits a known token granting `needed`, within its rate limit."""

    def check(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
    ) -> TokenRecord:
        ctx = context(request)
        if credentials is None:
            raise HTTPException(401, "send an API token: Authorization: Bearer <token>", _CHALLENGE)
        record = ctx.tokens.lookup(credentials.credentials)
        if record is None:
            raise HTTPException(401, "unknown or revoked API token", _CHALLENGE)
        if not record.scope.grants(needed):
            raise HTTPException(403, f"this needs an {needed} token; this one is {record.scope}")
        retry_after = ctx.limiter.take(record.id)
        if retry_after > 0:
            raise HTTPException(
                429,
                f"rate limit of {ctx.settings.rate_per_minute} requests a minute reached "
                "(recognizer.http.rate_per_minute)",
                {"Retry-After": str(max(1, round(retry_after)))},
            )
        request.state.token = record
        return record

    return check


def recognition_slot(request: Request) -> Iterator[None]:
    """Holds one of the API's recognition slots while the route runs; 503 when none frees in time.
    (Listed after the scope, so a refused caller never takes one.)"""
    slots = context(request).recognitions
    if not slots.take():
        raise slots.busy()
    try:
        yield
    finally:
        slots.give_back()


VIEWER = Depends(caller(Scope.VIEWER))
ADMIN = Depends(caller(Scope.ADMIN))
RECOGNIZING = Depends(recognition_slot)
