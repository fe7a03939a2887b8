"""aws_ml_provider.utils.s3: URI splitting (no URL parsing of keys) and the JSON/text helpers
against the twin's S3 over real HTTP."""

from __future__ import annotations

import pytest
from aws_ml_provider.utils import s3 as s3_utils


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/a/b.json", ("bucket", "a/b.json")),
        ("s3://bucket/", ("bucket", "")),
        ("s3://bucket", ("bucket", "")),
        ("s3://bucket/receipt #1?.jpg", ("bucket", "receipt #1?.jpg")),
    ],
)
def test_split_uri_keeps_the_whole_key(uri, expected):
    assert s3_utils.split_uri(uri) == expected


@pytest.mark.parametrize("uri", ["https://bucket/key", "s3:///key", "", None])
def test_split_uri_names_the_bad_value(uri):
    with pytest.raises(ValueError, match="manifest URI"):
        s3_utils.split_uri(uri, what="manifest URI")


def test_object_uri_needs_a_key_and_prefix_gets_a_slash():
    with pytest.raises(ValueError, match="output URI 's3://b/'"):
        s3_utils.split_object_uri("s3://b/", what="output URI")
    assert s3_utils.split_prefix("s3://b/in") == ("b", "in/")
    assert s3_utils.split_prefix("s3://b") == ("b", "")


def test_json_text_and_exists_round_trip_on_s3(twin):
    s3 = twin.client("s3")
    s3.create_bucket(Bucket="s3-utils-test")
    uri = "s3://s3-utils-test/dir/doc #1.json"
    assert not s3_utils.exists(s3, uri)
    assert s3_utils.read_json(s3, uri, default={"missing": True}) == {"missing": True}
    assert s3_utils.write_json(s3, uri, {"a": 1, "when": object.__name__}) == uri
    assert s3_utils.exists(s3, uri)
    assert s3_utils.read_json(s3, uri) == {"a": 1, "when": "object"}
    head = s3.head_object(Bucket="s3-utils-test", Key="dir/doc #1.json")
    assert head["ContentType"] == "application/json"
    s3_utils.put_text(s3, "s3://s3-utils-test/t.csv", "x,ü\n", "text/csv")
    assert s3_utils.read_bytes(s3, "s3://s3-utils-test/t.csv").decode() == "x,ü\n"
    with pytest.raises(Exception) as err:
        s3_utils.read_json(s3, "s3://s3-utils-test/absent.json")
    assert s3_utils.is_not_found(err.value)


def test_stage_files_types_each_file_by_its_extension_and_uploads_once(twin, tmp_path):
    s3 = twin.client("s3")
    s3_utils.ensure_buckets(s3, ["s3://stage-files-test/in/"])
    photo, page = tmp_path / "cat.jpg", tmp_path / "page.png"
    photo.write_bytes(b"\xff\xd8\xff\xe0 jpeg bytes")
    page.write_bytes(b"\x89PNG\r\n\x1a\n png bytes")
    files = [(photo, "s3://stage-files-test/in/cat.jpg"), (page, "s3://stage-files-test/in/page.png")]
    assert s3_utils.stage_files(s3, files) == {"uploaded": 2, "already_there": 0}
    types = {
        key: s3.head_object(Bucket="stage-files-test", Key=f"in/{key}")["ContentType"]
        for key in ("cat.jpg", "page.png")
    }
    assert types == {"cat.jpg": "image/jpeg", "page.png": "image/png"}
    assert s3_utils.stage_files(s3, files) == {"uploaded": 0, "already_there": 2}
    page.write_bytes(b"\x89PNG\r\n\x1a\n other bytes")  # changed bytes are uploaded again
    assert s3_utils.stage_files(s3, files) == {"uploaded": 1, "already_there": 1}


def test_ensure_buckets_creates_only_what_head_bucket_does_not_find(twin):
    from botocore.config import Config
    from botocore.exceptions import ClientError

    s3 = twin.client("s3", config=Config(retries={"max_attempts": 1, "mode": "standard"}))
    s3.create_bucket(Bucket="ensure-existing")
    s3.put_object(Bucket="ensure-existing", Key="kept", Body=b"x")
    assert s3_utils.ensure_buckets(s3, ["s3://ensure-new/a/", "s3://ensure-existing/b"]) == [
        "ensure-existing",
        "ensure-new",
    ]
    s3.head_bucket(Bucket="ensure-new")
    assert s3.get_object(Bucket="ensure-existing", Key="kept")["Body"].read() == b"x"
    # an answer that is not "absent" (here a 5xx) is raised, not taken as a reason to create
    twin.set_faults("s3:HeadBucket:error=1")
    try:
        with pytest.raises(ClientError):
            s3_utils.ensure_buckets(s3, ["s3://ensure-after-error/"])
    finally:
        twin.control("faults", "DELETE")
    assert "ensure-after-error" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
