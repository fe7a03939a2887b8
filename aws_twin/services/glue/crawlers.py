"""AWS Glue crawlers on the twin: a crawl really reads the S3 targets and writes the Data Catalog.

Operations: CreateCrawler, UpdateCrawler, GetCrawler, GetCrawlers, ListCrawlers, BatchGetCrawlers,
StartCrawler, StopCrawler, DeleteCrawler, GetCrawlerMetrics, ListCrawls. The catalog itself
(databases, tables, partitions) is moto's: the crawl writes it through the twin with the Glue API,
so GetTable / GetPartitions / GetDatabase see what the crawl made.

A crawler is READY; StartCrawler makes it RUNNING, the crawl runs in the background (see
:mod:`.crawler` for the schema inference), then STOPPING, then READY with ``LastCrawl`` SUCCEEDED,
FAILED (with its ErrorMessage) or CANCELLED (StopCrawler). The log goes to CloudWatch Logs
``/aws-glue/crawlers``, stream = the crawler's name, lines prefixed with the crawl id.

What the twin cannot do answers NotImplemented at CreateCrawler / UpdateCrawler: targets other than
S3 (JDBC, DynamoDB, catalog, Delta, Iceberg, Hudi, MongoDB), S3 event queues, custom classifiers,
schedules, a RecrawlBehavior other than CRAWL_EVERYTHING.

``AWS_TWIN_GLUE_CRAWL_MIN_SECONDS`` (default 0) makes every crawl last at least that long (AWS's
take a minute or more), so that a test can see RUNNING and stop a crawl.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import statistics
import threading
import time
import uuid
from typing import Any

from ...core import models
from ...core.errors import AwsError
from ...core.paging import page
from ...core.service import RequestContext, TwinService
from . import crawler as engine

log = logging.getLogger("aws_twin.glue")

LOG_GROUP = "/aws-glue/crawlers"
#: how long a finished crawl stays STOPPING before READY (Glue: tens of seconds)
STOPPING_SECONDS = 0.5
UNSUPPORTED_TARGETS = (
    "JdbcTargets",
    "MongoDBTargets",
    "DynamoDBTargets",
    "CatalogTargets",
    "DeltaTargets",
    "IcebergTargets",
    "HudiTargets",
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidInputException", message)


def _not_implemented(message: str) -> AwsError:
    return AwsError("NotImplemented", f"{message} (aws_twin crawls S3 targets only)", 501, False)


class _Crawler:
    def __init__(self, record: dict[str, Any]):
        self.record = record
        self.stop = threading.Event()
        self.started: float | None = None
        self.history: list[dict[str, Any]] = []  # CrawlerHistory records, oldest first
        self.runtimes: list[float] = []
        self.metrics = {"TablesCreated": 0, "TablesUpdated": 0, "TablesDeleted": 0}


class GlueCrawlerService(TwinService):
    model = "glue"
    moto_fallthrough = True  # the Data Catalog is moto's

    def reset(self) -> None:
        with self.lock:
            for crawler in getattr(self, "crawlers", {}).values():
                crawler.stop.set()
            self.crawlers: dict[str, _Crawler] = {}

    def shutdown(self) -> None:
        with self.lock:
            for crawler in self.crawlers.values():
                crawler.stop.set()

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"crawlers": {n: c.record["State"] for n, c in self.crawlers.items()}}

    # ---- definitions ----------------------------------------------------------------------
    def _definition(self, params: dict[str, Any]) -> dict[str, Any]:
        allowed = set(models.service_model("glue").shape_for("Crawler").members)
        definition = {k: v for k, v in params.items() if k in allowed and v is not None}
        name = definition.get("Name", "")
        if not name or len(name) > 255:
            raise _invalid("Crawler name must be between 1 and 255 characters long.")
        if not definition.get("Role"):
            raise _invalid("Role is required.")
        targets = definition.get("Targets") or {}
        for kind in UNSUPPORTED_TARGETS:
            if targets.get(kind):
                raise _not_implemented(f"Crawler {name}: {kind} are not supported")
        s3_targets = targets.get("S3Targets") or []
        if not s3_targets:
            raise _invalid(f"Crawler {name} must have at least one target.")
        for target in s3_targets:
            if target.get("EventQueueArn") or target.get("DlqEventQueueArn"):
                raise _not_implemented(f"Crawler {name}: S3 event queues are not supported")
            engine.parse_target_path(target.get("Path", ""))
        if definition.get("Classifiers"):
            raise _not_implemented(f"Crawler {name}: custom classifiers are not supported")
        schedule = definition.pop("Schedule", None)  # a cron string in, a structure in GetCrawler
        if (schedule.get("ScheduleExpression") if isinstance(schedule, dict) else schedule or "").strip():
            raise _not_implemented(f"Crawler {name}: schedules are not run by the twin; call StartCrawler")
        recrawl = (definition.get("RecrawlPolicy") or {}).get("RecrawlBehavior", "CRAWL_EVERYTHING")
        if recrawl != "CRAWL_EVERYTHING":
            raise _not_implemented(f"Crawler {name}: RecrawlBehavior {recrawl} is not supported")
        definition["Targets"] = {"S3Targets": s3_targets, **{kind: [] for kind in UNSUPPORTED_TARGETS}}
        definition.setdefault(
            "SchemaChangePolicy",
            {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "DEPRECATE_IN_DATABASE"},
        )
        definition["SchemaChangePolicy"].setdefault("UpdateBehavior", "UPDATE_IN_DATABASE")
        definition["SchemaChangePolicy"].setdefault("DeleteBehavior", "DEPRECATE_IN_DATABASE")
        definition.setdefault("RecrawlPolicy", {"RecrawlBehavior": "CRAWL_EVERYTHING"})
        definition.setdefault("LineageConfiguration", {"CrawlerLineageSettings": "DISABLE"})
        definition.setdefault(
            "LakeFormationConfiguration", {"UseLakeFormationCredentials": False, "AccountId": ""}
        )
        definition.setdefault("Classifiers", [])
        return definition

    def _crawler(self, name: str) -> _Crawler:
        crawler = self.crawlers.get(name)
        if crawler is None:
            raise AwsError("EntityNotFoundException", f"Crawler entry with name {name} does not exist")
        return crawler

    def _view(self, crawler: _Crawler) -> dict[str, Any]:
        record = dict(crawler.record)
        record["CrawlElapsedTime"] = (
            int((time.monotonic() - crawler.started) * 1000)
            if record["State"] != "READY" and crawler.started
            else 0
        )
        return record

    def create_crawler(self, ctx: RequestContext, params: dict) -> dict:
        definition = self._definition(params)
        name = definition["Name"]
        with self.lock:
            if name in self.crawlers:
                raise AwsError("AlreadyExistsException", f"{name} already exists")
            now = _now()
            definition.update(State="READY", CreationTime=now, LastUpdated=now, Version=1)
            self.crawlers[name] = _Crawler(definition)
        if params.get("Tags"):
            self.twin.client("glue", ctx.region).tag_resource(
                ResourceArn=ctx.arn(f"crawler/{name}"), TagsToAdd=dict(params["Tags"])
            )
        return {}

    def update_crawler(self, ctx: RequestContext, params: dict) -> dict:
        with self.lock:
            crawler = self._crawler(params["Name"])
            if crawler.record["State"] != "READY":
                raise AwsError("CrawlerRunningException", f"Crawler with name {params['Name']} is running")
            merged = {**crawler.record, **{k: v for k, v in params.items() if v is not None}}
            definition = self._definition(merged)
            for key in ("State", "CreationTime", "LastCrawl", "Version"):
                if key in crawler.record:
                    definition[key] = crawler.record[key]
            definition["Version"] = crawler.record["Version"] + 1
            definition["LastUpdated"] = _now()
            crawler.record = definition
        return {}

    def get_crawler(self, ctx: RequestContext, params: dict) -> dict:
        with self.lock:
            return {"Crawler": self._view(self._crawler(params["Name"]))}

    def get_crawlers(self, ctx: RequestContext, params: dict) -> dict:
        with self.lock:
            records = [self._view(self.crawlers[n]) for n in sorted(self.crawlers)]
        chunk, more = page(records, params, default=100, maximum=1000, error_code="InvalidInputException")
        return {"Crawlers": chunk, **more}

    def batch_get_crawlers(self, ctx: RequestContext, params: dict) -> dict:
        names = params["CrawlerNames"]
        with self.lock:
            found = [self._view(self.crawlers[n]) for n in names if n in self.crawlers]
        return {"Crawlers": found, "CrawlersNotFound": [n for n in names if n not in self.crawlers]}

    def list_crawlers(self, ctx: RequestContext, params: dict) -> dict:
        wanted = params.get("Tags") or {}
        with self.lock:
            names = sorted(self.crawlers)
        if wanted:
            glue = self.twin.client("glue", ctx.region)
            names = [
                n
                for n in names
                if all(
                    glue.get_tags(ResourceArn=ctx.arn(f"crawler/{n}"))["Tags"].get(k) == v
                    for k, v in wanted.items()
                )
            ]
        chunk, more = page(names, params, default=100, maximum=1000, error_code="InvalidInputException")
        return {"CrawlerNames": chunk, **more}

    def delete_crawler(self, ctx: RequestContext, params: dict) -> dict:
        with self.lock:
            crawler = self._crawler(params["Name"])
            if crawler.record["State"] != "READY":
                raise AwsError("CrawlerRunningException", f"Crawler with name {params['Name']} is running")
            del self.crawlers[params["Name"]]
        return {}

    # ---- crawls ---------------------------------------------------------------------------
    def start_crawler(self, ctx: RequestContext, params: dict) -> dict:
        name = params["Name"]
        with self.lock:
            crawler = self._crawler(name)
            if crawler.record["State"] != "READY":
                raise AwsError("CrawlerRunningException", f"Crawler with name {name} has already started")
            crawl_id = str(uuid.uuid4())
            now = _now()
            crawler.stop = threading.Event()
            crawler.started = time.monotonic()
            crawler.record["State"] = "RUNNING"
            crawler.history.append(
                {
                    "CrawlId": crawl_id,
                    "State": "RUNNING",
                    "StartTime": now,
                    "LogGroup": LOG_GROUP,
                    "LogStream": name,
                    "MessagePrefix": crawl_id,
                    "DPUHour": 0.0,
                }
            )
            definition = dict(crawler.record)
        self.twin.background(self._run, crawler, definition, crawl_id, now, ctx.region, ctx.account_id)
        return {}

    def stop_crawler(self, ctx: RequestContext, params: dict) -> dict:
        name = params["Name"]
        with self.lock:
            crawler = self._crawler(name)
            state = crawler.record["State"]
            if state == "READY":
                raise AwsError("CrawlerNotRunningException", f"Crawler with name {name} isn't running")
            if state == "STOPPING":
                raise AwsError("CrawlerStoppingException", f"Crawler with name {name} is stopping")
            crawler.record["State"] = "STOPPING"
            crawler.stop.set()
        return {}

    def _run(self, crawler: _Crawler, definition: dict, crawl_id: str, started_on, region: str, account: str):
        name = definition["Name"]
        logs = _CrawlLog(self.twin.client("logs", region), name, crawl_id)
        logs.add(f"BENCHMARK : Running Start Crawl for Crawler {name}")
        status, error, summary = "SUCCEEDED", None, {}
        started = time.monotonic()
        minimum = float(os.environ.get("AWS_TWIN_GLUE_CRAWL_MIN_SECONDS", "0") or 0)

        def check_stop(_key: str | None = None) -> None:
            if crawler.stop.is_set():
                raise engine.Cancelled()

        try:
            summary = _Crawl(self.twin, definition, region, logs, check_stop).run()
            while time.monotonic() - started < minimum:
                check_stop()
                time.sleep(0.1)
            check_stop()
        except engine.Cancelled:
            status = "CANCELLED"
            logs.add("INFO : Crawler was stopped by StopCrawler")
        except engine.CrawlError as exc:
            status, error = "FAILED", str(exc)
            logs.add(f"ERROR : {exc}")
        except Exception as exc:  # noqa: BLE001 - a bug or an unreadable object: the crawl fails, said why
            log.exception("crawl %s of %s failed", crawl_id, name)
            status, error = "FAILED", f"Internal Service Exception: {type(exc).__name__}: {exc}"
            logs.add(f"ERROR : {error}")
        runtime = time.monotonic() - started
        with self.lock:
            if crawler.record["State"] == "RUNNING":
                crawler.record["State"] = "STOPPING"
        logs.add(
            "BENCHMARK : Crawler has finished running and is in state STOPPING"
            if status != "CANCELLED"
            else "BENCHMARK : Crawler was cancelled"
        )
        logs.flush()
        time.sleep(STOPPING_SECONDS)
        with self.lock:
            crawler.runtimes.append(runtime)
            if status == "SUCCEEDED":
                crawler.metrics = {
                    "TablesCreated": summary.get("created", 0),
                    "TablesUpdated": summary.get("updated", 0),
                    "TablesDeleted": summary.get("deleted", 0),
                }
            last = {
                "Status": status,
                "LogGroup": LOG_GROUP,
                "LogStream": name,
                "MessagePrefix": crawl_id,
                "StartTime": started_on,
            }
            if error:
                last["ErrorMessage"] = error[:2048]
            crawler.record["LastCrawl"] = last
            crawler.record["State"] = "READY"
            history = crawler.history[-1]
            history.update(
                State={"SUCCEEDED": "COMPLETED", "FAILED": "FAILED", "CANCELLED": "STOPPED"}[status],
                EndTime=_now(),
                Summary=_summary_text(summary),
            )
            if error:
                history["ErrorMessage"] = error[:2048]

    def get_crawler_metrics(self, ctx: RequestContext, params: dict) -> dict:
        with self.lock:
            names = params.get("CrawlerNameList") or sorted(self.crawlers)
            metrics = []
            for name in names:
                crawler = self.crawlers.get(name)
                if crawler is None:
                    continue
                running = crawler.record["State"] != "READY"
                metrics.append(
                    {
                        "CrawlerName": name,
                        "TimeLeftSeconds": 0.0,
                        "StillEstimating": running,
                        "LastRuntimeSeconds": round(crawler.runtimes[-1], 3) if crawler.runtimes else 0.0,
                        "MedianRuntimeSeconds": round(statistics.median(crawler.runtimes), 3)
                        if crawler.runtimes
                        else 0.0,
                        **crawler.metrics,
                    }
                )
        chunk, more = page(metrics, params, default=100, maximum=1000, error_code="InvalidInputException")
        return {"CrawlerMetricsList": chunk, **more}

    def list_crawls(self, ctx: RequestContext, params: dict) -> dict:
        if params.get("Filters"):
            raise _not_implemented("ListCrawls Filters are not supported")
        with self.lock:
            crawler = self._crawler(params["CrawlerName"])
            history = [dict(h) for h in reversed(crawler.history)]
        chunk, more = page(history, params, default=20, maximum=1000, error_code="InvalidInputException")
        return {"Crawls": chunk, **more}


def _summary_text(summary: dict[str, Any]) -> str:
    import json

    return json.dumps(
        {
            "TABLE": {
                "ADD": {"Count": summary.get("created", 0)},
                "UPDATE": {"Count": summary.get("updated", 0)},
                "DELETE": {"Count": summary.get("deleted", 0)},
            },
            "PARTITION": {"ADD": {"Count": summary.get("partitions", 0)}},
        }
    )


class _CrawlLog:
    """The crawl's log lines, shipped to /aws-glue/crawlers/<crawler name>."""

    def __init__(self, logs_client, stream: str, crawl_id: str):
        self.client, self.stream, self.crawl_id = logs_client, stream, crawl_id
        self.events: list[dict[str, Any]] = []

    def add(self, message: str) -> None:
        self.events.append({"timestamp": int(time.time() * 1000), "message": f"[{self.crawl_id}] {message}"})

    def flush(self) -> None:
        if not self.events:
            return
        events, self.events = self.events, []
        try:
            for call, kwargs in (
                (self.client.create_log_group, {"logGroupName": LOG_GROUP}),
                (self.client.create_log_stream, {"logGroupName": LOG_GROUP, "logStreamName": self.stream}),
            ):
                try:
                    call(**kwargs)
                except self.client.exceptions.ResourceAlreadyExistsException:
                    pass
            for i in range(0, len(events), 1000):
                self.client.put_log_events(
                    logGroupName=LOG_GROUP, logStreamName=self.stream, logEvents=events[i : i + 1000]
                )
        except Exception:
            log.exception("could not ship the crawl log of %s", self.stream)


class _Crawl:
    """One crawl: targets -> table plans -> catalog writes. Returns the counts."""

    def __init__(self, twin, definition: dict, region: str, logs: _CrawlLog, check_stop):
        self.definition = definition
        self.s3 = twin.client("s3", region)
        self.glue = twin.client("glue", region)
        self.logs = logs
        self.check_stop = check_stop

    def _read(self, bucket: str):
        def read(key: str, size: int) -> bytes:
            whole = size <= engine.SAMPLE_BYTES or key.endswith(".parquet")
            if not whole:
                head = self.s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-3")["Body"].read()
                whole = head == b"PAR1"
            if whole:
                return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            rng = f"bytes=0-{engine.SAMPLE_BYTES - 1}"
            return self.s3.get_object(Bucket=bucket, Key=key, Range=rng)["Body"].read()

        return read

    def run(self) -> dict[str, int]:
        name = self.definition["Name"]
        database = self.definition["DatabaseName"] if self.definition.get("DatabaseName") else None
        if not database:
            raise engine.CrawlError(f"Crawler {name} has no DatabaseName to write its tables to")
        plans: list[engine.TablePlan] = []
        for target in self.definition["Targets"]["S3Targets"]:
            bucket, prefix = engine.parse_target_path(target["Path"])
            objects = engine.list_target(self.s3, bucket, prefix, target.get("Exclusions") or [])
            messages: list[str] = []
            plans += engine.plan_tables(
                objects,
                bucket,
                prefix,
                self._read(bucket),
                table_prefix=self.definition.get("TablePrefix", ""),
                sample_size=target.get("SampleSize"),
                on_file=self.check_stop,
                messages=messages,
            )
            for message in messages:
                self.logs.add(message)
            self.logs.add(f"INFO : s3://{bucket}/{prefix}: {len(objects)} object(s) crawled")
        self.check_stop()
        return self._write(database, plans)

    def _write(self, database: str, plans: list[engine.TablePlan]) -> dict[str, int]:
        glue, name = self.glue, self.definition["Name"]
        policy = self.definition["SchemaChangePolicy"]
        try:
            glue.get_database(Name=database)
        except glue.exceptions.EntityNotFoundException:
            glue.create_database(DatabaseInput={"Name": database})
            self.logs.add(f"INFO : Created database {database}")
        existing = {}
        for page_ in glue.get_paginator("get_tables").paginate(DatabaseName=database):
            for table in page_["TableList"]:
                existing[table["Name"]] = table
        counts = {"created": 0, "updated": 0, "deleted": 0, "partitions": 0}
        seen = set()
        for plan in plans:
            if plan.name in seen:
                self.logs.add(
                    f"WARN : two folders map to table {plan.name}; keeping the first ({plan.location})"
                )
                continue
            seen.add(plan.name)
            table_input = plan.table_input(name)
            old = existing.get(plan.name)
            if old is None:
                glue.create_table(DatabaseName=database, TableInput=table_input)
                counts["created"] += 1
                self.logs.add(f"INFO : Created table {plan.name} in database {database}")
            elif _changed(old, table_input):
                if policy["UpdateBehavior"] == "LOG":
                    self.logs.add(f"INFO : Table {plan.name} changed; not updated (UpdateBehavior LOG)")
                else:
                    glue.update_table(DatabaseName=database, TableInput=table_input)
                    counts["updated"] += 1
                    self.logs.add(f"INFO : Updated table {plan.name} in database {database}")
            counts["partitions"] += self._partitions(database, plan, table_input)
        gone = [
            t
            for n, t in existing.items()
            if n not in seen and (t.get("Parameters") or {}).get("UPDATED_BY_CRAWLER") == name
        ]
        for table in gone:
            behavior = policy["DeleteBehavior"]
            if behavior == "DELETE_FROM_DATABASE":
                glue.delete_table(DatabaseName=database, Name=table["Name"])
                counts["deleted"] += 1
                self.logs.add(f"INFO : Deleted table {table['Name']}: its data is gone")
            elif behavior == "DEPRECATE_IN_DATABASE":
                if (table.get("Parameters") or {}).get("DEPRECATED_BY_CRAWLER"):
                    continue
                table_input = _as_input(table)
                table_input["Parameters"]["DEPRECATED_BY_CRAWLER"] = "1"
                glue.update_table(DatabaseName=database, TableInput=table_input)
                counts["deleted"] += 1
                self.logs.add(f"INFO : Deprecated table {table['Name']}: its data is gone")
            else:
                self.logs.add(f"INFO : Table {table['Name']}'s data is gone; kept (DeleteBehavior LOG)")
        self.logs.add(
            f"BENCHMARK : Finished writing to Catalog: {counts['created']} table(s) created, "
            f"{counts['updated']} updated, {counts['deleted']} deleted, {counts['partitions']} partition(s) added"
        )
        return counts

    def _partitions(self, database: str, plan: engine.TablePlan, table_input: dict) -> int:
        if not plan.partitions:
            return 0
        glue = self.glue
        have = set()
        for page_ in glue.get_paginator("get_partitions").paginate(
            DatabaseName=database, TableName=plan.name
        ):
            for partition in page_["Partitions"]:
                have.add(tuple(partition["Values"]))
        new = [
            {
                "Values": list(values),
                "StorageDescriptor": plan.storage(location, table_input["StorageDescriptor"]["Parameters"]),
                "Parameters": {},
            }
            for values, location in sorted(plan.partitions.items())
            if values not in have
        ]
        for i in range(0, len(new), 100):
            answer = glue.batch_create_partition(
                DatabaseName=database, TableName=plan.name, PartitionInputList=new[i : i + 100]
            )
            for problem in answer.get("Errors", []):
                self.logs.add(
                    f"WARN : partition {problem.get('PartitionValues')}: {problem.get('ErrorDetail')}"
                )
        if new:
            self.logs.add(f"INFO : Added {len(new)} partition(s) to table {plan.name}")
        return len(new)


def _as_input(table: dict) -> dict:
    allowed = set(models.service_model("glue").shape_for("TableInput").members)
    table_input = {k: v for k, v in table.items() if k in allowed}
    table_input["Parameters"] = dict(table_input.get("Parameters") or {})
    return table_input


def _changed(old: dict, new: dict) -> bool:
    """Schema, partition keys, format or location differ (counts alone do not make an update)."""
    old_sd, new_sd = old.get("StorageDescriptor") or {}, new["StorageDescriptor"]
    columns = [(c["Name"], c["Type"]) for c in old_sd.get("Columns", [])]
    return (
        columns != [(c["Name"], c["Type"]) for c in new_sd["Columns"]]
        or [k["Name"] for k in old.get("PartitionKeys", [])] != [k["Name"] for k in new["PartitionKeys"]]
        or (old.get("Parameters") or {}).get("classification") != new["Parameters"]["classification"]
        or old_sd.get("Location") != new_sd["Location"]
    )
