"""The model registry: model package groups and (versioned or unversioned) model packages.

A versioned package lives in a group: ``arn:aws:sagemaker:<region>:<account>:model-package/<group>/<n>``
with ModelPackageVersion n = 1, 2, ... in creation order; its ModelPackageName is the group name.
An unversioned package (ModelPackageName given, no group) is ``.../model-package/<name>``.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
from dataclasses import dataclass, field

from ...core.errors import AwsError
from .training import now


def _created_by(account: str) -> dict:
    return {"IamIdentity": {"Arn": f"arn:aws:iam::{account}:user/aws-twin", "PrincipalId": "AIDATWIN"}}


@dataclass
class PackageGroup:
    name: str
    arn: str
    description: str | None
    creation_time: dt.datetime
    account: str
    next_version: int = 1

    def describe(self) -> dict:
        out = {
            "ModelPackageGroupName": self.name,
            "ModelPackageGroupArn": self.arn,
            "ModelPackageGroupDescription": self.description,
            "CreationTime": self.creation_time,
            "CreatedBy": _created_by(self.account),
            "ModelPackageGroupStatus": "Completed",
        }
        return {k: v for k, v in out.items() if v is not None}

    def summary(self) -> dict:
        out = self.describe()
        out.pop("CreatedBy")
        return out


@dataclass
class ModelPackage:
    arn: str
    name: str
    group: str | None
    version: int | None
    request: dict
    creation_time: dt.datetime
    account: str
    approval: str | None
    last_modified: dt.datetime | None = None
    approval_description: str | None = None
    customer_metadata: dict = field(default_factory=dict)

    def describe(self) -> dict:
        req = self.request
        out = {
            "ModelPackageName": self.name,
            "ModelPackageGroupName": self.group,
            "ModelPackageVersion": self.version,
            "ModelPackageArn": self.arn,
            "ModelPackageDescription": req.get("ModelPackageDescription"),
            "CreationTime": self.creation_time,
            "InferenceSpecification": copy.deepcopy(req.get("InferenceSpecification")),
            "SourceAlgorithmSpecification": req.get("SourceAlgorithmSpecification"),
            "ValidationSpecification": req.get("ValidationSpecification"),
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
            "CertifyForMarketplace": bool(req.get("CertifyForMarketplace", False)),
            "ModelApprovalStatus": self.approval,
            "CreatedBy": _created_by(self.account),
            "MetadataProperties": req.get("MetadataProperties"),
            "ModelMetrics": copy.deepcopy(req.get("ModelMetrics")),
            "LastModifiedTime": self.last_modified,
            "LastModifiedBy": _created_by(self.account) if self.last_modified else None,
            "ApprovalDescription": self.approval_description,
            "Domain": req.get("Domain"),
            "Task": req.get("Task"),
            "SamplePayloadUrl": req.get("SamplePayloadUrl"),
            "CustomerMetadataProperties": dict(self.customer_metadata) or None,
            "DriftCheckBaselines": copy.deepcopy(req.get("DriftCheckBaselines")),
            "AdditionalInferenceSpecifications": req.get("AdditionalInferenceSpecifications"),
            "SkipModelValidation": req.get("SkipModelValidation"),
            "SourceUri": req.get("SourceUri"),
        }
        return {k: v for k, v in out.items() if v is not None}

    def summary(self) -> dict:
        out = {
            "ModelPackageName": self.name,
            "ModelPackageGroupName": self.group,
            "ModelPackageVersion": self.version,
            "ModelPackageArn": self.arn,
            "ModelPackageDescription": self.request.get("ModelPackageDescription"),
            "CreationTime": self.creation_time,
            "ModelPackageStatus": "Completed",
            "ModelApprovalStatus": self.approval,
        }
        return {k: v for k, v in out.items() if v is not None}

    def containers(self) -> list[dict]:
        return list((self.request.get("InferenceSpecification") or {}).get("Containers") or [])


class Registry:
    def __init__(self):
        self.lock = threading.RLock()
        self.groups: dict[str, PackageGroup] = {}
        self.packages: dict[str, ModelPackage] = {}  # by ARN
        #: (account, region, ClientToken) -> the ARN its CreateModelPackage made (botocore fills the
        #: token in every call and keeps it across its retries: a retried create gets the first ARN)
        self.client_tokens: dict[tuple[str, str, str], str] = {}

    # ---- groups ---------------------------------------------------------------------------
    def create_group(self, ctx, params: dict) -> PackageGroup:
        name = params["ModelPackageGroupName"]
        arn = ctx.arn(f"model-package-group/{name.lower()}")
        with self.lock:
            if name in self.groups:
                raise AwsError("ValidationException", f"Model Package Group already exists: {arn}")
            group = PackageGroup(name, arn, params.get("ModelPackageGroupDescription"), now(), ctx.account_id)
            self.groups[name] = group
        return group

    def group(self, ctx, name_or_arn: str) -> PackageGroup:
        name = name_or_arn.rsplit("/", 1)[-1] if name_or_arn.startswith("arn:") else name_or_arn
        with self.lock:
            group = self.groups.get(name)
            if group is None:
                for g in self.groups.values():
                    if g.arn == name_or_arn or g.name.lower() == name.lower():
                        group = g
        if group is None:
            arn = ctx.arn(f"model-package-group/{name.lower()}")
            raise AwsError("ValidationException", f"ModelPackageGroup {arn} does not exist.")
        return group

    def delete_group(self, ctx, name: str) -> None:
        group = self.group(ctx, name)
        with self.lock:
            members = [p for p in self.packages.values() if p.group == group.name]
            if members:
                raise AwsError(
                    "ConflictException",
                    f"Model Package Group {group.arn} has {len(members)} model package(s); delete them first.",
                )
            del self.groups[group.name]

    # ---- packages -------------------------------------------------------------------------
    def create_package(self, ctx, params: dict) -> ModelPackage:
        group_name = params.get("ModelPackageGroupName")
        token = (ctx.account_id, ctx.region, params["ClientToken"]) if params.get("ClientToken") else None
        with self.lock:
            earlier = self.packages.get(self.client_tokens.get(token, "")) if token else None
            if earlier is not None:
                return earlier  # the same request again (its answer was lost): what it made
            if group_name:
                group = self.group(ctx, group_name)
                version = group.next_version
                group.next_version += 1
                arn = ctx.arn(f"model-package/{group.name.lower()}/{version}")
                package = ModelPackage(
                    arn,
                    group.name,
                    group.name,
                    version,
                    copy.deepcopy(params),
                    now(),
                    ctx.account_id,
                    params.get("ModelApprovalStatus") or "PendingManualApproval",
                )
            else:
                name = params.get("ModelPackageName")
                if not name:
                    raise AwsError(
                        "ValidationException",
                        "Either ModelPackageName or ModelPackageGroupName must be provided.",
                    )
                arn = ctx.arn(f"model-package/{name.lower()}")
                if arn in self.packages:
                    raise AwsError("ConflictException", f"Model Package already exists: {arn}")
                package = ModelPackage(
                    arn,
                    name,
                    None,
                    None,
                    copy.deepcopy(params),
                    now(),
                    ctx.account_id,
                    params.get("ModelApprovalStatus"),
                )
            package.customer_metadata = dict(params.get("CustomerMetadataProperties") or {})
            self.packages[arn] = package
            if token:
                self.client_tokens[token] = arn
        return package

    def package(self, ctx, name_or_arn: str) -> ModelPackage:
        with self.lock:
            found = self.packages.get(name_or_arn)
            if found is None and not name_or_arn.startswith("arn:"):
                found = self.packages.get(ctx.arn(f"model-package/{name_or_arn.lower()}"))
        if found is None:
            arn = (
                name_or_arn
                if name_or_arn.startswith("arn:")
                else ctx.arn(f"model-package/{name_or_arn.lower()}")
            )
            raise AwsError("ValidationException", f"ModelPackage {arn} does not exist.")
        return found

    def update_package(self, ctx, params: dict) -> ModelPackage:
        package = self.package(ctx, params["ModelPackageArn"])
        with self.lock:
            if params.get("ModelApprovalStatus"):
                if package.version is None:
                    raise AwsError(
                        "ValidationException",
                        "ModelApprovalStatus can only be set on a versioned model package.",
                    )
                package.approval = params["ModelApprovalStatus"]
            if params.get("ApprovalDescription") is not None:
                package.approval_description = params["ApprovalDescription"]
            package.customer_metadata.update(params.get("CustomerMetadataProperties") or {})
            for key in params.get("CustomerMetadataPropertiesToRemove") or []:
                package.customer_metadata.pop(key, None)
            if params.get("InferenceSpecification"):
                package.request["InferenceSpecification"] = copy.deepcopy(params["InferenceSpecification"])
            if params.get("AdditionalInferenceSpecificationsToAdd"):
                extra = package.request.setdefault("AdditionalInferenceSpecifications", [])
                extra.extend(copy.deepcopy(params["AdditionalInferenceSpecificationsToAdd"]))
            if params.get("SourceUri"):
                package.request["SourceUri"] = params["SourceUri"]
            package.last_modified = now()
        return package

    def delete_package(self, ctx, name_or_arn: str) -> None:
        package = self.package(ctx, name_or_arn)
        with self.lock:
            self.packages.pop(package.arn, None)

    def list_packages(self, params: dict) -> list[ModelPackage]:
        group = params.get("ModelPackageGroupName")
        kind = params.get("ModelPackageType")
        with self.lock:
            items = list(self.packages.values())
        if group:
            group = group.rsplit("/", 1)[-1]
            items = [p for p in items if p.group and p.group.lower() == group.lower()]
        elif kind in (None, "Unversioned"):
            items = [p for p in items if p.version is None]
        elif kind == "Versioned":
            items = [p for p in items if p.version is not None]
        if params.get("ModelApprovalStatus"):
            items = [p for p in items if p.approval == params["ModelApprovalStatus"]]
        if params.get("NameContains"):
            items = [p for p in items if params["NameContains"].lower() in p.name.lower()]
        return items
