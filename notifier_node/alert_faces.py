"""Which archived face an alert stands for, so enrolling from the alert trains on the clean face.

The photo the chat sees has its faces boxed for display; the recognizer archived the snapshot without
boxes. "Enroll this person" and `/train <name>` as a reply to an alert therefore name the face (event
id, seq, index in the alert's `faces`) and the recognizer enrolls it from its archive.
"""

from __future__ import annotations

from dataclasses import dataclass

from homesec.contract import Alert, EnrollFace, Face, GalleryResult


@dataclass(frozen=True)
class FaceRef:
    event_id: str
    seq: int
    face: int

    def encode(self) -> str:
        return f"{self.seq}:{self.face}:{self.event_id}"

    def enroll(self, label: str) -> EnrollFace:
        return EnrollFace(event_id=self.event_id, seq=self.seq, face=self.face, label=label)


def decode_ref(text: str | None) -> FaceRef | None:
    """The reference `FaceRef.encode` wrote, or None for anything else."""
    seq, _, rest = (text or "").partition(":")
    face, _, event_id = rest.partition(":")
    if not (seq.isdigit() and face.isdigit() and event_id):
        return None
    return FaceRef(event_id, int(seq), int(face))


def face_to_enroll(alert: Alert) -> FaceRef | None:
    """The face an enrollment from this alert means: the largest usable face nobody was named in,
    else the largest usable face; None when the alert shows no usable face."""
    usable = [(i, f) for i, f in enumerate(alert.faces) if f.rejected is None]
    unnamed = [(i, f) for i, f in usable if f.label is None]
    pool = unnamed or usable
    if not pool:
        return None
    index, _ = max(pool, key=lambda item: _area(item[1]))
    return FaceRef(alert.event_id, alert.seq, index)


def named_faces(alert: Alert) -> dict[str, str]:
    """The archived face of each name the alert gave (encoded), for `/not <name>` as a reply to it: by
    label and by display name (`/not José` or `/not Jose`)."""
    refs = {}
    for i, f in enumerate(alert.faces):
        if f.label is not None:
            refs[f.label] = refs[f.name or f.label] = FaceRef(alert.event_id, alert.seq, i).encode()
    return refs


def enroll_answer(result: GalleryResult, label: str) -> str:
    if result.ok:
        return f"✅ Enrolled {label} (enrollment #{result.enrollment_id}, from the alert's clean photo)."
    return f"❌ Could not enroll {label}: {result.reason or 'refused'}"


def _area(face: Face) -> int:
    x1, y1, x2, y2 = face.box
    return (x2 - x1) * (y2 - y1)
