"""boto3's failures, classified once: a refusal cannot be helped by trying again; a throttle, a
server error or a dropped connection can (after boto3's own retries)."""

from __future__ import annotations

from typing import Any

from jobs.storage.errors import ObjectMissingError, StorageRefusedError, StorageUnavailableError

THROTTLED = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestLimitExceeded"}
)
# Configuration that is wrong until someone changes it: credentials, profile, region, arguments.
REFUSED = (
    "NoCredentialsError",
    "PartialCredentialsError",
    "ProfileNotFound",
    "ParamValidationError",
    "NoRegionError",
    "InvalidRegionError",
    "InvalidS3AddressingStyleError",
    "InvalidConfigError",
)


def classify(exc: BaseException, url: str, bucket: str) -> Exception | None:
    """The storage error for a boto3 failure, or None for any other error (one the stream
    being uploaded raised, say), which is not S3's to classify."""
    from botocore.exceptions import ClientError

    cause = (
        exc.__cause__ if isinstance(exc.__cause__, ClientError) and not isinstance(exc, ClientError) else exc
    )
    if isinstance(cause, ClientError):
        return _answered(cause.response, url, bucket)
    kind = type(cause).__name__
    if kind in REFUSED:
        return StorageRefusedError(
            f"S3 cannot be used for {url}: {cause}. Check the S3 settings and credentials."
        )
    if type(cause).__module__.startswith(("botocore", "urllib3", "s3transfer")):
        return StorageUnavailableError(f"S3 could not be reached for {url}: {cause}")
    return None


def _answered(response: dict[str, Any], url: str, bucket: str) -> Exception:
    error = response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    said = f"{code} {error.get('Message', '')}".strip()
    if code == "NoSuchBucket":
        return ObjectMissingError(f"The bucket {bucket!r} does not exist ({url}).")
    if status == 404 or code in ("NoSuchKey", "NotFound", "404"):
        return ObjectMissingError(f"Nothing is stored at {url}.")
    if status >= 500 or status == 429 or code in THROTTLED:
        return StorageUnavailableError(f"S3 could not serve {url} now: {said}")
    return StorageRefusedError(f"S3 refused {url}: {said}")
