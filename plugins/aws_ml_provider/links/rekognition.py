"""Console links for Amazon Rekognition Custom Labels (projects and their models)."""

from __future__ import annotations

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

REKOGNITION_CONSOLE = BASE_AWS_CONSOLE_LINK + "/rekognition/custom-labels?region={region_name}#"


class RekognitionProjectLink(BaseAwsLink):
    """Link to a Custom Labels project (its datasets and models)."""

    name = "Rekognition Custom Labels Project"
    key = "rekognition_project"
    format_str = REKOGNITION_CONSOLE + "/projects/{project_name}"


class RekognitionModelLink(BaseAwsLink):
    """Link to a Custom Labels model (a project version): evaluation, status, start / stop."""

    name = "Rekognition Custom Labels Model"
    key = "rekognition_model"
    format_str = REKOGNITION_CONSOLE + "/projects/{project_name}/models/{version_name}"


class RekognitionConsoleLink(BaseAwsLink):
    """Link to the Rekognition console of the region (label detection has no page per call)."""

    name = "Rekognition Console"
    key = "rekognition_console"
    format_str = BASE_AWS_CONSOLE_LINK + "/rekognition/home?region={region_name}#/"
