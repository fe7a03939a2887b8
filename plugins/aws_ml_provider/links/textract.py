"""Console links for Amazon Textract. The console has no page per asynchronous job, so tasks link
to the Textract console and to the S3 object holding the result the operator wrote."""

from __future__ import annotations

from urllib.parse import quote

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink


class TextractConsoleLink(BaseAwsLink):
    """Link to the Amazon Textract console of the region."""

    name = "Textract Console"
    key = "textract_console"
    format_str = BASE_AWS_CONSOLE_LINK + "/textract/home?region={region_name}#/"


class TextractResultLink(BaseAwsLink):
    """Link to the S3 console page of the JSON result the Textract operator wrote."""

    name = "Textract Result (S3)"
    key = "textract_result"
    format_str = "https://s3.console.{aws_domain}/s3/object/{bucket}?region={region_name}&prefix={key}"

    def format_link(self, **kwargs) -> str:
        if "key" in kwargs:
            kwargs = {**kwargs, "key": quote(str(kwargs["key"]), safe="")}
        return super().format_link(**kwargs)
