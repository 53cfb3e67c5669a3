"""Every check a delivery's settings must pass before they are saved, in the admin or the API.

``delivery_errors`` returns problems by field, each message saying what is wrong and how to
fix it; nothing is saved while there is one. The transports parse what they will use (keys,
pins, fingerprints), so a setting accepted here is one the run can use.
"""

from __future__ import annotations

from collections import defaultdict

from customfields.engine import CycleError, UnknownReference, compile_columns
from deliveries.filenames import FileNameError, file_name_check
from deliveries.filewriter import delivery_columns
from deliveries.schedules import ScheduleError, schedule_check
from deliveries.transports.base import PermanentTransportError

PLAIN_FTP = (
    "Plain FTP is not offered: it sends the password and every referral in clear text. "
    "Use SFTP, or FTPS (FTP over TLS), which most FTP servers also speak."
)
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
FILE_KINDS = ("sftp", "ftps")


def kind_error(kind: str) -> str | None:
    if kind.strip().lower() in ("ftp", "ftpes-off", "plain ftp"):
        return PLAIN_FTP
    if kind == "api":
        return "Real-time API deliveries are not available yet; choose SFTP or FTPS files."
    if kind not in FILE_KINDS:
        return f"Unknown kind {kind!r}: choose sftp or ftps."
    return None


def delivery_errors(delivery, *, campaigns=None) -> dict[str, list[str]]:
    """Problems with ``delivery`` (unsaved settings), by field name."""
    errors: dict[str, list[str]] = defaultdict(list)
    problem = kind_error(delivery.kind)
    if problem:
        errors["kind"].append(problem)
        return dict(errors)
    if not delivery.name.strip():
        errors["name"].append("Give the delivery a name.")
    elif delivery.client_id and _name_taken(delivery):
        errors["name"].append("This client already has a delivery of that name.")
    _connection(delivery, errors)
    _format(delivery, errors)
    try:
        schedule_check(delivery)
    except ScheduleError as exc:
        errors[exc.field].append(str(exc))
    if not delivery.all_campaigns and campaigns is not None:
        if not campaigns:
            errors["campaigns"].append("Choose at least one campaign, or all campaigns.")
        elif any(c.client_id != delivery.client_id for c in campaigns):
            errors["campaigns"].append("Only the client's own campaigns can be chosen.")
    return dict(errors)


def _name_taken(delivery) -> bool:
    from deliveries.models import Delivery

    same = Delivery.objects.filter(client_id=delivery.client_id, name__iexact=delivery.name)
    return same.exclude(pk=delivery.pk).exists() if delivery.pk else same.exists()


def _connection(delivery, errors) -> None:
    host = delivery.host.strip()
    if not host:
        errors["host"].append("Give the server's host name or address.")
    elif "://" in host or "/" in host or " " in host:
        if host.lower().startswith("ftp://"):
            errors["host"].append(PLAIN_FTP)
        else:
            errors["host"].append("Give only the host name (no scheme, path or spaces).")
    if delivery.port is not None and not 1 <= delivery.port <= 65535:
        errors["port"].append("A port is 1 to 65535.")
    if not delivery.username.strip():
        errors["username"].append("Give the user name to log in with.")
    if delivery.kind == "sftp":
        _sftp(delivery, errors)
    else:
        _ftps(delivery, errors)


def _sftp(delivery, errors) -> None:
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


def _ftps(delivery, errors) -> None:
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


def _format(delivery, errors) -> None:
    try:
        file_name_check(delivery.file_name_template)
    except FileNameError as exc:
        errors["file_name_template"].append(str(exc))
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
