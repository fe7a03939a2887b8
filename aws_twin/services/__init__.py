"""The twin's own services. Each folder: ``engine.py`` (the real work) and ``handlers.py`` (the
operations, on :class:`aws_twin.core.service.TwinService`)."""

from __future__ import annotations

import importlib

#: "module:Class" of every service class the server loads, in dispatch order
SERVICE_CLASSES = [
    "aws_twin.services.glue.handlers:GlueService",
    "aws_twin.services.sagemaker.handlers:SageMakerService",
    "aws_twin.services.sagemaker.runtime:SageMakerRuntimeService",
    "aws_twin.services.a2i.handlers:A2IService",
    "aws_twin.services.a2i.handlers:A2IRuntimeService",
    "aws_twin.services.textract.handlers:TextractService",
    "aws_twin.services.rekognition.handlers:RekognitionService",
]


def default_service_classes() -> list[type]:
    classes = []
    for spec in SERVICE_CLASSES:
        module, _, name = spec.partition(":")
        classes.append(getattr(importlib.import_module(module), name))
    return classes
