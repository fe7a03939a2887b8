"""Fault injection on the twin: error rates answer ThrottlingException / 5xx at the configured rate,
an rps quota throttles a burst beyond it, a standard-retry boto3 client gets through, and rules
come from ``--fault``, ``AWS_TWIN_FAULTS`` and ``POST /_twin/faults``."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from aws_twin.testing import start_twin

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
OP = "sagemaker:ListModelPackageGroups"  # cheap: the twin answers it from memory


@pytest.fixture
def faults(twin):
    yield twin
    twin.control("faults", "DELETE")


def _outcomes(client, calls: int) -> Counter:
    seen: Counter = Counter()
    for _ in range(calls):
        try:
            client.list_model_package_groups(MaxResults=1)
            seen["ok"] += 1
        except ClientError as exc:
            seen[exc.response["Error"]["Code"]] += 1
    return seen


def test_throttle_and_error_rates(faults):
    faults.set_faults(f"{OP}:throttle=0.3,error=0.1")
    client = faults.client("sagemaker", config=NO_RETRIES)
    calls = 400
    seen = _outcomes(client, calls)
    assert set(seen) <= {"ok", "ThrottlingException", "ServiceUnavailable"}, seen
    # binomial: sd of the throttled share is 0.023 at n=400; +-0.09 is about 4 sd
    assert 0.21 <= seen["ThrottlingException"] / calls <= 0.39, seen
    assert 0.04 <= seen["ServiceUnavailable"] / calls <= 0.16, seen
    counters = faults.control("faults")["counters"]
    assert counters["throttled"] == seen["ThrottlingException"]
    assert counters["errors"] == seen["ServiceUnavailable"]
    # other operations of the service are untouched
    faults.client("sagemaker", config=NO_RETRIES).list_endpoints()


def test_times_counts_the_requests_a_rule_acted_on(faults):
    """Rules apply in order; ``times=N`` is spent on the requests the rule itself decided: a
    throttling rule for two requests, then an error rule for one, give throttled, throttled, 5xx,
    then nothing (the error rule is not used up by the two requests the first rule took)."""
    faults.set_faults(f"{OP}:throttle=1,times=2", f"{OP}:error=1,times=1")
    client = faults.client("sagemaker", config=NO_RETRIES)
    seen = [next(iter(_outcomes(client, 1))) for _ in range(4)]
    assert seen == ["ThrottlingException", "ThrottlingException", "ServiceUnavailable", "ok"], seen
    counters = faults.control("faults")["counters"]
    assert (counters["throttled"], counters["errors"]) == (2, 1)


def test_rps_quota_throttles_a_burst(faults):
    faults.set_faults(f"{OP}:rps=5")
    client = faults.client("sagemaker", config=NO_RETRIES)
    client.list_endpoints()  # warm the connection outside the quota's operation
    started = time.monotonic()
    seen = _outcomes(client, 40)
    elapsed = time.monotonic() - started
    allowed = 5 + 5 * elapsed + 1  # the burst, what refilled during it, rounding
    assert set(seen) <= {"ok", "ThrottlingException"}, seen
    assert 5 <= seen["ok"] <= allowed, (seen, elapsed)
    assert seen["ThrottlingException"] >= 40 - allowed
    time.sleep(0.5)  # the bucket refills at 5 tokens/s
    assert _outcomes(client, 2)["ok"] == 2


def test_standard_retry_client_gets_through(faults):
    # a burst beyond the quota is certain to be throttled; the error rate adds random throttling
    faults.set_faults(f"{OP}:rps=3", f"{OP}:throttle=0.2")
    client = faults.client("sagemaker", config=Config(retries={"mode": "standard", "max_attempts": 10}))
    seen = _outcomes(client, 6)
    assert seen == Counter(ok=6)
    assert faults.control("faults")["counters"]["throttled"] > 0  # it did meet throttling, and retried


def test_rules_from_cli_and_environment(tmp_path):
    running = start_twin(
        0,
        "--fault",
        "sagemaker:ListEndpoints:throttle=1",
        env={"AWS_TWIN_FAULTS": "sts:*:error=1;s3:GetObject:rps=2"},
        log_path=str(tmp_path / "twin.log"),
    )
    try:
        rules = running.control("faults")["rules"]
        assert [(r["service"], r["operation"]) for r in rules] == [
            ("sagemaker", "ListEndpoints"),
            ("sts", "*"),
            ("s3", "GetObject"),
        ]
        assert rules[0]["throttle_rate"] == 1.0 and rules[2]["rps"] == 2.0
        with pytest.raises(ClientError) as throttled:
            running.client("sagemaker", config=NO_RETRIES).list_endpoints()
        assert throttled.value.response["Error"]["Code"] == "ThrottlingException"
        with pytest.raises(ClientError) as unavailable:
            running.client("sts", config=NO_RETRIES).get_caller_identity()
        assert unavailable.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        running.client("sagemaker", config=NO_RETRIES).list_training_jobs()  # other operations pass
    finally:
        running.stop()
