"""Keep AWS credentials out of log records, including botocore's own debug records.

At DEBUG level botocore logs every request it sends: `botocore.endpoint` prints the headers, and
`botocore.auth` the canonical request it signs. With temporary credentials both contain the session token
(`X-Amz-Security-Token`) in clear; seen in this project's tests with s3fs 2026.9 / botocore 1.43. Anyone who turns
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
    """Install the filter on botocore's loggers (idempotent: a logger holds the one filter once)."""
    for name in AWS_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


_SECRET_QUERY_KEYS = ("x-amz-credential", "x-amz-security-token", "x-amz-signature", "signature", "sig", "token")


def redact_url(uri: str) -> str:
    """`uri` without the credentials a URL can carry: a `user:password@` part and presigned query parameters.

    A plain path comes back unchanged. Used wherever a source URI is recorded (the lake's lineage)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(uri)
    if not parts.scheme or len(parts.scheme) == 1:  # a local path (or a Windows drive letter)
        return uri
    netloc = parts.netloc.rsplit("@", 1)[-1] if "@" in parts.netloc else parts.netloc
    if "@" in parts.netloc:
        netloc = f"{MASK}@{netloc}"
    query = [
        (key, MASK if key.lower() in _SECRET_QUERY_KEYS else value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="<>"), parts.fragment))
