"""People named in requests by their label or their display name (any script), and the display names
shown wherever a person appears: what the gallery's `resolve` and `person` mean for each request.

- A command about someone enrolled (forget, merge, not-X, the old name of a rename) names them by label
  or display name; someone not enrolled is refused with the reason.
- A command that names someone new (a rename's new name, naming a visitor, enrolling an archived face,
  training) gets the enrolled person it names, else a new person: a label derived from the name,
  the name kept for display once the command succeeded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from homesec.contract import (
    ContractError,
    DeleteLabel,
    EnrollFace,
    Face,
    GalleryCommand,
    GalleryResult,
    MergeLabels,
    NameVisitor,
    NotLabel,
    RenameLabel,
    Training,
    TrainResult,
)
from recognizer_node.gallery import Gallery, Person

# The fields that must name someone already enrolled, per command.
_ENROLLED = {
    DeleteLabel: ("label",),
    MergeLabels: ("label", "into"),
    NotLabel: ("label",),
    RenameLabel: ("label",),
}


def resolve_command(cmd: GalleryCommand, gallery: Gallery) -> tuple[GalleryCommand, Person | None] | str:
    """The command with the labels of the people it names, and the person to name (`Gallery.set_name`)
    once it succeeded; or why it cannot be done."""
    update: dict[str, str] = {}
    for field in _ENROLLED.get(type(cmd), ()):
        given = getattr(cmd, field)
        if given is None:  # not X of an archived face: the name it was given, an enrolled label
            continue
        if (label := gallery.resolve(given)) is None:
            return f"no one is enrolled as {given!r}"
        update[field] = label
    person = None
    if isinstance(cmd, RenameLabel):
        person = gallery.person(cmd.new_label, cmd.name, renaming=update["label"])
        update["new_label"] = person.label
    elif isinstance(cmd, NameVisitor | EnrollFace):
        person = gallery.person(cmd.label)
        update["label"] = person.label
    return cmd.model_copy(update=update), person


def label_of(person: str, gallery: Gallery) -> str:
    """The label of `person`, said by label or display name in any case (`José`, `josé`, `Jose`); as
    given when no one enrolled is called so, or it cannot be a name (a search finds nothing then)."""
    try:
        return gallery.resolve(person) or person
    except ContractError:
        return person


def with_names(answer: GalleryResult, gallery: Gallery) -> GalleryResult:
    """`answer` with the display names of the labels it lists."""
    names = gallery.names()
    return answer.model_copy(update={"names": {label: names.get(label, label) for label in answer.labels}})


def named_faces(faces: Sequence[Face], gallery: Gallery) -> list[Face]:
    """The faces with the display names of their labels."""
    names = {label.lower(): name for label, name in gallery.names().items()}
    return [
        f if f.label is None else f.model_copy(update={"name": names.get(f.label.lower(), f.label)})
        for f in faces
    ]


def training_key(req: Training) -> str:
    """What makes a training the same request again: its id, and what it asks (a client that gives two
    different trainings one id gets both done: only a retry is answered from memory)."""
    digest = hashlib.sha256(f"{req.label}\0{req.name}\0{req.largest}\0{req.force}\0".encode())
    digest.update(req.image)
    return f"{req.request_id}/{digest.hexdigest()[:32]}"


def answered_training(gallery: Gallery, key: str) -> TrainResult | None:
    """The answer to a training that enrolled before (`training_key`: a retry after a timeout), with the
    label and name its enrollment has now; None for a new request."""
    found = gallery.answered(key)
    if found is None:
        return None
    answer, label = found
    first = TrainResult.model_validate_json(answer)
    return first.model_copy(update={"label": label, "name": gallery.name_of(label)})
