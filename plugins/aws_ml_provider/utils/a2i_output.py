"""Read Amazon A2I's human loop output from S3 and merge the workers' answers.

A2I writes one JSON document per completed loop (``HumanLoopOutput.OutputS3Uri``)::

    {"flowDefinitionArn": ..., "humanLoopName": ..., "inputContent": {...},
     "humanAnswers": [{"answerContent": {...}, "workerId": ..., "submissionTime": ...,
                       "timeSpentInSeconds": ..., "acceptanceTime": ..., "workerMetadata": {...}}]}
"""

from __future__ import annotations

import json
from typing import Any

from .s3 import read_bytes


def read_human_loop_output(s3_hook_or_client: Any, output_s3_uri: str) -> dict[str, Any]:
    """The output JSON at ``output_s3_uri``, read with an ``S3Hook`` or a boto3 S3 client
    (:func:`aws_ml_provider.utils.s3.read_bytes`). Raises ``ValueError`` naming the URI when it is not an A2I output."""
    text = read_bytes(s3_hook_or_client, output_s3_uri, what="human loop output URI")
    try:
        output = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"human loop output {output_s3_uri} is not JSON: {exc}") from exc
    if not isinstance(output, dict) or not isinstance(output.get("humanAnswers"), list):
        raise ValueError(f"human loop output {output_s3_uri} has no humanAnswers list")
    return output


def answers(output: dict[str, Any]) -> dict[str, Any]:
    """The workers' ``answerContent`` dicts merged in submission order (for a key answered by
    several workers, the last submission wins; see :func:`answers_by_worker` for each one's)."""
    merged: dict[str, Any] = {}
    for answer in sorted(output.get("humanAnswers") or [], key=lambda a: str(a.get("submissionTime") or "")):
        content = answer.get("answerContent") or {}
        if isinstance(content, dict):
            merged.update(content)
    return merged


def answers_by_worker(output: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{workerId: answerContent}`` for every answer (a missing worker id reads ``worker-N``)."""
    return {
        str(a.get("workerId") or f"worker-{i}"): a.get("answerContent") or {}
        for i, a in enumerate(output.get("humanAnswers") or [])
    }
