"""Every check a delivery's settings must pass before they are saved, in the admin or the API.

``deliveries.channels.delivery_errors`` returns problems by field, each message saying what is
wrong and how to fix it; nothing is saved while there is one. Here are its pieces: the checks
every delivery passes, and each channel's, which that channel's ``validate`` calls. The
transports parse what they will use (keys, pins, fingerprints), so a setting accepted here is
one the run can use.
"""

from __future__ import annotations

from urllib3.util import parse_url

from customfields.engine import Column, CycleError, UnknownReference, compile_columns
from deliveries.filenames import FileNameError, file_name_check
from deliveries.filewriter import delivery_columns
from deliveries.http_auth import RESERVED_HEADERS, auth_errors
from deliveries.outcomes import accepted_statuses_error, json_path_error, regex_error
from deliveries.payloads import payload_errors, template_placeholders
from deliveries.schedules import ScheduleError, schedule_check
from deliveries.setting_patterns import (
    CERTIFICATE_FINGERPRINT,
    FILE_NAME_TEMPLATE,
    HOST,
    HOST_KEY,
    NON_BLANK,
    SIGNING_SECRET,
    URL,
)
from deliveries.signing import signing_secret_error
from deliveries.transports.base import PermanentTransportError
from deliveries.transports.http import address_problem, header_problem

PLAIN_FTP = (
    "Plain FTP is not offered: it sends the password and every referral in clear text. "
    "Use SFTP, or FTPS (FTP over TLS), which most FTP servers also speak."
)
NAME_TAKEN = "This client already has a delivery of that name."
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


def name_errors(delivery, errors) -> None:
    if not NON_BLANK.fullmatch(delivery.name):
        errors["name"].append("Give the delivery a name.")
    elif delivery.client_id and _name_taken(delivery):
        errors["name"].append(NAME_TAKEN)


def campaign_errors(delivery, campaigns, errors) -> None:
    if not delivery.all_campaigns and campaigns is not None:
        if not campaigns:
            errors["campaigns"].append("Choose at least one campaign, or all campaigns.")
        elif any(c.client_id != delivery.client_id for c in campaigns):
            errors["campaigns"].append("Only the client's own campaigns can be chosen.")


def schedule_errors(delivery, errors) -> None:
    try:
        schedule_check(delivery)
    except ScheduleError as exc:
        errors[exc.field].append(str(exc))


def _name_taken(delivery) -> bool:
    from deliveries.models import Delivery

    same = Delivery.objects.filter(client_id=delivery.client_id, name__iexact=delivery.name)
    return same.exclude(pk=delivery.pk).exists() if delivery.pk else same.exists()


def connection_errors(delivery, errors) -> None:
    """A file server's address and login name (the channel checks its credentials)."""
    host = delivery.host
    if not NON_BLANK.fullmatch(host):
        errors["host"].append("Give the server's host name or address.")
    elif not HOST.fullmatch(host):
        if host.strip().lower().startswith("ftp://"):
            errors["host"].append(PLAIN_FTP)
        else:
            errors["host"].append("Give only the host name (no scheme, path or spaces).")
    if delivery.port is not None and not 1 <= delivery.port <= 65535:
        errors["port"].append("A port is 1 to 65535.")
    if not NON_BLANK.fullmatch(delivery.username):
        errors["username"].append("Give the user name to log in with.")


def sftp_login_errors(delivery, errors) -> None:
    from deliveries.transports import sftp

    if not delivery.password and not delivery.private_key:
        errors["password"].append("Give a password or a private key (or both).")
    if delivery.private_key:
        try:
            sftp.private_key_load(delivery.private_key, delivery.passphrase)
        except PermanentTransportError as exc:
            errors["private_key"].append(_sentence(str(exc)))
    if not delivery.host_key.strip():
        errors["host_key"].append(
            "Pin the server's host key: use 'Fetch host key', check the fingerprint with the "
            "server's owner, and paste it here."
        )
    else:
        try:
            sftp.host_key_pin_parse(delivery.host_key)
        except PermanentTransportError as exc:
            errors["host_key"].append(_sentence(str(exc)))
        else:
            if not HOST_KEY.fullmatch(delivery.host_key):
                errors["host_key"].append(
                    "Give the key line (ssh-ed25519 AAAA...) or its SHA256: fingerprint."
                )


def ftps_login_errors(delivery, errors) -> None:
    from deliveries.transports import ftps

    if not delivery.password:
        errors["password"].append("Give the password (FTPS logs in with a password).")
    if delivery.tls_mode not in ("explicit", "implicit"):
        errors["tls_mode"].append("Choose explicit or implicit TLS.")
    if delivery.certificate_fingerprint.strip():
        try:
            ftps.certificate_fingerprint_normalise(delivery.certificate_fingerprint)
        except PermanentTransportError as exc:
            errors["certificate_fingerprint"].append(_sentence(str(exc)))
        else:
            if not CERTIFICATE_FINGERPRINT.fullmatch(delivery.certificate_fingerprint):
                errors["certificate_fingerprint"].append(
                    "Give the SHA-256 fingerprint as 64 hex digits (colons allowed)."
                )


_AUTH_FIELDS = {"kind": "auth_kind", "username": "auth_username", "secret": "auth_secret",
                "key_name": "auth_key_name"}  # fmt: skip


def api_errors(delivery, errors) -> None:
    problem = _url_problem(delivery.url)
    if problem:
        errors["url"].append(problem)
    if delivery.http_method not in ("POST", "PUT", "GET"):
        errors["http_method"].append("Choose POST, PUT or GET.")
    if (delivery.http_method == "GET") != (delivery.body_format == "query"):
        errors["body_format"].append("GET sends a query string; POST and PUT send a body.")
    template = delivery.body_template if delivery.body_template.strip() else None
    names = (
        [str(c.get("output", "")).strip() for c in delivery.columns if isinstance(c, dict)]
        if isinstance(delivery.columns, list) else []
    )  # fmt: skip
    for message in payload_errors(delivery.body_format, template=template, output_names=names):
        errors["body_template" if template else "columns"].append(message)
    if template is not None and delivery.client_id:
        try:
            placeholders = template_placeholders(template)
            compile_columns(client=delivery.client, columns=[Column(n, n) for n in placeholders])
        except (UnknownReference, CycleError, ValueError) as exc:
            errors["body_template"].append(str(exc))
    if problems := columns_errors(delivery):  # with a template too: no list of nonsense
        errors["columns"].extend(problems)
    _api_headers(delivery.headers, errors)
    if delivery.signing_secret and (problem := _signing_secret_problem(delivery.signing_secret)):
        errors["signing_secret"].append(problem)
    for field, message in auth_errors(
        delivery.auth_kind, username=delivery.auth_username, secret=delivery.auth_secret,
        key_name=delivery.auth_key_name,
    ).items():  # fmt: skip
        errors[_AUTH_FIELDS.get(field, field)].append(message)
    if not 0.5 <= delivery.connect_timeout <= 60:
        errors["connect_timeout"].append("Between 0.5 and 60 seconds.")
    if not 1 <= delivery.total_timeout <= 300:
        errors["total_timeout"].append("Between 1 and 300 seconds.")
    problem = accepted_statuses_error(delivery.accepted_statuses)
    if problem:
        errors["accepted_statuses"].append(problem)
    if delivery.success_match == "regex":
        problem = regex_error(delivery.success_match_value)
        if problem:
            errors["success_match_value"].append(problem)
    if delivery.success_match == "json_path":
        problem = json_path_error(delivery.success_json_path)
        if problem:
            errors["success_json_path"].append(problem)
    if delivery.success_match != "none" and not delivery.success_match_value:
        errors["success_match_value"].append("Give the text, pattern or value to look for.")
    if not 1 <= delivery.max_in_flight <= 200:
        errors["max_in_flight"].append("Between 1 and 200 requests at once.")
    if delivery.pause_after_minutes < 1:
        errors["pause_after_minutes"].append("At least 1 minute.")


def _signing_secret_problem(secret: str) -> str | None:
    """The sender's own check, and the schema's pattern (the two agree; both are asked so
    that neither can take what the other refuses)."""
    problem = signing_secret_error(secret)
    if problem is None and not SIGNING_SECRET.fullmatch(secret):
        problem = signing_secret_error("")  # the sender's explanation of a valid secret
    return problem


def _url_problem(url: str) -> str | None:
    """Checked as stored, by the sender's own check, so a saved address is one it can use;
    then what this platform asks of an address besides."""
    problem = address_problem(url)
    if problem:
        return problem
    if parse_url(url).auth:
        return "Put credentials in the authentication settings, not in the URL."
    if any(c.isspace() for c in url):
        return "An address has no spaces (encode them as %20)."
    if not URL.fullmatch(url):
        return (
            "Give http:// or https://, a host name, a port of 1 to 65535 if any, then a path "
            "of visible ASCII characters (percent-encode the others)."
        )
    return None


def _api_headers(headers, errors) -> None:
    if not isinstance(headers, list) or not all(
        isinstance(h, dict) and set(h) == {"name", "value"}
        and all(isinstance(v, str) for v in h.values()) for h in headers
    ):  # fmt: skip
        errors["headers"].append("Headers are a list of {'name': ..., 'value': ...}.")
        return
    for header in headers:
        name = header["name"]  # as stored, as sent: " X-Id" is not "X-Id"
        problem = header_problem(name, header["value"])
        if problem:
            errors["headers"].append(problem)
        elif name.lower() in RESERVED_HEADERS:
            errors["headers"].append(f"{name} is set by the platform.")


def file_format_errors(delivery, errors) -> None:
    try:
        file_name_check(delivery.file_name_template)
    except FileNameError as exc:
        errors["file_name_template"].append(str(exc))
    else:
        if not FILE_NAME_TEMPLATE.fullmatch(delivery.file_name_template):
            errors["file_name_template"].append(
                "Use letters, digits, '.', '_', '-' and the placeholders in lower case."
            )
    if delivery.delimiter not in DELIMITERS:
        errors["delimiter"].append("Choose a comma, semicolon, tab or pipe.")
    if delivery.max_rows_per_file is not None and delivery.max_rows_per_file < 1:
        errors["max_rows_per_file"].append("At least 1 row per file, or empty for no limit.")
    errors_in_columns = columns_errors(delivery)
    if errors_in_columns:
        errors["columns"].extend(errors_in_columns)


def columns_errors(delivery) -> list[str]:
    columns = delivery.columns
    if not isinstance(columns, list) or not all(
        isinstance(c, dict) and set(c) == {"source", "output"}
        and all(isinstance(v, str) for v in c.values())
        for c in columns
    ):  # fmt: skip
        return ["Columns are a list of {'source': ..., 'output': ...}."]
    problems = []
    outputs = [c["output"].strip() for c in columns]
    if any(not output for output in outputs):
        problems.append("Every column needs an output name.")
    seen: set[str] = set()
    for output in outputs:
        if output.lower() in seen:
            problems.append(f"The output name {output!r} is used twice.")
        seen.add(output.lower())
    if delivery.client_id is None:
        return problems
    try:
        compile_columns(client=delivery.client, columns=delivery_columns(delivery))
    except (UnknownReference, CycleError, ValueError) as exc:
        problems.append(str(exc))
    return problems


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
