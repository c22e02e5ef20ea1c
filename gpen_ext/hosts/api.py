"""HTTP routes: POST /gpen/v1/restore, GET /gpen/v1/models, GET /gpen/v1/options.

Host-agnostic: a host passes its RestorationService, a function giving its current settings
(model, options, precision), optionally the lock that serialises its GPU work, and the
dependencies (its authentication) every route must carry. The request model is derived from
the option descriptions in options.py."""

import base64
import binascii
import contextlib
import threading
from typing import Any, List, Literal, Optional

import numpy as np
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, create_model

from ..files import ImageFile, ImageFileError, decode_image, encode_image
from ..images import ImageError
from ..options import CHOICE, HOST_OPTIONS, LIST_KINDS, MAX_MEGAPIXELS, NAMES
from ..pipeline import check_landmarks
from ..registry import list_models

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


RestoreRequest = create_model(
    "RestoreRequest",
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


def apply_request(request, settings):
    """The host's settings (options.Settings) with the request's fields laid over them."""
    return settings.overlay(**{option.name: getattr(request, option.name)
                               for option in HOST_OPTIONS}, keep_crops=False)


def create_router(service, settings, lock=None, dependencies=(),
                  max_megapixels=lambda: MAX_MEGAPIXELS.default):
    """`settings()` -> options.Settings: the host's current choices.
    `dependencies`: the `Depends(...)` every route carries (the host's authentication).
    `max_megapixels()`: the largest image a request may send."""
    router = APIRouter(prefix=PREFIX, tags=["GPEN"], dependencies=list(dependencies))

    @router.post("/restore", response_model=RestoreResponse)
    def restore(request: RestoreRequest):
        try:
            image = decode_base64_image(request.image, max_megapixels())
            chosen = apply_request(request, settings())
            landmarks = None if request.landmarks is None else check_landmarks(request.landmarks)
        except (ImageFileError, ValueError) as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        try:
            with lock or contextlib.nullcontext():
                result = service.restore(image, chosen, landmarks)
        except (ImageError, ValueError) as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        except Exception as error:  # reported to the client, never a hung request
            raise HTTPException(status_code=500,
                                detail=f"GPEN restoration failed: {error}") from None
        png = encode_image(ImageFile(result.image), ".png")
        faces = [FaceInfo(number=face.number, box=[float(v) for v in face.box],
                          score=float(face.score),
                          landmarks=np.asarray(face.landmarks, float).tolist())
                 for face in result.faces]
        return RestoreResponse(image=base64.b64encode(png).decode(), faces=faces,
                               message=result.message, model=chosen.model, ran_on=result.ran_on)

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
