"""The errors the Sluice HTTP API answers with, one exception class per stable `code`.

Every error answer is `{"error": {"code", "message"}}` with a code from common/errors.hpp;
`error_from_response()` turns it into the class registered for that code, or into a plain
`ApiError` for a code this client does not know yet (a newer api), so callers can always catch
`ApiError` and read `.status`, `.code` and `.message`. All of them are `SluiceError`s.
"""

from __future__ import annotations

from typing import ClassVar, Mapping

from ..errors import SluiceError


class ApiError(SluiceError):
    """An error answer of the api.

    Attributes:
        status: the HTTP status (404, 429, ...).
        code: the stable error code (`job_not_found`, ...); README.md lists them.
        message: the api's message, for people (it may change between versions).
        retry_after: seconds the api asked to wait (its `Retry-After`), or None.
    """

    code_name: ClassVar[str] = ""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class TransportError(SluiceError):
    """The api could not be reached, or the connection broke before an answer came (after the
    client's retries). `cause` is the underlying httpx exception."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class WaitTimeout(SluiceError, TimeoutError):
    """`wait()` ran out of time before the job ended. `job` is its state when time ran out."""

    def __init__(self, message: str, job: object) -> None:
        super().__init__(message)
        self.job = job


# One class per code of common/errors.hpp (tests/python/test_client_core.py keeps them in step).
class BadRequest(ApiError):
    """400: malformed HTTP, or framing the api refuses."""
    code_name = "bad_request"


class InvalidJson(ApiError):
    """400: the body is not a JSON object."""
    code_name = "invalid_json"


class InvalidRequest(ApiError):
    """422: a field, header or query parameter is wrong; the message names it."""
    code_name = "invalid_request"


class Unauthenticated(ApiError):
    """401: no API key, or one unknown, revoked or malformed."""
    code_name = "unauthenticated"


class Forbidden(ApiError):
    """403: a member key on an admin route."""
    code_name = "forbidden"


class OriginNotAllowed(ApiError):
    """403: a browser origin the api does not list."""
    code_name = "origin_not_allowed"


class NotFound(ApiError):
    """404: no such route."""
    code_name = "not_found"


class KeyNotFound(ApiError):
    """404: no API key with this id."""
    code_name = "key_not_found"


class JobNotFound(ApiError):
    """404: no such job (or another tenant's)."""
    code_name = "job_not_found"


class MethodNotAllowed(ApiError):
    """405: the route has no such method."""
    code_name = "method_not_allowed"


class DuplicateJobId(ApiError):
    """409: the job id exists already."""
    code_name = "duplicate_job_id"


class IdempotencyConflict(ApiError):
    """409: the Idempotency-Key was used for another request."""
    code_name = "idempotency_conflict"


class InvalidInput(ApiError):
    """422: the input does not fit the JSON Schema its type's workers declared (GET /v1/types);
    the message names the path of the value that fails."""
    code_name = "invalid_input"


class InvalidSchedule(ApiError):
    """422: options.delay_s or options.run_at is not a time that can be scheduled."""
    code_name = "invalid_schedule"


class InvalidExpiry(ApiError):
    """422: options.expire_after_s is out of range."""
    code_name = "invalid_expiry"


class InvalidWebhookUrl(ApiError):
    """422: a webhook url that is too long, not http(s), holds a user name, or has no valid host."""
    code_name = "invalid_webhook_url"


class WebhookTargetRefused(ApiError):
    """422: a webhook url whose host is a non-public address the api does not allow."""
    code_name = "webhook_target_refused"


class InvalidWebhookEvents(ApiError):
    """422: webhook events that are not a list of different lifecycle events."""
    code_name = "invalid_webhook_events"


class TooManyWebhooks(ApiError):
    """422: the tenant has as many webhook endpoints as it may."""
    code_name = "too_many_webhooks"


class WebhookNotFound(ApiError):
    """404: no such webhook endpoint of the caller's tenant."""
    code_name = "webhook_not_found"


class InvalidCron(ApiError):
    """422: a schedule's cron is not a cron expression (5 fields, or 6 with seconds), or never fires."""
    code_name = "invalid_cron"


class InvalidTimezone(ApiError):
    """422: a schedule's timezone is not an IANA zone the api host knows."""
    code_name = "invalid_timezone"


class TooManySchedules(ApiError):
    """422: the tenant has as many cron schedules as it may."""
    code_name = "too_many_schedules"


class ScheduleNotFound(ApiError):
    """404: no such schedule of the caller's tenant."""
    code_name = "schedule_not_found"


class JobFinished(ApiError):
    """409: the job has finished already (cancel)."""
    code_name = "job_finished"


class JobNotDead(ApiError):
    """409: only a dead (failed) job can be retried."""
    code_name = "job_not_dead"


class BodyTooLarge(ApiError):
    """413: the request body passes the api's limit."""
    code_name = "body_too_large"


class InputTooLarge(ApiError):
    """413: the job's input passes SLUICE_MAX_INPUT_BYTES."""
    code_name = "input_too_large"


class UnsupportedMediaType(ApiError):
    """415: the body is not application/json."""
    code_name = "unsupported_media_type"


class UnknownJobType(ApiError):
    """422: no worker has ever declared this job type."""
    code_name = "unknown_job_type"


class QueueFull(ApiError):
    """429: the type's queue is full."""
    code_name = "queue_full"


class TenantQueueFull(ApiError):
    """429: the tenant holds as many queued jobs as it may."""
    code_name = "tenant_queue_full"


class RateLimited(ApiError):
    """429: the key is past its rate limit; `retry_after` says when to try again."""
    code_name = "rate_limited"


class TooManyConnectionsFromClient(ApiError):
    """429: this client address holds as many connections as it may."""
    code_name = "too_many_connections_from_client"


class TooManySubscriptions(ApiError):
    """429: a WebSocket follows as many jobs as it may."""
    code_name = "too_many_subscriptions"


class HeadersTooLarge(ApiError):
    """431: the request's headers pass 16 KiB."""
    code_name = "headers_too_large"


class StorageFull(ApiError):
    """507: Redis is near its maxmemory, or the tenant past its byte budget."""
    code_name = "storage_full"


class InternalError(ApiError):
    """500: the api failed (a bug; logged)."""
    code_name = "internal_error"


class BrokerError(ApiError):
    """502: the broker answered nonsense."""
    code_name = "broker_error"


class BrokerUnavailable(ApiError):
    """503: the request never reached the broker; nothing was done."""
    code_name = "broker_unavailable"


class OutcomeUnknown(ApiError):
    """503: the broker may have acted but did not answer in time."""
    code_name = "outcome_unknown"


class RedisUnavailable(ApiError):
    """503: the job store did not answer."""
    code_name = "redis_unavailable"


class NotReplicated(ApiError):
    """503: the job was stored on the Redis master but not confirmed by enough replicas in time
    (SLUICE_REDIS_MIN_REPLICAS); a retry with the same Idempotency-Key answers for that job."""
    code_name = "not_replicated"


class NotReady(ApiError):
    """503: Redis or the broker does not answer."""
    code_name = "not_ready"


class TooManyConnections(ApiError):
    """503: the api holds as many connections as it may."""
    code_name = "too_many_connections"


ERRORS: Mapping[str, type[ApiError]] = {cls.code_name: cls for cls in ApiError.__subclasses__()}


def error_from_body(status: int, body: object, retry_after: float | None = None) -> ApiError:
    """The exception for an error answer: `status` and its parsed JSON `body` (anything: a body
    that is not the api's error shape gives an ApiError with code `http_<status>`)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        code, message = error["code"], str(error.get("message", ""))
        return ERRORS.get(code, ApiError)(status, code, message, retry_after)
    return ApiError(status, f"http_{status}", str(body)[:500], retry_after)


__all__ = ["ERRORS", "ApiError", "SluiceError", "TransportError", "WaitTimeout", "error_from_body",
           *(cls.__name__ for cls in ERRORS.values())]
