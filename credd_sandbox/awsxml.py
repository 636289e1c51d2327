"""AWS wire formats the sandbox speaks: query-protocol XML, S3 XML and JSON-protocol errors.

Responses are shaped like the real services' so botocore and the AWS CLI parse them unchanged.
"""

from __future__ import annotations

import json
import uuid
from xml.sax.saxutils import escape

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"

NAMESPACES = {"sts": STS_NS, "iam": IAM_NS}


class AwsFault(Exception):
    """An error answered in the calling service's own error format.

    ``message`` is shown to the client; it never carries a secret.
    """

    def __init__(self, code: str, message: str, status: int = 400, *, sender: bool = True) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.sender = sender


def new_request_id() -> str:
    return str(uuid.uuid4())


def element(name: str, value: object) -> str:
    """``<name>value</name>`` with the value escaped."""
    return f"<{name}>{escape(str(value))}</{name}>"


def query_response(action: str, service: str, result_xml: str, request_id: str) -> bytes:
    """A query-protocol success body, e.g. ``<GetSessionTokenResponse>``."""
    ns = NAMESPACES.get(service, STS_NS)
    result = f"<{action}Result>{result_xml}</{action}Result>" if result_xml else ""
    return (
        f'<{action}Response xmlns="{ns}">{result}'
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    ).encode()


def query_error(fault: AwsFault, service: str, request_id: str) -> bytes:
    """The query-protocol ``<ErrorResponse>`` STS and IAM return."""
    ns = NAMESPACES.get(service, STS_NS)
    kind = "Sender" if fault.sender else "Receiver"
    return (
        f'<ErrorResponse xmlns="{ns}"><Error><Type>{kind}</Type>'
        f"{element('Code', fault.code)}{element('Message', fault.message)}</Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()


def s3_error(fault: AwsFault, request_id: str) -> bytes:
    """S3's bare ``<Error>`` document."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error>{element('Code', fault.code)}{element('Message', fault.message)}"
        f"<RequestId>{request_id}</RequestId></Error>"
    ).encode()


def json_error(fault: AwsFault) -> bytes:
    """The JSON-protocol error body (SQS and other JSON services)."""
    return json.dumps({"__type": fault.code, "message": fault.message}).encode()


def render_error(
    fault: AwsFault, service: str | None, content_type: str, request_id: str
) -> tuple[bytes, list[tuple[str, str]]]:
    """Body and headers for ``fault`` in the format the caller's protocol expects."""
    headers = [("x-amzn-RequestId", request_id)]
    if service == "s3":
        headers.append(("Content-Type", "application/xml"))
        headers.append(("x-amz-request-id", request_id))
        return s3_error(fault, request_id), headers
    if content_type.startswith("application/x-amz-json"):
        kind = "Sender" if fault.sender else "Receiver"
        headers.append(("Content-Type", content_type.split(";")[0]))
        headers.append(("x-amzn-query-error", f"{fault.code};{kind}"))
        return json_error(fault), headers
    headers.append(("Content-Type", "text/xml"))
    return query_error(fault, service or "sts", request_id), headers
