"""The gallery: labels with counts and thumbnails, enrollments and their crops; delete, rename, merge,
and "not X" from a photo."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Body, Path, Request, Response

from homesec.contract import GalleryResult
from recognizer_node import queries
from recognizer_node.http.auth import ADMIN, VIEWER
from recognizer_node.http.context import changed, context, documented, found, gallery_command
from recognizer_node.http.images import Photo, photo_bytes, photo_route

router = APIRouter(prefix="/api/gallery", tags=["gallery"])
READ_ERRORS = documented(401, 403, 422, 429)
CHANGE_ERRORS = documented(401, 403, 404, 422, 429)
EnrollmentId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("", dependencies=[VIEWER], responses=READ_ERRORS, summary="The gallery at a glance")
def overview(request: Request) -> GalleryResult:
    """The labels with their counts, their "not them" faces (`negatives`), and the labels that match
    each other (`conflicts`: one person under two names?): the answer to `list` on MQTT."""
    return gallery_command(request, op="list")


@router.get("/labels", dependencies=[VIEWER], responses=READ_ERRORS, summary="Labels")
def labels(request: Request) -> list[queries.LabelInfo]:
    """Every label with its number of enrollments; `best` is the enrollment whose crop is its thumbnail
    (`/api/gallery/enrollments/{best}/crop`)."""
    return queries.labels(context(request).ops)


@router.get(
    "/labels/{label}", dependencies=[VIEWER], responses=CHANGE_ERRORS, summary="A label's enrollments"
)
def enrollments(request: Request, label: str) -> list[queries.EnrollmentInfo]:
    return found(queries.enrollments(context(request).ops, label) or None, f"no one is enrolled as {label!r}")


@router.get(
    "/enrollments/{enrollment_id}/crop",
    dependencies=[VIEWER],
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}, **CHANGE_ERRORS},
    response_class=Response,
    summary="An enrollment's aligned face",
)
def crop(request: Request, enrollment_id: EnrollmentId) -> Response:
    crop = found(
        queries.enrollment_crop(context(request).ops, enrollment_id), f"no enrollment {enrollment_id}"
    )
    return Response(crop.data, media_type=crop.media_type)


@router.delete(
    "/enrollments/{enrollment_id}",
    dependencies=[ADMIN],
    responses=CHANGE_ERRORS,
    summary="Delete an enrollment",
)
def delete_enrollment(request: Request, enrollment_id: EnrollmentId) -> GalleryResult:
    return changed(request, "not found", op="delete_enrollment", enrollment_id=enrollment_id)


@router.delete("/labels/{label}", dependencies=[ADMIN], responses=CHANGE_ERRORS, summary="Delete a label")
def delete_label(request: Request, label: str) -> GalleryResult:
    """Forget everyone enrolled as `label`."""
    return changed(request, "not found", op="delete_label", label=label)


@router.post(
    "/labels/{label}/rename", dependencies=[ADMIN], responses=CHANGE_ERRORS, summary="Rename or merge a label"
)
def rename_label(
    request: Request, label: str, new_label: Annotated[str, Body(embed=True, description="The new name.")]
) -> GalleryResult:
    """Renaming onto a label that exists merges the two."""
    return changed(request, "not found", op="rename_label", label=label, new_label=new_label)


@router.post(
    "/labels/{label}/merge", dependencies=[ADMIN], responses=CHANGE_ERRORS, summary="Merge two labels"
)
def merge_label(
    request: Request, label: str, into: Annotated[str, Body(embed=True, description="The label to keep.")]
) -> GalleryResult:
    """One person enrolled under two names: `label`'s enrollments join `into`. Both must be enrolled
    (a typo must not quietly rename someone); a refusal is `ok: false` with the reason."""
    return gallery_command(request, op="merge_labels", label=label, into=into)


@router.delete(
    "/negatives/{negative_id}", dependencies=[ADMIN], responses=CHANGE_ERRORS, summary='Undo a "not X"'
)
def undo_not(request: Request, negative_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> GalleryResult:
    """Forget the negative a "not X" kept (its id is the `negative_id` of that answer), so that face may
    be given that name again; 404 when there is no such negative."""
    return changed(request, "not found", op="undo_not", negative_id=negative_id)


@photo_route(router, "/labels/{label}/not", ADMIN, "Not this person (a photo)")
def not_label(request: Request, label: str, image: Photo) -> GalleryResult:
    """The photo's largest face was wrongly named `label`: keep it as a negative, so that face (and
    faces closer to it than to the label's own photos) is not named `label` again. A refusal (no face,
    no such label) is `ok: false` with the reason. For an archived face, see
    `/api/events/{event_id}/snapshots/{seq}/faces/{face}/not`."""
    image_b64 = base64.b64encode(photo_bytes(request, image)).decode()
    return gallery_command(request, op="not_label", label=label, image_b64=image_b64)
