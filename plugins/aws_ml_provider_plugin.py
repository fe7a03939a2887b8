"""Registers aws_ml_provider's operator extra links with Airflow as a plugin.

On MWAA the provider ships in plugins.zip (``plugins/`` is on sys.path) instead of being
pip-installed, so ProvidersManager does not see its ``extra-links``; the webserver / API server
needs them registered to render the console links of serialized tasks. When the provider is
pip-installed too, registering the same link classes twice is harmless.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from aws_ml_provider.links.a2i import (
    A2IFlowDefinitionLink,
    A2IHumanLoopLink,
    A2IHumanTaskUiLink,
    A2IReviewPageLink,
)
from aws_ml_provider.links.rekognition import (
    RekognitionConsoleLink,
    RekognitionModelLink,
    RekognitionProjectLink,
)
from aws_ml_provider.links.s3 import S3ReportLink
from aws_ml_provider.links.textract import TextractConsoleLink, TextractResultLink


class AwsMlProviderPlugin(AirflowPlugin):
    name = "aws_ml_provider"
    operator_extra_links = [
        TextractConsoleLink(),
        TextractResultLink(),
        A2IFlowDefinitionLink(),
        A2IHumanLoopLink(),
        A2IHumanTaskUiLink(),
        A2IReviewPageLink(),
        S3ReportLink(),
        RekognitionProjectLink(),
        RekognitionModelLink(),
        RekognitionConsoleLink(),
    ]
