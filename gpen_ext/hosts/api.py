"""HTTP routes for restoration with options: POST /gpen/v1/restore, GET /gpen/v1/models.

Host-agnostic: a host passes its RestorationService, a function giving its current settings
(model, options, precision) and, optionally, the lock that serialises its GPU work."""

import base64
import binascii
import contextlib
import dataclasses
from typing import List, Literal, Optional

import numpy as np
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from ..face_models import DETECTORS
from ..files import ImageFile, ImageFileError, decode_image, encode_image
from ..images import ImageError
from ..registry import KNOWN_MODELS, installed_checkpoints

PREFIX = "/gpen/v1"


class RestoreRequest(BaseModel):
    image: str = Field(..., description="the image, base64 (a data: URL prefix is allowed)")
    model: Optional[str] = Field(None, description="registry name or checkpoint file name")
    weight: Optional[float] = Field(None, ge=0, le=1)
    visibility: Optional[float] = Field(None, ge=0, le=1)
    face_selection: Optional[Literal["all", "largest", "center"]] = None
    face_indices: Optional[List[int]] = Field(None, description="faces to restore, 0 = leftmost")
    min_face_size: Optional[int] = Field(None, ge=0)
    max_faces: Optional[int] = Field(None, ge=0)
    detection_model: Optional[Literal[tuple(DETECTORS)]] = None
    detection_threshold: Optional[float] = Field(None, gt=0, lt=1)
    mask: Optional[Literal["parsing", "box"]] = None
    color_correction: Optional[bool] = None
    small_face_smoothing: Optional[bool] = None
    batch_size: Optional[int] = Field(None, ge=1, le=64)
    precision: Optional[Literal["auto", "fp32", "fp16", "bf16"]] = None
    landmarks: Optional[List[List[List[float]]]] = Field(
        None, description="faces found elsewhere, five [x, y] points each; skips detection")


class FaceInfo(BaseModel):
    box: List[float]
    score: float
    landmarks: List[List[float]]


class RestoreResponse(BaseModel):
    image: str = Field(..., description="the result as a base64 PNG")
    faces: List[FaceInfo]
    message: str
    model: str


class ModelEntry(BaseModel):
    name: str
    size: Optional[int] = None
    installed: bool
    path: Optional[str] = None
    urls: List[str] = []


class ModelsResponse(BaseModel):
    models_dir: str
    models: List[ModelEntry]


def decode_base64_image(text):
    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageFileError("image is not valid base64") from None
    return decode_image(data, name="the request's image").pixels


def apply_request(request, model, options, precision):
    """The host's settings with the request's fields laid over them."""
    indices = tuple(request.face_indices or ())
    overrides = dict(weight=request.weight, visibility=request.visibility,
                     selection="index" if indices else request.face_selection,
                     face_indices=indices or None, min_face_size=request.min_face_size,
                     max_faces=request.max_faces, detection_model=request.detection_model,
                     detection_threshold=request.detection_threshold, mask=request.mask,
                     color_correction=request.color_correction,
                     small_face_smoothing=request.small_face_smoothing,
                     batch_size=request.batch_size, keep_crops=False)
    options = dataclasses.replace(options, **{k: v for k, v in overrides.items() if v is not None})
    return request.model or model, options, request.precision or precision


def model_entries(models_dir):
    entries, listed = [], set()
    for info in KNOWN_MODELS.values():
        path = models_dir / info.filename
        listed.add(path)
        entries.append(ModelEntry(name=info.name, size=info.size, installed=path.is_file(),
                                  path=str(path), urls=list(info.urls)))
    entries += [ModelEntry(name=path.name, installed=True, path=str(path))
                for path in installed_checkpoints(models_dir) if path not in listed]
    return entries


def create_router(service, settings, lock=None):
    """`settings()` -> (model, RestoreOptions, precision): the host's current choices."""
    router = APIRouter(prefix=PREFIX, tags=["GPEN"])

    @router.post("/restore", response_model=RestoreResponse)
    def restore(request: RestoreRequest):
        try:
            image = decode_base64_image(request.image)
            model, options, precision = apply_request(request, *settings())
            landmarks = np.asarray(request.landmarks, float) if request.landmarks else None
        except (ImageFileError, ValueError) as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        try:
            with lock or contextlib.nullcontext():
                result = service.restore(image, model, options, precision, landmarks)
        except (ImageError, ValueError) as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        except Exception as error:  # reported to the client, never a hung request
            raise HTTPException(status_code=500,
                                detail=f"GPEN restoration failed: {error}") from None
        png = encode_image(ImageFile(result.image), ".png")
        faces = [FaceInfo(box=[float(v) for v in face.box], score=float(face.score),
                          landmarks=np.asarray(face.landmarks, float).tolist())
                 for face in result.faces]
        return RestoreResponse(image=base64.b64encode(png).decode(), faces=faces,
                               message=result.message, model=str(model))

    @router.get("/models", response_model=ModelsResponse)
    def models():
        folder = service.environment.models_dir()
        return ModelsResponse(models_dir=str(folder), models=model_entries(folder))

    return router

