"""The twin's S3 object viewer ``GET /_twin/s3/<bucket>/<key>?token=``: what a browser gets for an
object a task wrote (the churn report), over real HTTP from a real twin; refused without the token."""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import quote

import pytest


def fetch(url: str, headers: dict | None = None, method: str = "GET"):
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def test_object_is_served_with_its_content_type_only_with_the_token(twin, bucket):
    s3 = twin.client("s3")
    page = b"<!doctype html><html><body><h1>report</h1><p>AUC 0.9312</p></body></html>"
    key = "runs/a b/evaluation/report.html"  # a key with a space: the URL path is percent-encoded
    s3.put_object(Bucket=bucket, Key=key, Body=page, ContentType="text/html")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    s3.put_object(Bucket=bucket, Key="runs/roc.png", Body=png, ContentType="image/png")

    status, headers, body = fetch(twin.viewer_url(bucket, key))
    assert status == 200 and body == page
    assert headers["Content-Type"].startswith("text/html")
    assert "sandbox" in headers["Content-Security-Policy"]
    status, headers, body = fetch(twin.viewer_url(bucket, "runs/roc.png"))
    assert (status, headers["Content-Type"], body) == (200, "image/png", png)
    # the token may come as a header instead of the query string
    url = f"{twin.url}/_twin/s3/{bucket}/runs/roc.png"
    assert fetch(url, {"X-Twin-Viewer-Token": twin.viewer_token})[0] == 200

    # without the token, with a wrong one, or with the A2I review token: 403 and no content
    base = f"{twin.url}/_twin/s3/{bucket}/{quote(key)}"
    review_token = twin.review_url.split("token=", 1)[1]
    for url in (
        base,
        f"{base}?token=",
        f"{base}?token=wrong{twin.viewer_token}",
        f"{base}?token={review_token}",
    ):
        status, _, body = fetch(url)
        assert status == 403, url
        assert b"AUC" not in body
    # and an unsigned S3 GET of the same object is refused too (the reason for the viewer)
    assert fetch(f"{twin.url}/{bucket}/runs/roc.png")[0] == 403


def test_missing_object_is_404_and_writes_are_refused(twin, bucket):
    status, _, _ = fetch(twin.viewer_url(bucket, "no/such/key.html"))
    assert status == 404
    assert fetch(twin.viewer_url(f"{bucket}-absent", "x.html"))[0] == 404
    status, _, _ = fetch(twin.viewer_url(bucket, "x.html"), method="PUT")
    assert status == 405


@pytest.mark.parametrize("path", ["/_twin/s3/", "/_twin/s3/only-bucket"])
def test_path_without_bucket_and_key_is_400(twin, path):
    assert fetch(f"{twin.url}{path}?token={twin.viewer_token}")[0] == 400
