"""The routes that take a photo: train, match, and search the archive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.params import Depends
from fastapi.types import DecoratedCallable

from homesec.contract import FaceSearch, SearchResult, Training, TrainResult, check_name, new_id
from recognizer_node import queries
from recognizer_node.http.auth import ADMIN, RECOGNIZING, VIEWER
from recognizer_node.http.context import context, documented, endpoint
from recognizer_node.http.limits import read_upload

router = APIRouter(prefix="/api")
# The form field is `File` (capital F): the name the first scripts used, kept for them.
Photo = Annotated[UploadFile, File(alias="File", description="The photo: JPEG, PNG or WebP.")]
UPLOAD_ERRORS = documented(400, 401, 403, 413, 422, 429, 503)


def photo_bytes(request: Request, upload: UploadFile) -> bytes:
    return read_upload(upload, context(request).settings.max_upload_bytes)


def photo_route(
    router: APIRouter, path: str, scope: Depends, summary: str, **options: Any
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """The decorator of a route that takes a photo: `scope` and a recognition slot."""
    return endpoint(router, "POST", path, summary, [scope, RECOGNIZING], responses=UPLOAD_ERRORS, **options)


@photo_route(router, "/image/train", ADMIN, "Enroll a face", tags=["images"])
def train(
    request: Request,
    image: Photo,
    label: Annotated[str, Form(description="Who it is: their label, or a name in any script (José).")],
    largest: Annotated[
        bool, Form(description="Several faces: enroll the largest instead of refusing.")
    ] = False,
    force: Annotated[
        bool, Form(description="Enroll even when the face already matches another label.")
    ] = False,
    name: Annotated[
        str | None, Form(description="The display name to show (any script); default: `label`.")
    ] = None,
    request_id: Annotated[
        str | None,
        Form(
            min_length=1,
            max_length=128,
            description="Send the same id again to retry after a timeout: answered, not enrolled twice.",
        ),
    ] = None,
) -> TrainResult:
    """Enroll the photo's one usable face as `label`. A refusal (no face, several, too small, looks
    like someone else...) is `ok: false` with the reason. A name that is not a label (`José`) gets a
    label derived from it (`Jose`); the answer has both."""
    req = Training(
        request_id=request_id or new_id(),
        label=check_name(label),
        name=None if name is None else check_name(name),
        image=photo_bytes(request, image),
        largest=largest,
        force=force,
        source="http",
    )
    return context(request).ops.train(req)


@photo_route(router, "/image/match", VIEWER, "Who is this?", tags=["images"])
def match(request: Request, image: Photo) -> queries.MatchResult:
    """Every face of the photo against the gallery: the best named face and its similarity, or no
    match; nothing is archived."""
    req = queries.Matching(request_id=new_id(), image=photo_bytes(request, image))
    return queries.match(context(request).ops, req)


@photo_route(router, "/search", VIEWER, "Find a face", tags=["archive"])
def search(
    request: Request,
    image: Photo,
    threshold: Annotated[
        float | None,
        Form(ge=-1, le=1, description="Minimum similarity (default: recognizer.match_threshold)."),
    ] = None,
    top: Annotated[int, Form(ge=1, le=1000, description="At most this many events.")] = 20,
) -> SearchResult:
    """The archived events with the photo's largest face, most similar first (as
    `homesec faces search --archive`)."""
    req = FaceSearch(request_id=new_id(), image=photo_bytes(request, image), threshold=threshold, top=top)
    return context(request).ops.search(req)
