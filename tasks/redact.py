"""Keep credentials out of what a run shows: AWS keys in log records, and credentials carried by URLs anywhere.

At DEBUG level botocore logs every request it sends: `botocore.endpoint` prints the headers, and
`botocore.auth` the canonical request it signs. With temporary credentials both contain the session token
(`X-Amz-Security-Token`) in clear (botocore 1.43; `tests/test_secrets.py` checks a real exchange). Anyone who turns
on debug logging to chase an S3 problem, or forwards botocore's loggers to Prefect
(`PREFECT_LOGGING_EXTRA_LOGGERS`), would copy the token into log files and the Prefect database.

`hide_aws_credentials_in_logs()` adds a filter to botocore's loggers that masks the token header wherever it
appears, and any value of the credential variables in the environment. The secret access key itself is never
logged by botocore (it only signs with it); it is masked too in case some other record carries it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import SecretStr

MASK = "<redacted>"
# botocore's loggers whose records may carry request headers or the canonical request they sign.
AWS_LOGGERS = ("botocore.endpoint", "botocore.auth", "botocore.parsers", "botocore.hooks", "aiobotocore.endpoint")
CREDENTIAL_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
# The token header as botocore prints it in a header dict (`'X-Amz-Security-Token': b'...'`) and in the
# canonical request (`x-amz-security-token:...`).
TOKEN_HEADER = re.compile(r"""(x-amz-security-token['"]?\s*[:=]\s*b?['"]?)([^'"\s,}]+)""", re.IGNORECASE)
MIN_MASKED_LENGTH = 16  # shorter values (moto's "testing") are not real credentials and would mangle messages


class RedactCredentials(logging.Filter):
    """Rewrites a record's message with credentials masked; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = TOKEN_HEADER.sub(rf"\g<1>{MASK}", message)
        for name in CREDENTIAL_VARIABLES:
            value = os.environ.get(name, "")
            if len(value) >= MIN_MASKED_LENGTH:
                redacted = redacted.replace(value, MASK)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


_FILTER = RedactCredentials()


def hide_aws_credentials_in_logs() -> None:
    """Install the filter on botocore's loggers (idempotent: a logger holds the one filter once), and the URL
    redaction below on every record (`hide_url_credentials_in_logs`)."""
    hide_url_credentials_in_logs()
    for name in AWS_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


# --- credentials in URLs --------------------------------------------------------------------------------------------
# A presigned S3 URL carries its credential, session token and signature in the query string; an http(s) URL may
# carry `user:password@`. Anyone holding such a URL can read the object until it expires, so a URL is shown only
# through `redact_url`: in log lines, summaries, artifacts, events, state messages and the runs' parameters.
# Query parameters whose name says secret. AWS SigV4 (`X-Amz-Credential`, `X-Amz-Signature`, `X-Amz-Security-Token`
# and any other `X-Amz-*` but the four harmless ones kept below, useful when a link has expired), SigV2
# (`AWSAccessKeyId`, `Signature`), GCS (`X-Goog-*`), Azure SAS (`sig`), and tokens, keys and passwords by name.
SECRET_QUERY_NAME = re.compile(
    r"^(x-amz-|x-goog-)|signature|^sig$|token|secret|password|passwd|credential|^awsaccesskeyid$|key|^auth",
    re.IGNORECASE,
)
HARMLESS_QUERY_NAMES = frozenset({"x-amz-algorithm", "x-amz-date", "x-amz-expires", "x-amz-signedheaders"})
URL_IN_TEXT = re.compile(r"""[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'"<>`|()\[\]]+""")


def _secret_query_name(name: str) -> bool:
    name = unquote(name)
    return name.lower() not in HARMLESS_QUERY_NAMES and bool(SECRET_QUERY_NAME.search(name))


def redact_url(uri: str) -> str:
    """`uri` with its userinfo and the values of its secret query parameters replaced by `<redacted>`.

    Scheme, host, path and the other parameters are kept as written, so the result still says which file it is
    (`https://bucket.s3.amazonaws.com/yellow_2024-01.parquet?X-Amz-Expires=3600&X-Amz-Signature=<redacted>`).
    Local paths and URLs without secrets come back unchanged.
    """
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = "&".join(
        f"{name}={MASK}" if sep and _secret_query_name(name) else f"{name}{sep}{value}"
        for name, sep, value in (item.partition("=") for item in parts.query.split("&"))
    )
    if (netloc, query) == (parts.netloc, parts.query):
        return uri
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Every URL in `text` (a message, a traceback, markdown) passed through `redact_url`."""
    if "://" not in text:
        return text

    def redacted(match: re.Match) -> str:
        url = match.group(0)
        kept = url.rstrip(":;,.")  # a message's own punctuation after the URL ("<url>: HTTP 404")
        return redact_url(kept) + url[len(kept) :]

    return URL_IN_TEXT.sub(redacted, text)


class SecretUrl(SecretStr):
    """A URL that shows itself redacted: `str()`, `repr()` and Prefect's stored parameters show `redact_url(url)`.

    A flow run's parameters are stored as the caller gives them, before the flow runs, and show on its page. A
    pydantic `SecretStr` is stored as `**********` (Prefect serializes parameters with FastAPI's `jsonable_encoder`,
    which calls `str()`); this one is stored as the redacted URL, so the run still says which file it read.
    `get_secret_value()` gives the URL itself.
    """

    def _display(self) -> str:
        return redact_url(self.get_secret_value())


class RedactsUrls:
    """Mixin for an exception whose message names a source: its URLs are redacted when it is raised.

    `class SourceError(RedactsUrls, ValueError)`. Prefect stores `str(exception)` as the Failed state's message
    and sends it in the state's event; the exception's traceback and its causes, which may print the URL too, go
    only to log records, which `hide_url_credentials_in_logs` redacts.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact_text(arg) if isinstance(arg, str) else arg for arg in args))


def reveal(uri: str | SecretStr | None) -> str | None:
    """The URL itself, from a plain string or a `SecretStr` (`SecretUrl`) holding it."""
    return uri.get_secret_value() if isinstance(uri, SecretStr) else uri


@contextmanager
def redacted_errors() -> Iterator[None]:
    """Re-raise an exception whose message holds a URL with credentials as the same type with the URL redacted.

    Prefect puts `str(exception)` in the Failed state's message, which the API stores and every event carries;
    the original stays the new one's `__cause__` (tracebacks in log records are redacted by the record factory).
    """
    try:
        yield
    except Exception as error:
        message = str(error)
        if redact_text(message) == message:
            raise
        try:
            redacted = type(error)(redact_text(message))
        except Exception:
            redacted = RuntimeError(f"{type(error).__name__}: {redact_text(message)}")
        raise redacted from error


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: logging reports it when a handler formats it
        return
    if "://" in message and (redacted := redact_text(message)) != message:
        record.msg, record.args = redacted, ()
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        if "://" in text:
            record.exc_text = redact_text(text)  # formatters use `exc_text` when it is set


def hide_url_credentials_in_logs() -> None:
    """Redact URLs in every log record of the process, Prefect's included, as it is created (idempotent).

    A record factory rather than a handler filter: Prefect rebuilds its handlers when its logging is set up again,
    and a filter on a logger misses the records of its children. Messages, arguments and tracebacks are covered:
    an exception chained from an HTTP error prints the URL it requested.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacts_urls", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _redact_record(record)
        return record

    factory.redacts_urls = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
