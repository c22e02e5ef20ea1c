"""HTTP routes: POST /gpen/v1/restore, GET /gpen/v1/models, GET /gpen/v1/options.

Host-agnostic: a host passes its RestorationService, a function giving its current settings
(model, options, precision), optionally the lock that serialises its GPU work, and the
dependencies (its authentication) every route must carry. The request model is derived from
the option descriptions in options.py."""

import base64
import binascii
import contextlib
import os
import re
import threading
from pathlib import Path
from typing import Any, List, Literal, Optional

import numpy as np
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, create_model

from ..files import ImageFile, ImageFileError, decode_image, encode_image
from ..images import ImageError
from ..options import CHOICE, HOST_OPTIONS, LIST_KINDS, MAX_MEGAPIXELS, NAMES
from ..pipeline import check_landmarks
from ..registry import list_models, resolve_model

PREFIX = "/gpen/v1"


def _annotation(option):
    if option.kind in LIST_KINDS:
        return List[Literal[tuple(option.choices)]] if option.kind == NAMES else List[int]
    if option.kind == CHOICE:
        return Literal[tuple(option.choices)]
    return option.type


def _request_field(option):
    limits = {"ge": option.minimum, "le": option.maximum} if option.minimum is not None else {}
    return Optional[_annotation(option)], Field(None, description=option.help, **limits)


try:  # pydantic 2 (Forge, ComfyUI), else 1 (A1111 1.10)
    from pydantic import field_validator

    def _before(name):
        return field_validator(name, mode="before")
except ImportError:
    from pydantic import validator

    def _before(name):
        return validator(name, pre=True, allow_reuse=True)


def _as_described(option):
    """A request's value checked as every other host checks it, before pydantic's coercion
    could turn 2.5 or true into a batch size."""
    def check(cls, value):
        return value if value is None else option.check(value)
    return _before(option.name)(check)


RestoreRequest = create_model(
    "RestoreRequest",
    __validators__={f"check_{option.name}": _as_described(option) for option in HOST_OPTIONS},
    image=(str, Field(..., description="the image, base64 (a data: URL prefix is allowed)")),
    **{option.name: _request_field(option) for option in HOST_OPTIONS},
    landmarks=(Optional[List[Any]], Field(
        None, description="faces found elsewhere, five [x, y] points each; skips detection "
                          "([] restores no face)")),
)


class FaceInfo(BaseModel):
    number: int
    box: List[float]
    score: float
    landmarks: List[List[float]]
    release: Optional[int] = Field(None, description="under model auto, the release that "
                                   "restored the face (its size)")


class RestoreResponse(BaseModel):
    image: str = Field(..., description="the result as a base64 PNG")
    faces: List[FaceInfo]
    message: str
    model: str
    ran_on: str = Field("", description="the device and precision the network ran in")


class ModelEntry(BaseModel):
    name: str
    size: Optional[int] = None
    installed: bool
    file: str = Field(..., description="file name in the models folder")
    urls: List[str] = []


class ModelsResponse(BaseModel):
    models: List[ModelEntry]


class OptionEntry(BaseModel):
    name: str
    type: str
    default: Any
    label: str
    help: str
    choices: List[str] = []
    minimum: Optional[float] = None
    maximum: Optional[float] = None


# One request decodes at a time: each decode is bounded by the pixel limit, and concurrent
# requests must not add up to more than one such image.
DECODING = threading.BoundedSemaphore(1)


def decode_base64_image(text, max_megapixels=MAX_MEGAPIXELS.default):
    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    with DECODING:
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ImageFileError("image is not valid base64") from None
        return decode_image(data, name="the request's image",
                            max_megapixels=max_megapixels).pixels


def public(error, environment):
    """An error's message as a client may read it: files named relative to the host's models
    folders, which are the server's business."""
    text = str(error)
    for folder, name in ((environment.models_dir(), "the models folder"),
                         (environment.face_models_dir(), "the face models folder")):
        for form in dict.fromkeys([str(folder), str(Path(folder).resolve())]):
            text = re.sub(re.escape(form + os.sep) + r"(?=\s|$)", name, text)  # the folder
            text = text.replace(form + os.sep, "").replace(form, name)  # its files; itself
    return text


def apply_request(request, settings):
    """The host's settings (options.Settings) with the request's fields laid over them."""
    return settings.overlay(**{option.name: getattr(request, option.name)
                               for option in HOST_OPTIONS}, keep_crops=False)


def response_of(result, model):
    """The HTTP answer for a pipeline.RestoreResult: the image as base64 PNG and each face."""
    png = encode_image(ImageFile(result.image), ".png")
    faces = [FaceInfo(number=face.number, box=[float(v) for v in face.box],
                      score=float(face.score), landmarks=np.asarray(face.landmarks, float).tolist(),
                      release=face.release) for face in result.faces]
    return RestoreResponse(image=base64.b64encode(png).decode(), faces=faces,
                           message=result.message, model=model, ran_on=result.ran_on)


def create_router(service, settings, lock=None, dependencies=(),
                  max_megapixels=lambda: MAX_MEGAPIXELS.default):
    """`settings()` -> options.Settings: the host's current choices.
    `dependencies`: the `Depends(...)` every route carries (the host's authentication).
    `max_megapixels()`: the largest image a request may send; the most faces it may ask for
    are the service's (HostEnvironment.faces_per_image)."""
    router = APIRouter(prefix=PREFIX, tags=["GPEN"], dependencies=list(dependencies))

    def refuse(status, error):
        raise HTTPException(status_code=status, detail=public(error, service.environment))

    @router.post("/restore", response_model=RestoreResponse)
    def restore_route(request: RestoreRequest):
        try:  # what can be told before any work
            chosen = apply_request(request, settings())
            landmarks = None if request.landmarks is None else \
                check_landmarks(request.landmarks, service.environment.faces_per_image())
            resolve_model(chosen.model, service.environment.models_dir())
            image = decode_base64_image(request.image, max_megapixels())
        except (ImageFileError, ValueError) as error:
            refuse(422, error)
        try:
            with lock or contextlib.nullcontext():
                result = service.restore(image, chosen, landmarks)
        except (ImageError, ValueError) as error:
            refuse(422, error)
        except Exception as error:  # reported to the client, never a hung request
            refuse(500, f"GPEN restoration failed: {error}")
        return response_of(result, chosen.model)

    @router.get("/models", response_model=ModelsResponse)
    def models():
        listings = list_models(service.environment.models_dir())
        return ModelsResponse(models=[ModelEntry(name=item.name, size=item.size,
                                                 installed=item.installed, file=item.file,
                                                 urls=list(item.urls)) for item in listings])

    @router.get("/options", response_model=List[OptionEntry])
    def options():
        listed = lambda option: option.kind in LIST_KINDS  # noqa: E731
        return [OptionEntry(name=option.name, type="list" if listed(option) else
                            option.type.__name__,
                            default=list(option.default) if listed(option) else option.default,
                            label=option.label, help=option.help, choices=list(option.choices),
                            minimum=option.minimum, maximum=option.maximum)
                for option in HOST_OPTIONS]

    return router
