"""The faces part of the API: enrol, list, remove, identify, verify — thin calls into ``neuralens.faces``.

Each request opens the gallery for its own duration: SQLite connections belong to the thread that made
them, and FastAPI runs these handlers on a thread pool. A lock runs face requests one at a time, since
each one already keeps a core busy with dlib and the gallery serialises writes anyway.
"""
from __future__ import annotations

import io
import threading
from typing import List

from fastapi import APIRouter, File, Form, HTTPException, Path, Query, UploadFile
from fastapi.responses import Response

from .. import faces
from ..faces.gallery import annotate
from .uploads import read_image


def register(api: APIRouter, config) -> None:
    """Add the /faces routes to ``api``."""
    lock = threading.Lock()

    def gallery() -> faces.Gallery:
        return faces.Gallery(config.gallery)

    def photos(uploads: List[UploadFile], label: str):
        if len(uploads) > config.max_files:
            raise HTTPException(400, f"too many photos: at most {config.max_files} per request")
        return [read_image(u, f"{label} {i}" if len(uploads) > 1 else label, config.max_upload_bytes,
                           config.max_pixels) for i, u in enumerate(uploads, start=1)]

    @api.get("/faces/people", summary="Everyone enrolled")
    def people() -> dict:
        with lock, gallery() as g:
            return {"people": [{"name": p.name, "embeddings": p.embeddings, "created": p.created}
                               for p in g.persons()],
                    "threshold": g.threshold}

    @api.post("/faces/people", status_code=201, summary="Enrol a person from one or more photos",
              description="Each photo must show one face (or set `largest`) that is big, sharp and frontal "
                          "enough; otherwise 422 says which photo and why, and nothing is stored.")
    def enroll(name: str = Form(..., description="the person's name"),
               photo: List[UploadFile] = File(..., description="photo(s) of the person"),
               largest: bool = Form(False, description="use the largest face when a photo shows several")) -> dict:
        images = photos(photo, "photo")
        with lock, gallery() as g:
            result = g.enroll(name, images, largest=largest)
        return {"name": result.name, "added": result.added, "skipped": result.skipped,
                "warnings": result.warnings}

    # ':path' so that a name with a '/' (sent as %2F, which is decoded before routing) still matches; the
    # name is only ever a database key.
    @api.delete("/faces/people/{name:path}", summary="Remove a person and all their embeddings")
    def remove(name: str = Path(..., description="the person's name (any case)")) -> dict:
        with lock, gallery() as g:
            known = {p.name.casefold(): p.name for p in g.persons()}
            stored = known.get(name.strip().casefold())
            if stored is None:
                raise HTTPException(404, f"no one called {name.strip()[:100]!r} is enrolled")
            count = g.remove(stored)
        return {"removed": stored, "embeddings": count}

    @api.post("/faces/identify", summary="Who is in a photo",
              description="Every face with its box, its nearest enrolled person and the distance "
                          "(`name` is 'unknown' beyond the threshold). With `annotate=true` the answer is "
                          "the photo as a PNG with boxes and names drawn on it.",
              responses={200: {"content": {"application/json": {}, "image/png": {}}}})
    def identify(photo: UploadFile = File(..., description="the photo to search"),
                 annotate_image: bool = Query(False, alias="annotate")):
        image = photos([photo], "photo")[0]
        with lock, gallery() as g:
            matches = g.identify(image)
        if annotate_image:
            buffer = io.BytesIO()
            annotate(image, matches).save(buffer, format="PNG")
            return Response(buffer.getvalue(), media_type="image/png")
        return {"width": image.width, "height": image.height, "faces": [m.to_dict() for m in matches]}

    @api.post("/faces/verify", summary="Is the face in a photo this enrolled person?")
    def verify(name: str = Form(...), photo: UploadFile = File(...),
               largest: bool = Form(False)) -> dict:
        image = photos([photo], "photo")[0]
        with lock, gallery() as g:
            return g.verify(image, name, largest=largest).to_dict()
