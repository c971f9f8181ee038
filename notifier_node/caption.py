"""Alert captions: what was seen, where, when (local time), and who it looked most like."""

from __future__ import annotations

from datetime import datetime, tzinfo

from homesec.contract import Alert, Face, RecognitionResult, Verdict

from .telegram import CAPTION_LIMIT, clip

HEADLINES = {
    Verdict.UNKNOWN: "🚨 Unknown person",
    Verdict.NO_FACE: "👀 Motion, no usable face",
    Verdict.TOO_SMALL: "👤 Someone, face too small to recognise,",
    Verdict.KNOWN: "Known person",
}


def local_time(moment: datetime, zone: tzinfo | None) -> str:
    """`moment` in `zone` (None: the system's local zone). Never raises: the contract keeps times a day
    inside datetime's range, and should a time still not convert, it is shown as it came."""
    try:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    except (OverflowError, ValueError, OSError):  # OSError: the platform's localtime() refused it
        return moment.isoformat(sep=" ", timespec="seconds")


def shown_name(face: Face) -> str | None:
    """How a named face's person is shown: their display name (any script), else their label."""
    return face.name or face.label


def _face_line(face: Face) -> str:
    if face.label is not None:
        return f"• known: {shown_name(face)} ({face.similarity or 0:.2f})"
    if face.rejected:
        return f"• face not used: {face.rejected}"
    who = "unknown face"
    if face.visitor:
        seen = face.visitor_seen_week
        times = f", seen {seen} time{'s' if seen != 1 else ''} this week" if seen else ""
        who = f"unknown visitor {face.visitor}{times}"
    if face.ambiguous_with:  # usually one person enrolled under two names: `homesec labels` shows it
        return f"• {who}: too close to call between {face.closest} and {face.ambiguous_with} ({face.similarity or 0:.2f})"
    closest = face.closest or (None if face.similarity is None else "?")
    if closest is None:
        return f"• {who} (gallery empty)"
    return f"• {who}, closest: {closest} ({face.similarity or 0:.2f})"


def build_caption(alert: Alert, zone: tzinfo | None = None, grouped: int = 1) -> str:
    headline = "📷 Snapshot" if alert.requested else HEADLINES.get(alert.verdict, f"Alert ({alert.verdict})")
    lines = [
        f"{headline} at {alert.camera}",
        f"🕒 {local_time(alert.snapshot_ts, zone)}",
    ]
    faces = sorted(alert.faces, key=lambda f: (f.label is not None, f.rejected is not None))
    lines += [_face_line(f) for f in faces[:10]]
    if len(faces) > 10:
        lines.append(f"• … and {len(faces) - 10} more faces")
    return with_count(clip("\n".join(lines), CAPTION_LIMIT), grouped)


def revised_caption(alert: Alert, zone: tzinfo | None = None) -> str:
    """The caption of the photo already sent for a visit, once a later frame changed the picture (a new
    unknown face): the visit's faces now, under the photo first sent."""
    return clip(
        f"{build_caption(alert, zone)}\n🔄 Updated after {alert.frames} photos of this visit", CAPTION_LIMIT
    )


def with_count(caption: str, grouped: int) -> str:
    """`caption` ending with how many more photos were folded into its alert."""
    if grouped <= 1:
        return caption
    more = f"📷 +{grouped - 1} more photo{'s' if grouped > 2 else ''} of this visit"
    return clip(f"{caption}\n{more}", CAPTION_LIMIT)


def correction_caption(first: Alert, result: RecognitionResult, zone: tzinfo | None = None) -> str:
    """The alert `first` corrected: a later photo of its visit named everyone, so no stranger was there."""
    named = [f"{shown_name(f)} ({f.similarity or 0:.2f})" for f in result.faces if f.label is not None]
    frames = result.visit.frames if result.visit is not None else result.seq + 1
    lines = [
        f"✅ It was {', '.join(named) or 'someone known'} — no stranger",
        f"at {first.camera}, 🕒 {local_time(first.snapshot_ts, zone)}",
        f"🔄 Named in a later photo of this visit ({frames} photos); the photo is the first one",
    ]
    return clip("\n".join(lines), CAPTION_LIMIT)
