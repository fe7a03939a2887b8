"""Exactly-once creates when an answer can be lost.

A create whose request reached AWS but whose answer did not (a connection reset, a 5xx from a
load balancer after the work was done) is retried by botocore, and the retry creates a second
resource (a model package version, a Glue run) or fails on the first one ("already exists",
"concurrent runs exceeded"). The operators here send such a create once, with botocore's retries
off for that one operation (:func:`single_attempt`), and when it fails with an error a retry could
have met (:func:`is_transient_failure`), look the resource up by its deterministic key before
sending it again: the first request may have done the work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from botocore.config import Config
from botocore.exceptions import ClientError

from ..triggers.base import CONNECTION_ERRORS, is_transient

T = TypeVar("T")
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


def is_transient_failure(exc: BaseException) -> bool:
    """An error a retry of the same request might not meet: connection errors, 5xx, throttling."""
    if isinstance(exc, ClientError):
        return is_transient(
            exc.response.get("Error"), exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        )
    return isinstance(exc, CONNECTION_ERRORS)


def _client_without_retries(hook: Any, client: Any) -> Any:
    """``hook.get_client_type(config=NO_RETRIES)`` (the provider's own client: same session,
    endpoint, verify and config but the retries), built with ``client``'s botocore data loader: the
    new session's own loader would parse the service's API model again (SageMaker's: 0.4-0.6 s on
    a busy 2-core machine; 0.04 s with the loader shared)."""
    loader = getattr(client, "_loader", None)
    if loader is None:  # not a botocore client (a test double): the provider's path as it is
        return hook.get_client_type(config=NO_RETRIES)
    get_session = hook.get_session

    def session_sharing_the_loader(*args: Any, **kwargs: Any) -> Any:
        session = get_session(*args, **kwargs)
        botocore_session = getattr(session, "_session", session)  # boto3 Session -> botocore's
        botocore_session.register_component("data_loader", loader)
        return session

    hook.get_session = session_sharing_the_loader  # on this hook only, for this one client
    try:
        return hook.get_client_type(config=NO_RETRIES)
    finally:
        del hook.get_session


@contextmanager
def single_attempt(hook: Any, *operations: str) -> Iterator[None]:
    """Within the block, the hook's client (``hook.conn``, ``hook.get_conn()``) sends ``operations``
    (boto3 method names, e.g. ``create_model_package``) once, without botocore's retries; every
    other call keeps the client's retries. (The methods are shadowed on the client instance, so it
    stays the botocore client the hook's other properties expect.)"""
    client = hook.conn
    single = _client_without_retries(hook, client)
    for name in operations:
        setattr(client, name, getattr(single, name))
    try:
        yield
    finally:
        for name in operations:
            client.__dict__.pop(name, None)


def create_once(
    lookup: Callable[[], T | None],
    create: Callable[[], T],
    what: str,
    log: Any,
    attempts: int = 5,
    delay: float = 2.0,
) -> tuple[T, bool]:
    """``(resource, created)``: ``lookup()`` first; else ``create()`` (sent once); after a transient
    failure of the create, look up again (the create may have happened) before the next attempt."""
    for attempt in range(1, attempts + 1):
        existing = lookup()
        if existing is not None:
            if attempt > 1:
                log.warning("%s: the create's answer was lost, but it was done: using what it created.", what)
            return existing, False
        try:
            return create(), True
        except Exception as exc:
            if not is_transient_failure(exc) or attempt == attempts:
                raise
            log.warning(
                "%s: no answer to the create (%s: %s); looking it up before sending it again.",
                what,
                type(exc).__name__,
                exc,
            )
            time.sleep(min(delay * 2 ** (attempt - 1), 30))
    raise AssertionError("unreachable")
