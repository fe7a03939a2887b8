"""aws_twin: an offline twin of the AWS services the workflows use, doing the work for real.

One WSGI server speaks the AWS wire protocols. Glue, SageMaker (training, hosting, registry,
runtime), Textract and A2I are served by the twin's own handlers (``aws_twin.services``); every
other request (S3, IAM, STS, DynamoDB, CloudWatch Logs, ...) falls through to moto's server app.
"""

import importlib.util
import sys
from pathlib import Path

__version__ = "0.1.0"

# The twin shares pure-Python tables with the provider (``aws_ml_provider.utils``). Installed, the
# distribution has both packages; run from a source checkout without installing (docker-compose's
# aws-twin service mounts the repository on PYTHONPATH), the provider is found where Airflow finds
# it: in plugins/.
_PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
if importlib.util.find_spec("aws_ml_provider") is None and (_PLUGINS / "aws_ml_provider").is_dir():
    sys.path.append(str(_PLUGINS))
