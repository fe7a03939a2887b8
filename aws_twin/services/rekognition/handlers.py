"""Amazon Rekognition on the twin: the operations, in botocore's ``rekognition`` wire format.

DetectLabels runs EfficientNet-Lite0 on the image (:mod:`.labels`); Custom Labels (projects,
datasets, versions) trains and serves models for real (:mod:`.custom`). Operations of the model
that the twin does not implement (faces, text, video, ...) answer ``NotImplemented``.
"""

from __future__ import annotations

from ...core.service import TwinService
from . import images, labels


class RekognitionService(TwinService):
    model = "rekognition"

    def reset(self) -> None:
        from .custom import CustomLabels

        if getattr(self, "custom", None) is not None:
            self.custom.shutdown()
        self.custom = CustomLabels(self.twin)

    def state(self) -> dict:
        return self.custom.state()

    def warm_up(self) -> None:
        labels.taxonomy()

    def shutdown(self) -> None:
        self.custom.shutdown()

    # ---- DetectLabels ----------------------------------------------------------------------
    def detect_labels(self, ctx, params):
        features = labels.check_features(params.get("Features"))
        for key in ("MaxLabels", "MinConfidence"):
            value = params.get(key)
            if value is not None and (value < 0 or (key == "MinConfidence" and value > 100)):
                raise images.invalid_parameter(f"{key} is out of range: {value}.")
        img, _source = images.load(self.twin, params.get("Image"))
        out = {"LabelModelVersion": labels.MODEL_VERSION}
        if "GENERAL_LABELS" in features:
            out["Labels"] = labels.detect(img, params)
        else:
            out["Labels"] = []
        if "IMAGE_PROPERTIES" in features:
            out["ImageProperties"] = labels.image_properties(img)
        return out

    # ---- Custom Labels (see .custom) ---------------------------------------------------------
    def __getattr__(self, name):
        custom = self.__dict__.get("custom")
        if custom is not None and name in CUSTOM_OPERATIONS:
            return getattr(custom, name)
        raise AttributeError(name)


CUSTOM_OPERATIONS = {
    "create_project", "describe_projects", "delete_project",
    "create_dataset", "describe_dataset", "delete_dataset", "list_dataset_entries",
    "list_dataset_labels", "update_dataset_entries", "distribute_dataset_entries",
    "create_project_version", "describe_project_versions", "start_project_version",
    "stop_project_version", "delete_project_version", "detect_custom_labels",
}  # fmt: skip
