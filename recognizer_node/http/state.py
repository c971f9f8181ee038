"""The state of the house: nodes online, armed, cameras enabled; and setting armed and enabled."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Request
from pydantic import BaseModel, Field

from recognizer_node.household import CommandNotSent, HouseholdState, UnknownCamera
from recognizer_node.http.auth import ADMIN, VIEWER
from recognizer_node.http.context import context, documented
from recognizer_node.http.tokens import TokenRecord

router = APIRouter(prefix="/api/state", tags=["state"])
cameras = APIRouter(prefix="/api/cameras", tags=["state"])
ERRORS = documented(401, 403, 422, 429, 503)
SENT: dict[int | str, dict[str, Any]] = {
    202: {"description": "Sent to its owner; `GET /api/state` shows the change once it is made."}
}
CameraId = Annotated[str, Path(description="The camera's id (`camera/<id>` in the nodes).")]


def _by(request: Request) -> str:
    token: TokenRecord = request.state.token
    return f"http:{token.name}"


@router.get("", dependencies=[VIEWER], responses=ERRORS, summary="Nodes, armed, cameras")
def state(request: Request) -> HouseholdState:
    """What the nodes last announced: each node's availability, whether alerts are armed, and whether
    each camera is enabled."""
    return context(request).household.state()


@router.put(
    "/armed",
    dependencies=[ADMIN],
    status_code=202,
    responses={**SENT, **ERRORS},
    summary="Arm or disarm",
)
def set_armed(request: Request, armed: Annotated[bool, Body(embed=True)]) -> HouseholdState:
    """Ask the notifier to arm (alerts sent) or disarm, as `homesec arm|disarm` does. 503 when the
    broker did not take the command."""
    household = context(request).household
    try:
        household.set_armed(armed, by=_by(request))
    except CommandNotSent as exc:
        raise HTTPException(503, str(exc)) from None
    return household.state()


@router.put(
    "/cameras/{camera}/enabled",
    dependencies=[ADMIN],
    status_code=202,
    responses={**SENT, **ERRORS, **documented(404)},
    summary="Enable or disable a camera",
)
def set_camera_enabled(
    request: Request, camera: CameraId, enabled: Annotated[bool, Body(embed=True)]
) -> HouseholdState:
    """Ask the camera to watch (enabled) or stop. 404 for a camera that never announced itself."""
    household = context(request).household
    try:
        household.set_camera_enabled(camera, enabled)
    except UnknownCamera as exc:
        raise HTTPException(404, str(exc)) from None
    except CommandNotSent as exc:
        raise HTTPException(503, str(exc)) from None
    return household.state()


class CaptureSent(BaseModel):
    camera: str
    request_id: str = Field(
        description="The capture command's id; its snapshots follow on the camera's topic."
    )


@cameras.post(
    "/{camera}/capture",
    dependencies=[ADMIN],
    status_code=202,
    responses={**ERRORS, **documented(404)},
    summary="Take a photo now",
)
def capture(
    request: Request,
    camera: CameraId,
    burst: Annotated[int | None, Body(embed=True, ge=1, le=20, description="Snapshots to take.")] = None,
) -> CaptureSent:
    """Ask the camera for a snapshot burst now, as `homesec capture` does: it is recognized and archived
    like any other, and the notifier sends it whatever the verdict. 404 for a camera that never announced
    itself; 503 when the broker did not take the command."""
    ctx = context(request)
    if ctx.captures is None:
        raise HTTPException(503, "no bus: capture commands cannot be sent")
    try:
        cmd = ctx.captures.capture(camera, burst)
    except UnknownCamera as exc:
        raise HTTPException(404, str(exc)) from None
    except CommandNotSent as exc:
        raise HTTPException(503, str(exc)) from None
    return CaptureSent(camera=camera, request_id=cmd.request_id)
