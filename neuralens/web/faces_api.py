"""The faces part of the API: enrol, list, remove, identify, verify — thin calls into ``neuralens.faces``.

Each request opens the gallery for its own duration (``faces.open_gallery``: the SQLite file, or the
shared PostgreSQL gallery for a ``postgresql://`` URL): SQLite connections belong to the thread that made
them, and FastAPI runs these handlers on a thread pool. A lock runs face requests one at a time, since
each one already keeps a core busy with dlib and the gallery serialises writes anyway.

Every answer is the ``to_dict()`` of a ``neuralens.faces`` result, described by the response models below;
every error is ``{"error": "..."}`` with the statuses each route declares. Calibration is not offered here:
it needs a labelled pair list with hundreds of photos (``neuralens faces calibrate``), and a gallery's own
enrolment photos (usually one per person) give no same-person pairs to calibrate on.
"""

from __future__ import annotations

import io
import threading
from typing import List

from fastapi import APIRouter, File, Form, HTTPException, Path, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from .. import faces
from ..errors import NeuralensError
from .security import error_responses
from .uploads import read_image

# How the web chooses among several faces, and how it enrols: its own fields, not the CLI's options.
SEVERAL_FACES_HINT = "send largest=true to use the largest face, or a photo of this person alone"
ENROL_HINT = "POST /api/faces/people"


class PersonOut(BaseModel):
    name: str = Field(description="the name as enrolled")
    embeddings: int = Field(description="number of stored face embeddings")
    created: str = Field(description="when first enrolled (ISO 8601, UTC)")


class PeopleOut(BaseModel):
    people: List[PersonOut]
    threshold: float = Field(description="the gallery's distance threshold")


class EnrollOut(BaseModel):
    name: str = Field(description="the person's stored name")
    added: int = Field(description="embeddings added")
    skipped: List[str] = Field(description="photos already enrolled for this person")
    warnings: List[str] = Field(description="e.g. a face within the threshold of someone else")


class RemovedOut(BaseModel):
    removed: str = Field(description="the stored name of the person removed")
    embeddings: int = Field(description="embeddings deleted")


class FaceMatchOut(BaseModel):
    index: int = Field(description="1-based, left to right")
    box: List[int] = Field(description="left, top, right, bottom in pixels", min_length=4, max_length=4)
    size: int
    score: float
    sharpness: float
    yaw: float
    name: str = Field(description="the person, or 'unknown' beyond the threshold")
    nearest: str = Field(description="the nearest enrolled person")
    distance: float
    threshold: float
    confidence: float


class IdentifyOut(BaseModel):
    width: int
    height: int
    faces: List[FaceMatchOut]


class VerifyOut(BaseModel):
    same: bool
    distance: float
    threshold: float
    confidence: float = Field(description="P(same person) from the logistic fit on distance")
    name: str = Field(description="the stored name of the person checked against")
    embeddings: int = Field(description="their embeddings compared with")
    box: List[int] = Field(description="the face used: left, top, right, bottom", min_length=4, max_length=4)


E404 = "nobody of that name is enrolled"
E422 = (
    "a photo without a usable face (none, several, too small, blurred or turned), a bad name, an empty "
    "gallery, or a gallery file the library refuses"
)


def register(api: APIRouter, config) -> None:
    """Add the /faces routes to ``api``."""
    lock = threading.Lock()

    def gallery() -> faces.GalleryBase:
        return faces.open_gallery(config.gallery)

    def photos(uploads: List[UploadFile], label: str):
        if len(uploads) > config.max_files:
            raise HTTPException(400, f"too many photos: at most {config.max_files} per request")
        return [
            read_image(u, f"{label} {i}" if len(uploads) > 1 else label, config.max_upload_bytes, config.max_pixels)
            for i, u in enumerate(uploads, start=1)
        ]

    def in_web_terms(exc: NeuralensError) -> Exception:
        """The library's errors as the web says them: an unknown person is 404, and the ways out that
        name CLI options name the web's fields instead."""
        if isinstance(exc, faces.UnknownPerson):
            return HTTPException(404, str(exc))
        if isinstance(exc, faces.SeveralFaces):
            return NeuralensError(str(exc.with_hint(SEVERAL_FACES_HINT)))
        if isinstance(exc, faces.EmptyGallery):
            return faces.EmptyGallery(exc.path, ENROL_HINT)
        return exc

    def call(function, *args, **kwargs):
        """Run a library call on a fresh gallery, under the lock, with its errors in web terms."""
        with lock, gallery() as g:
            try:
                return function(g, *args, **kwargs)
            except NeuralensError as exc:
                raise in_web_terms(exc) from None

    @api.get(
        "/faces/people",
        summary="Everyone enrolled",
        response_model=PeopleOut,
        responses=error_responses(422, e422="the gallery file cannot be used"),
    )
    def people():
        return call(lambda g: {"people": [p.to_dict() for p in g.persons()], "threshold": g.threshold})

    @api.post(
        "/faces/people",
        status_code=201,
        summary="Enrol a person from one or more photos",
        description="Each photo must show one face (or set `largest`) that is big, sharp and frontal "
        "enough; otherwise 422 says which photo and why, and nothing is stored. A name that "
        "matches an enrolled person's (ignoring case and how accents are encoded) adds "
        "photos to that person.",
        response_model=EnrollOut,
        responses=error_responses(400, 413, 415, 422, e422=E422),
    )
    def enroll(
        name: str = Form(..., description="the person's name"),
        photo: List[UploadFile] = File(..., description="photo(s) of the person"),
        largest: bool = Form(False, description="use the largest face when a photo shows several"),
    ):
        images = photos(photo, "photo")
        return call(faces.enroll, name, images, largest=largest).to_dict()

    # ':path' so that a name with a '/' (sent as %2F, which is decoded before routing) still matches; the
    # name is only ever a database key.
    @api.delete(
        "/faces/people/{name:path}",
        summary="Remove a person and all their embeddings",
        response_model=RemovedOut,
        responses=error_responses(404, 422, e404=E404, e422="the gallery file cannot be used"),
    )
    def remove(name: str = Path(..., description="the person's name (any case)")):
        def work(g: faces.GalleryBase) -> dict:
            stored = g.person(name).name
            return {"removed": stored, "embeddings": g.remove(stored)}

        return call(work)

    @api.post(
        "/faces/identify",
        summary="Who is in a photo",
        description="Every face with its box, its nearest enrolled person and the distance "
        "(`name` is 'unknown' beyond the threshold). With `annotate=true` the answer is "
        "the photo as a PNG with boxes and names drawn on it.",
        response_model=IdentifyOut,
        responses={
            200: {
                "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                "description": "the faces found (JSON), or with `annotate=true` the drawn photo",
            },
            **error_responses(400, 413, 415, 422, e422=E422),
        },
    )
    def identify(
        photo: UploadFile = File(..., description="the photo to search"),
        annotate_image: bool = Query(
            False, alias="annotate", description="answer with the photo, boxes and names drawn (PNG)"
        ),
    ):
        image = photos([photo], "photo")[0]
        matches = call(faces.identify, image)
        if annotate_image:
            buffer = io.BytesIO()
            faces.annotate(image, matches).save(buffer, format="PNG")
            return Response(buffer.getvalue(), media_type="image/png")
        return {"width": image.width, "height": image.height, "faces": [m.to_dict() for m in matches]}

    @api.post(
        "/faces/verify",
        summary="Is the face in a photo this enrolled person?",
        description="404 when nobody of that name is enrolled.",
        response_model=VerifyOut,
        responses=error_responses(400, 404, 413, 415, 422, e404=E404, e422=E422),
    )
    def verify(
        name: str = Form(..., description="the enrolled person to check against (any case)"),
        photo: UploadFile = File(..., description="the photo to check"),
        largest: bool = Form(False, description="use the largest face when the photo shows several"),
    ):
        image = photos([photo], "photo")[0]
        return call(faces.verify, image, name, largest=largest).to_dict()
