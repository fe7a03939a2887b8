"""aws_twin: an offline twin of the AWS services the workflows use, doing the work for real.

One WSGI server speaks the AWS wire protocols. Glue, SageMaker (training, hosting, registry,
runtime), Textract and A2I are served by the twin's own handlers (``aws_twin.services``); every
other request (S3, IAM, STS, DynamoDB, CloudWatch Logs, ...) falls through to moto's server app.
"""

__version__ = "0.1.0"
