"""The buttons: every change is a POST with the session's CSRF token, by an admin token's session, and
calls what the JSON API's route calls (a gallery command, a training, a household command). Then back
to the page it came from, with what happened (or why not) shown once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Path, Request, UploadFile
from fastapi.responses import Response

from homesec.contract import (
    ALREADY_ENROLLED,
    ContractError,
    FaceSearch,
    GalleryResult,
    Training,
    check_label,
    new_id,
)
from recognizer_node import queries
from recognizer_node.household import CommandNotSent, HouseholdState, UnknownCamera
from recognizer_node.http.context import context, gallery_command
from recognizer_node.http.limits import read_upload
from recognizer_node.web import views
from recognizer_node.web.common import Refused, back, may_change, page, with_csrf
from recognizer_node.web.sessions import Flash

router = APIRouter(include_in_schema=False)
Csrf = Annotated[str | None, Form(alias="csrf")]
Next = Annotated[str | None, Form(alias="next")]
Id = Annotated[int, Path(ge=0, le=2**63 - 1)]
Label = Annotated[str, Form()]
# How long a button waits for the owner of a state (the notifier, a camera) to announce the change, so
# that the page it returns to shows it done; they answer within a second when they run.
CONFIRM_SECONDS = 3.0
# The checkboxes of the photo forms (templates/people.html, person.html)
FORCE_BOX = "even if a photo looks like someone else"
LARGEST_BOX = "a photo with several faces: take the largest"


def _command(request: Request, done: str, **fields: Any) -> Flash:
    """A gallery command, as the JSON API sends it; what to tell the user."""
    try:
        answer: GalleryResult = gallery_command(request, **fields)
    except ContractError as exc:  # a malformed label: say why, change nothing
        return Flash(str(exc), ok=False)
    if not answer.ok:
        return Flash(answer.reason or "not done", ok=False)
    return Flash(done)


# ------------------------------------------------------------------------------------- the house


@router.post("/armed")
def set_armed(
    request: Request, armed: Annotated[bool, Form()], csrf: Csrf = None, next: Next = None
) -> Response:
    session = may_change(request, csrf)
    said = "Armed: alerts are sent." if armed else "Disarmed: no alerts."
    by = f"web:{session.token_name}"
    flash = _household(
        request, lambda h: h.set_armed(armed, by=by), lambda s: s.armed is armed, said, "the notifier"
    )
    return back(session, next, "/", flash)


@router.post("/cameras/{camera}/enabled")
def set_enabled(
    request: Request, camera: str, enabled: Annotated[bool, Form()], csrf: Csrf = None, next: Next = None
) -> Response:
    session = may_change(request, csrf)
    said = f"Camera {camera} {'watches' if enabled else 'stopped watching'}."
    flash = _household(
        request,
        lambda h: h.set_camera_enabled(camera, enabled),
        lambda s: s.cameras.get(camera) is enabled,
        said,
        f"camera {camera}",
    )
    return back(session, next, "/", flash)


@router.post("/cameras/{camera}/capture")
def capture(request: Request, camera: str, csrf: Csrf = None, next: Next = None) -> Response:
    session = may_change(request, csrf)
    captures = context(request).captures
    try:
        if captures is None:
            raise CommandNotSent("no bus: capture commands cannot be sent")
        captures.capture(camera)
        flash = Flash(f"Camera {camera} takes a photo: it shows in Visits in a moment.")
    except (UnknownCamera, CommandNotSent, ContractError) as exc:
        flash = Flash(str(exc), ok=False)
    return back(session, next, "/", flash)


def _household(
    request: Request, command: Any, done: Callable[[HouseholdState], bool], said: str, owner: str
) -> Flash:
    """Send a household command; `said` once its owner announces it `done`, else that it is on its way."""
    household = context(request).household
    try:
        command(household)
    except (UnknownCamera, CommandNotSent, ContractError) as exc:
        return Flash(str(exc), ok=False)
    if household.wait_for(done, CONFIRM_SECONDS):
        return Flash(said)
    return Flash(
        f"Sent, but {owner} has not confirmed it yet (is it running?): reload the page to see.", ok=False
    )


# ------------------------------------------------------------------------------------- a visit's faces


@router.post("/visits/{event_id}/{seq}/faces/{face}/enroll")
def enroll_face(
    request: Request, event_id: str, seq: Id, face: Id, label: Label,
    force: Annotated[bool, Form()] = False, csrf: Csrf = None, next: Next = None,
) -> Response:  # fmt: skip
    session = may_change(request, csrf)
    fields = {"event_id": event_id, "seq": seq, "face": face, "label": label.strip(), "force": force}
    flash = _command(
        request, f"Enrolled as {label.strip()}: this face is known from now on.", op="enroll_face", **fields
    )
    visitor = _visitor_of(request, event_id, seq, face)
    if flash.ok and visitor is not None:  # its other faces are not enrolled: say how
        hint = f"This face was unknown visitor {visitor}: name that visitor to enroll its other faces too."
        flash = Flash(flash.text, lines=(hint,))
    return back(session, next, f"/visits/{event_id}", flash)


def _visitor_of(request: Request, event_id: str, seq: int, face: int) -> int | None:
    detail = queries.event(context(request).ops, event_id)
    shot = next((s for s in detail.snapshots if s.seq == seq), None) if detail else None
    return shot.faces[face].visitor if shot and face < len(shot.faces) else None


@router.post("/visits/{event_id}/{seq}/faces/{face}/not")
def not_label(
    request: Request, event_id: str, seq: Id, face: Id, csrf: Csrf = None, next: Next = None
) -> Response:
    session = may_change(request, csrf)
    fields = {"event_id": event_id, "seq": seq, "face": face, "label": None}
    flash = _command(request, "Noted: that face will not be given that name again.", op="not_label", **fields)
    return back(session, next, f"/visits/{event_id}", flash)


# ------------------------------------------------------------------------------------------ visitors


@router.post("/visitors/{visitor}/name")
def name_visitor(
    request: Request, visitor: Id, label: Label, csrf: Csrf = None, next: Next = None
) -> Response:
    session = may_change(request, csrf)
    flash = _command(request, f"Visitor {visitor} is {label.strip()} from now on.", op="name_visitor",
                     visitor=visitor, label=label.strip())  # fmt: skip
    return back(session, next, "/visitors", flash)


@router.post("/visitors/{visitor}/dismiss")
def dismiss_visitor(request: Request, visitor: Id, csrf: Csrf = None, next: Next = None) -> Response:
    session = may_change(request, csrf)
    flash = _command(request, f"Visitor {visitor} dismissed.", op="dismiss_visitor", visitor=visitor)
    return back(session, next, "/visitors", flash)


# -------------------------------------------------------------------------------------------- people


@router.post("/people/photos")
def add_photos(
    request: Request, label: Label, photos: Annotated[list[UploadFile], File()],
    force: Annotated[bool, Form()] = False, largest: Annotated[bool, Form()] = False,
    csrf: Csrf = None, next: Next = None,
) -> Response:  # fmt: skip
    """Each photo trained as the API's `POST /api/image/train` does, one recognition slot at a time."""
    session = may_change(request, csrf)
    try:
        label = check_label(label)
    except ContractError as exc:
        return back(session, next, "/people", Flash(str(exc), ok=False))
    options = {"force": force, "largest": largest}
    lines = [_train_one(request, label, upload, options) for upload in photos if upload.filename]
    enrolled = sum(line.endswith((": enrolled", f": {ALREADY_ENROLLED}")) for line in lines)  # both are in
    flash = Flash(
        f"{enrolled} of {len(lines)} photos enrolled as {label}.", ok=enrolled > 0, lines=tuple(lines)
    )
    return back(session, next, f"/people/{label}" if enrolled else "/people", flash)


def _train_one(request: Request, label: str, upload: UploadFile, options: dict[str, bool]) -> str:
    ctx = context(request)
    name = upload.filename or "photo"
    if not ctx.recognitions.take():
        return f"{name}: not tried, the recognizer is busy (try again)"
    try:
        image = read_upload(upload, ctx.settings.max_upload_bytes)
        req = Training(request_id=new_id(), label=label, image=image, source="web", **options)
        result = ctx.ops.train(req)
    except ContractError as exc:
        return f"{name}: {exc}"
    except HTTPException as exc:  # over the upload limit: the other photos are still tried
        return f"{name}: {exc.detail}"
    finally:
        ctx.recognitions.give_back()
    if result.ok:
        return f"{name}: {result.notice or 'enrolled'}"  # "already enrolled": the same photo again
    why = result.reason or "not enrolled"
    for api_words, box in ((", or force", FORCE_BOX), (" or ask for the largest", LARGEST_BOX)):
        if why.endswith(api_words):  # the API's words for the form's checkboxes
            why = why.removesuffix(api_words) + f", or tick “{box}” and send it again"
    return f"{name}: {why}"


@router.post("/people/{label}/rename")
def rename(request: Request, label: str, new_label: Label, csrf: Csrf = None, next: Next = None) -> Response:
    session = may_change(request, csrf)
    new = new_label.strip()
    flash = _command(request, f"{label} is now {new}.", op="rename_label", label=label, new_label=new)
    return back(session, None, f"/people/{new}" if flash.ok else f"/people/{label}", flash)


@router.post("/people/{label}/merge")
def merge(request: Request, label: str, into: Label, csrf: Csrf = None, next: Next = None) -> Response:
    session = may_change(request, csrf)
    flash = _command(request, f"{label} merged into {into}.", op="merge_labels", label=label, into=into)
    return back(session, next if not flash.ok else None, f"/people/{into}" if flash.ok else "/people", flash)


@router.post("/people/{label}/delete")
def delete_person(request: Request, label: str, csrf: Csrf = None) -> Response:
    session = may_change(request, csrf)
    return back(
        session, None, "/people", _command(request, f"{label} forgotten.", op="delete_label", label=label)
    )


@router.post("/enrollments/{enrollment_id}/delete")
def delete_enrollment(request: Request, enrollment_id: Id, csrf: Csrf = None, next: Next = None) -> Response:
    session = may_change(request, csrf)
    flash = _command(request, "Photo deleted.", op="delete_enrollment", enrollment_id=enrollment_id)
    return back(session, next, "/people", flash)


# ------------------------------------------------------------------------------------------- search


@router.post("/search")
def search(request: Request, photo: Annotated[UploadFile, File()], csrf: Csrf = None) -> Response:
    """The archive search of `POST /api/search`; a viewer may search too (it changes nothing), with the
    session's CSRF token all the same."""
    session = with_csrf(request, csrf)
    ctx = context(request)
    names = views.Names(ctx.ops)
    if not ctx.recognitions.take():
        raise Refused(503, "The recognizer is busy: try again in a moment.")
    try:
        image = read_upload(photo, ctx.settings.max_upload_bytes)
        result = ctx.ops.search(FaceSearch(request_id=new_id(), image=image, top=48))
        problem = None if result.ok else result.reason
    except ContractError as exc:
        result, problem = None, str(exc)
    finally:
        ctx.recognitions.give_back()
    hits = [(h, *views.hit_face(ctx.ops, h.event_id, h.box)) for h in result.hits] if result else []
    return page(request, session, "search.html", result=result, hits=hits, problem=problem, names=names,
                photo_name=photo.filename)  # fmt: skip
