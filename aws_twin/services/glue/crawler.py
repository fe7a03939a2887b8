"""A Glue crawler's real work: read the objects under its S3 targets, infer their schema, write the
tables (and partitions) to the Data Catalog the rest of the twin uses (moto's, through the twin).

No wire format here; :mod:`.crawlers` keeps the crawler records and calls :func:`crawl`.

What it does, after Glue's built-in classifiers (the rules are documented in docs/glue_crawlers.md):

- **Objects**: every object under the target path, except folder markers, empty objects, names
  starting with ``_`` or ``.`` (``_SUCCESS``, ``.crc``) and keys matching an ``Exclusions`` glob.
  ``SampleSize`` caps the files read per folder.
- **Formats**, by content: Parquet (``PAR1`` magic; schema from the footer, pyarrow), JSON (one
  object per line, or one array / object document), CSV (delimiter ``,`` ``|`` tab ``;`` or
  ``\\x01``, at least two columns, the same count on every line). ``.gz`` objects are decompressed.
  Anything else is logged as unclassified and skipped.
- **Tables**: files right under a folder form one table named after that folder (the target's own
  folder for files right under it); ``key=value`` folders below a table's folder are its partitions
  (partition keys of type string); other sub-folders are tables of their own. Names are lower-cased,
  characters other than ``[a-z0-9_]`` become ``_``, ``TablePrefix`` goes in front.
- **Types**: CSV ``boolean``, ``bigint``, ``double``, ``string``; JSON ``boolean``, ``int``
  (32-bit), ``bigint``, ``double``, ``string``, ``array<..>``, ``struct<..>``; Parquet its own types
  mapped to Hive's. Files of one table are merged column by column (int < bigint < double; anything
  else mixed -> string). CSV's first line is a header when all its fields are strings and some
  data column is not (Glue's rule); else the columns are ``col0``, ``col1``...
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import io
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("aws_twin.glue")

#: bytes read from a CSV / JSON object to infer its schema (Glue reads the first MB too)
SAMPLE_BYTES = 1_048_576
CSV_DELIMITERS = (",", "|", "\t", ";", "\x01")
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_BOOL = {"true", "false"}

LAZY_SIMPLE = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
OPEN_CSV = "org.apache.hadoop.hive.serde2.OpenCSVSerde"
JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
TEXT_INPUT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"


class CrawlError(Exception):
    """The crawl cannot go on (a target bucket missing, ...): LastCrawl FAILED with this message."""


class Cancelled(Exception):
    """StopCrawler was called."""


def parse_target_path(path: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` or ``bucket/prefix`` -> (bucket, prefix without the slashes around)."""
    text = re.sub(r"^s3a?://", "", (path or "").strip())
    bucket, _, prefix = text.partition("/")
    if not bucket:
        raise CrawlError(f"S3 target path {path!r} names no bucket")
    return bucket, prefix.strip("/")


def table_name(raw: str, prefix: str = "") -> str:
    return (prefix + re.sub(r"[^a-z0-9_]", "_", raw.lower()))[:255]


# ---- types ----------------------------------------------------------------------------------
_NUMERIC_RANK = {"int": 0, "bigint": 1, "double": 2}


def merge_types(a: str | None, b: str | None) -> str | None:
    """The type both values fit: int < bigint < double; structs merge member by member."""
    if a is None:
        return b
    if b is None or a == b:
        return a
    if a in _NUMERIC_RANK and b in _NUMERIC_RANK:
        return max(a, b, key=_NUMERIC_RANK.__getitem__)
    if a.startswith("struct<") and b.startswith("struct<"):
        members = dict(_struct_members(a))
        for name, kind in _struct_members(b):
            members[name] = merge_types(members.get(name), kind)
        return "struct<" + ",".join(f"{n}:{t}" for n, t in members.items()) + ">"
    if a.startswith("array<") and b.startswith("array<"):
        return f"array<{merge_types(a[6:-1], b[6:-1])}>"
    return "string"


def _struct_members(kind: str) -> list[tuple[str, str]]:
    body, members, depth, start = kind[7:-1], [], 0, 0
    for i, ch in enumerate(body + ","):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "," and depth == 0:
            name, _, member = body[start:i].partition(":")
            members.append((name, member))
            start = i + 1
    return members


def csv_value_type(value: str) -> str | None:
    """The Glue CSV classifier's type of one non-empty cell (None for an empty one)."""
    text = value.strip()
    if not text:
        return None
    if text.lower() in _BOOL:
        return "boolean"
    if re.fullmatch(r"[+-]?\d+", text):
        return "bigint" if _INT64[0] <= int(text) <= _INT64[1] else "string"
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", text):
        return "double"
    return "string"


def json_value_type(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        if _INT32[0] <= value <= _INT32[1]:
            return "int"
        return "bigint" if _INT64[0] <= value <= _INT64[1] else "string"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        element = None
        for item in value:
            element = merge_types(element, json_value_type(item))
        return f"array<{element or 'string'}>"
    if isinstance(value, dict):
        members = [(_column(k), json_value_type(v) or "string") for k, v in value.items()]
        return "struct<" + ",".join(f"{n}:{t}" for n, t in members) + ">"
    return "string"


def _column(name: str) -> str:
    return str(name).strip().lower()


# ---- one file -------------------------------------------------------------------------------
@dataclass
class FileSchema:
    classification: str  # csv | json | parquet
    columns: list[tuple[str, str]]  # (name, type)
    records: int
    size: int
    serde: dict[str, Any] = field(default_factory=dict)  # SerdeInfo
    parameters: dict[str, str] = field(default_factory=dict)  # classification-specific table parameters
    compression: str = "none"


def _records_estimate(sample: bytes, size: int, lines: int, header: bool) -> int:
    """Records in the file: counted when the sample is the whole file, else extrapolated."""
    data_lines = max(0, lines - (1 if header else 0))
    if len(sample) >= size or not sample:
        return data_lines
    return int(data_lines * size / len(sample))


def infer_parquet(data: bytes, size: int) -> FileSchema:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
    except Exception as exc:  # a truncated or corrupt file
        raise ValueError(f"not a readable Parquet file: {exc}") from exc
    schema = parquet.schema_arrow
    columns = [(_column(f.name), arrow_to_hive(f.type)) for f in schema]
    codecs = {
        parquet.metadata.row_group(i).column(j).compression.lower()
        for i in range(parquet.metadata.num_row_groups)
        for j in range(parquet.metadata.num_columns)
    }
    compression = next(iter(codecs)) if len(codecs) == 1 else "none"
    return FileSchema(
        "parquet",
        columns,
        parquet.metadata.num_rows,
        size,
        serde={"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
        compression="none" if compression == "uncompressed" else compression,
    )


def arrow_to_hive(kind) -> str:
    import pyarrow as pa
    import pyarrow.types as t

    if t.is_boolean(kind):
        return "boolean"
    if t.is_int8(kind) or t.is_uint8(kind):
        return "tinyint"
    if t.is_int16(kind) or t.is_uint16(kind):
        return "smallint"
    if t.is_int32(kind):
        return "int"
    if t.is_uint32(kind) or t.is_int64(kind) or t.is_uint64(kind):
        return "bigint"
    if t.is_float16(kind) or t.is_float32(kind):
        return "float"
    if t.is_float64(kind):
        return "double"
    if t.is_decimal(kind):
        return f"decimal({kind.precision},{kind.scale})"
    if t.is_string(kind) or t.is_large_string(kind):
        return "string"
    if t.is_binary(kind) or t.is_large_binary(kind) or t.is_fixed_size_binary(kind):
        return "binary"
    if t.is_date(kind):
        return "date"
    if t.is_timestamp(kind):
        return "timestamp"
    if t.is_list(kind) or t.is_large_list(kind) or t.is_fixed_size_list(kind):
        return f"array<{arrow_to_hive(kind.value_type)}>"
    if t.is_map(kind):
        return f"map<{arrow_to_hive(kind.key_type)},{arrow_to_hive(kind.item_type)}>"
    if t.is_struct(kind):
        members = [kind.field(i) for i in range(kind.num_fields)]
        return "struct<" + ",".join(f"{_column(f.name)}:{arrow_to_hive(f.type)}" for f in members) + ">"
    if t.is_dictionary(kind):
        return arrow_to_hive(kind.value_type)
    if isinstance(kind, pa.DataType) and t.is_null(kind):
        return "string"
    return "string"


def infer_json(text: str, sample: bytes, size: int) -> FileSchema | None:
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    records: list[Any] = []
    lines = [line for line in text.splitlines() if line.strip()]
    complete = len(sample) >= size
    try:  # one document (an array of objects, or one object)
        document = json.loads(stripped)
        records = document if isinstance(document, list) else [document]
        count = len(records)
    except ValueError:
        # JSON lines; the last line of a partial sample may be cut
        usable = lines if complete else lines[:-1]
        try:
            records = [json.loads(line) for line in usable]
        except ValueError:
            return None
        count = _records_estimate(sample, size, len(lines), False)
    objects = [r for r in records if isinstance(r, dict)]
    if not objects or len(objects) != len(records):
        return None
    columns: dict[str, str | None] = {}
    for record in objects:
        for key, value in record.items():
            name = _column(key)
            columns[name] = merge_types(columns.get(name), json_value_type(value))
    return FileSchema(
        "json",
        [(n, t or "string") for n, t in columns.items()],
        count,
        size,
        serde={"SerializationLibrary": JSON_SERDE, "Parameters": {"paths": ",".join(columns)}},
        parameters={"typeOfData": "file"},
    )


def _split_rows(text: str, delimiter: str, complete: bool) -> list[list[str]]:
    lines = text.splitlines()
    if not complete and lines:
        lines = lines[:-1]  # the sample may end mid-line
    body = "\n".join(line for line in lines if line.strip())
    return list(csv.reader(io.StringIO(body), delimiter=delimiter))


def infer_csv(text: str, sample: bytes, size: int) -> FileSchema | None:
    complete = len(sample) >= size
    best = None
    for delimiter in CSV_DELIMITERS:
        if delimiter not in text:
            continue
        try:
            rows = _split_rows(text, delimiter, complete)
        except csv.Error:
            continue
        widths = {len(r) for r in rows}
        if len(rows) >= 2 and len(widths) == 1 and widths.pop() >= 2:
            best = (delimiter, rows)
            break
    if best is None:
        return None
    delimiter, rows = best
    first, data = rows[0], rows[1:]
    types = [None] * len(first)
    for row in data:
        for i, cell in enumerate(row):
            types[i] = merge_types(types[i], csv_value_type(cell))
    first_types = [csv_value_type(cell) for cell in first]
    header = (
        all(t in ("string", None) for t in first_types)
        and all(cell.strip() for cell in first)
        and len({_column(c) for c in first}) == len(first)
        and any(t not in ("string", None) for t in types)
    )
    if header:
        names = [_column(c) for c in first]
    else:
        names = [f"col{i}" for i in range(len(first))]
        for i, cell in enumerate(first):
            types[i] = merge_types(types[i], csv_value_type(cell))
    quoted = '"' in text
    if quoted:
        serde = {
            "SerializationLibrary": OPEN_CSV,
            "Parameters": {"separatorChar": delimiter, "quoteChar": '"'},
        }
    else:
        serde = {"SerializationLibrary": LAZY_SIMPLE, "Parameters": {"field.delim": delimiter}}
    parameters = {
        "delimiter": delimiter,
        "areColumnsQuoted": "true" if quoted else "false",
        "columnsOrdered": "true",
        "typeOfData": "file",
    }
    if header:
        parameters["skip.header.line.count"] = "1"
    return FileSchema(
        "csv",
        [(n, t or "string") for n, t in zip(names, types, strict=True)],
        _records_estimate(sample, size, len(rows) + (1 if not complete else 0), header),
        size,
        serde=serde,
        parameters=parameters,
    )


def infer_file(head: bytes, size: int, key: str) -> FileSchema | None:
    """The schema of one object from its first bytes (all of them for Parquet); None: unclassified."""
    compression = "none"
    if head[:2] == b"\x1f\x8b":
        try:
            head = gzip.GzipFile(fileobj=io.BytesIO(head)).read(SAMPLE_BYTES)
        except (OSError, EOFError):
            head = _gunzip_prefix(head)
        compression = "gzip"
    if head[:4] == b"PAR1":
        return infer_parquet(head, size)
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # a multi-byte character cut by the sample's end
        text = head[: exc.start].decode("utf-8-sig") if exc.start > len(head) - 4 else None
    if text is None:
        return None
    result = infer_json(text, head, size if compression == "none" else len(head)) or infer_csv(
        text, head, size if compression == "none" else len(head)
    )
    if result is not None:
        result.compression = compression
        result.size = size
    return result


def _gunzip_prefix(data: bytes) -> bytes:
    """What a cut gzip stream decompresses to, as far as it goes."""
    import zlib

    decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
    try:
        return decompressor.decompress(data, SAMPLE_BYTES)
    except zlib.error:
        return b""


# ---- a whole target -------------------------------------------------------------------------
@dataclass
class TablePlan:
    """One table the crawl found: its folder, schema, partitions, and files."""

    name: str
    location: str  # s3://bucket/prefix/
    classification: str
    columns: list[tuple[str, str]]
    partition_keys: list[str]
    partitions: dict[tuple[str, ...], str]  # values -> location
    files: list[FileSchema]
    skipped: list[str] = field(default_factory=list)  # files of another format (logged)

    def table_input(self, crawler_name: str) -> dict[str, Any]:
        first = next(f for f in self.files if f.classification == self.classification)
        records = sum(f.records for f in self.files)
        size = sum(f.size for f in self.files)
        parameters = {
            "classification": self.classification,
            "compressionType": first.compression,
            "recordCount": str(records),
            "averageRecordSize": str(size // records if records else 0),
            "objectCount": str(len(self.files)),
            "sizeKey": str(size),
            "CrawlerSchemaSerializerVersion": "1.0",
            "CrawlerSchemaDeserializerVersion": "1.0",
            "UPDATED_BY_CRAWLER": crawler_name,
            **first.parameters,
        }
        return {
            "Name": self.name,
            "Owner": "owner",
            "Retention": 0,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": parameters,
            "PartitionKeys": [{"Name": k, "Type": "string"} for k in self.partition_keys],
            "StorageDescriptor": self.storage(self.location, parameters),
        }

    def storage(self, location: str, parameters: dict[str, str]) -> dict[str, Any]:
        first = next(f for f in self.files if f.classification == self.classification)
        parquet = self.classification == "parquet"
        return {
            "Columns": [{"Name": n, "Type": t} for n, t in self.columns],
            "Location": location,
            "InputFormat": PARQUET_INPUT if parquet else TEXT_INPUT,
            "OutputFormat": PARQUET_OUTPUT if parquet else TEXT_OUTPUT,
            "Compressed": first.compression != "none",
            "NumberOfBuckets": -1,
            "SerdeInfo": dict(first.serde),
            "BucketColumns": [],
            "SortColumns": [],
            "Parameters": dict(parameters),
            "StoredAsSubDirectories": False,
        }


_PARTITION = re.compile(r"^([^=/]+)=([^/]*)$")


def _hidden(name: str) -> bool:
    return name.startswith(("_", "."))


def list_target(s3, bucket: str, prefix: str, exclusions: list[str]) -> list[dict[str, Any]]:
    """The objects of one S3 target, minus what Glue skips and what ``Exclusions`` name."""
    from botocore.exceptions import ClientError

    root = f"{prefix}/" if prefix else ""
    objects = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=root):
            objects.extend(page.get("Contents", []))
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise CrawlError(f"S3 target s3://{bucket}/{root} could not be listed: {code}") from exc
    kept = []
    for obj in objects:
        key, rel = obj["Key"], obj["Key"][len(root) :]
        if not rel or key.endswith("/") or obj.get("Size", 0) == 0:
            continue
        if any(_hidden(part) for part in rel.split("/")):
            continue
        if any(fnmatch.fnmatchcase(rel, pattern) for pattern in exclusions):
            continue
        kept.append(obj)
    return kept


def plan_tables(
    objects: list[dict[str, Any]],
    bucket: str,
    prefix: str,
    read,
    *,
    table_prefix: str = "",
    sample_size: int | None = None,
    on_file=None,
    messages: list[str] | None = None,
) -> list[TablePlan]:
    """Group one target's objects into tables and infer each table's schema.

    ``read(key, size) -> bytes`` reads an object's first bytes (whole Parquet files); ``on_file`` is
    called before each file is read (the crawler's stop check)."""
    messages = messages if messages is not None else []
    root = f"{prefix}/" if prefix else ""
    # table folder (relative, "" = the target's folder) -> [(partition pairs, key, size)]
    groups: dict[str, list[tuple[list[tuple[str, str]], str, int]]] = {}
    for obj in objects:
        parts = obj["Key"][len(root) :].split("/")
        folders = parts[:-1]
        # the table is the deepest non-partition folder that precedes the first key=value folder
        cut = next((i for i, f in enumerate(folders) if _PARTITION.match(f)), len(folders))
        table_dir = "/".join(folders[:cut])
        pairs = []
        for folder in folders[cut:]:
            match = _PARTITION.match(folder)
            if not match:  # a plain folder below a partition: kept in that partition
                break
            pairs.append((match.group(1), match.group(2)))
        groups.setdefault(table_dir, []).append((pairs, obj["Key"], obj.get("Size", 0)))
    plans = []
    for table_dir, files in sorted(groups.items()):
        folder_name = table_dir.rsplit("/", 1)[-1] if table_dir else (prefix.rsplit("/", 1)[-1] or bucket)
        location = f"s3://{bucket}/{root}{table_dir + '/' if table_dir else ''}"
        key_orders = {tuple(k for k, _ in pairs) for pairs, _, _ in files}
        if len(key_orders) > 1:
            longest = max(key_orders, key=len)
            messages.append(
                f"WARN : folders under {location} mix partition layouts {sorted(key_orders)}; "
                f"using {list(longest)}, missing values empty"
            )
        partition_keys = list(max(key_orders, key=len))
        per_folder: dict[str, int] = {}
        schemas: list[FileSchema] = []
        skipped: list[str] = []
        partitions: dict[tuple[str, ...], str] = {}
        for pairs, key, size in sorted(files, key=lambda f: f[1]):
            folder = key.rsplit("/", 1)[0]
            if sample_size and per_folder.get(folder, 0) >= sample_size:
                continue
            per_folder[folder] = per_folder.get(folder, 0) + 1
            if on_file:
                on_file(key)
            try:
                schema = infer_file(read(key, size), size, key)
            except ValueError as exc:
                messages.append(f"WARN : s3://{bucket}/{key} skipped: {exc}")
                continue
            if schema is None:
                messages.append(f"WARN : s3://{bucket}/{key} skipped: no built-in classifier recognised it")
                continue
            schemas.append(schema)
            if pairs:
                values = dict(pairs)
                row = tuple(values.get(k, "") for k in partition_keys)
                partitions[row] = location + "".join(f"{k}={v}/" for k, v in pairs)
        if not schemas:
            continue
        counts: dict[str, int] = {}
        for schema in schemas:
            counts[schema.classification] = counts.get(schema.classification, 0) + 1
        classification = max(sorted(counts), key=counts.__getitem__)
        kept = [s for s in schemas if s.classification == classification]
        if len(kept) != len(schemas):
            skipped = [f"{len(schemas) - len(kept)} file(s) of another format than {classification}"]
            messages.append(f"WARN : {location}: {skipped[0]} left out of the table")
        columns: dict[str, str | None] = {}
        for schema in kept:
            for name, kind in schema.columns:
                if name in partition_keys:
                    continue
                columns[name] = merge_types(columns.get(name), kind)
        plans.append(
            TablePlan(
                name=table_name(folder_name, table_prefix),
                location=location,
                classification=classification,
                columns=[(n, t or "string") for n, t in columns.items()],
                partition_keys=partition_keys,
                partitions=partitions,
                files=kept,
                skipped=skipped,
            )
        )
    return plans
