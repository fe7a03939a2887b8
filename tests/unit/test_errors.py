"""aws_ml_provider.utils.errors: the code and message of real AWS errors from the twin (over HTTP,
botocore's parsing), and of exceptions that are not AWS errors."""

from __future__ import annotations

import pytest
from aws_ml_provider.utils.errors import error_code, error_message
from botocore.exceptions import ClientError, EndpointConnectionError


def _raised(call) -> BaseException:
    with pytest.raises(ClientError) as info:
        call()
    return info.value


def test_code_and_message_of_a_json_protocol_error(sm):
    err = _raised(lambda: sm.describe_endpoint(EndpointName="no-such-endpoint-errors-test"))
    assert error_code(err) == "ValidationException"
    assert "no-such-endpoint-errors-test" in error_message(err)


def test_code_of_a_head_request_is_its_status_and_its_message_is_empty(s3, bucket):
    err = _raised(lambda: s3.head_object(Bucket=bucket, Key="absent"))
    assert error_code(err) == "404"
    assert error_message(err) == err.response["Error"].get("Message", "")


def test_code_and_message_of_a_rest_xml_error(s3, bucket):
    err = _raised(lambda: s3.get_object(Bucket=bucket, Key="absent"))
    assert (error_code(err), error_message(err)) == ("NoSuchKey", "The specified key does not exist.")


@pytest.mark.parametrize(
    "exc",
    [ValueError("x"), EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), KeyError("Error")],
)
def test_anything_else_has_no_code_and_no_message(exc):
    assert error_code(exc) is None and error_message(exc) == ""
