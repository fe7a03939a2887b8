"""Provider metadata for Airflow's ProvidersManager (entry point ``apache_airflow_provider``), in the
shape ``apache-airflow-providers-amazon``'s ``get_provider_info`` returns. Imports nothing."""

from __future__ import annotations

_P = "aws_ml_provider"


def get_provider_info() -> dict:
    return {
        "package-name": "aws-ml-provider",
        "name": "AWS ML",
        "description": "Amazon Textract, Amazon Rekognition and Amazon Augmented AI (A2I) hooks, operators, sensors, "
        "deferrable triggers, custom waiters and console links, on top of "
        "``apache-airflow-providers-amazon``.\n",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "Amazon Textract",
                "external-doc-url": "https://aws.amazon.com/textract/",
                "tags": ["aws"],
            },
            {
                "integration-name": "Amazon Augmented AI (A2I)",
                "external-doc-url": "https://aws.amazon.com/augmented-ai/",
                "tags": ["aws"],
            },
            {
                "integration-name": "Amazon Rekognition",
                "external-doc-url": "https://aws.amazon.com/rekognition/",
                "tags": ["aws"],
            },
        ],
        "operators": [
            {
                "integration-name": "Amazon Textract",
                "python-modules": [f"{_P}.operators.textract", f"{_P}.operators.expense"],
            },
            {"integration-name": "Amazon Augmented AI (A2I)", "python-modules": [f"{_P}.operators.a2i"]},
            {"integration-name": "Amazon Rekognition", "python-modules": [f"{_P}.operators.rekognition"]},
        ],
        "sensors": [
            {"integration-name": "Amazon Augmented AI (A2I)", "python-modules": [f"{_P}.sensors.a2i"]},
        ],
        "hooks": [
            {"integration-name": "Amazon Textract", "python-modules": [f"{_P}.hooks.textract"]},
            {"integration-name": "Amazon Augmented AI (A2I)", "python-modules": [f"{_P}.hooks.a2i"]},
            {"integration-name": "Amazon Rekognition", "python-modules": [f"{_P}.hooks.rekognition"]},
        ],
        "triggers": [
            {"integration-name": "Amazon Textract", "python-modules": [f"{_P}.triggers.textract"]},
            {"integration-name": "Amazon Augmented AI (A2I)", "python-modules": [f"{_P}.triggers.a2i"]},
            {"integration-name": "Amazon Rekognition", "python-modules": [f"{_P}.triggers.rekognition"]},
        ],
        # the ``aws`` connection type of apache-airflow-providers-amazon serves every hook here
        "connection-types": [],
        "extra-links": [
            f"{_P}.links.textract.TextractConsoleLink",
            f"{_P}.links.textract.TextractResultLink",
            f"{_P}.links.a2i.A2IFlowDefinitionLink",
            f"{_P}.links.a2i.A2IHumanLoopLink",
            f"{_P}.links.a2i.A2IHumanTaskUiLink",
            f"{_P}.links.a2i.A2IReviewPageLink",
            f"{_P}.links.s3.S3ReportLink",
            f"{_P}.links.rekognition.RekognitionProjectLink",
            f"{_P}.links.rekognition.RekognitionModelLink",
            f"{_P}.links.rekognition.RekognitionConsoleLink",
        ],
    }
