"""Failures that are the delivery's own configuration's, not the receiver's or the network's.

A send or run that cannot even be attempted as the delivery is configured (its column list or
body template names a custom field that was deleted, its signing secret cannot sign, its file
name cannot be made, its address cannot be sent to) raises ``ConfigurationError``. Retrying
cannot fix it, an account manager must: both engines record the failure (a real-time attempt,
a batch's error), pause the delivery and warn at once (``pausing.delivery_stop``), as a wrong
host key does. What the delivery owes stays owed, and goes out once it is resumed.
"""

from __future__ import annotations

from types import TracebackType

from customfields.engine import UnknownReference

# What building from settings raises when a setting is unusable (the custom-field engine's
# errors, a template's or a secret's, a missing key in a settings document).
SETTING_ERRORS = (ValueError, LookupError, TypeError)


class ConfigurationError(ValueError):
    """A delivery's setting that a send cannot use; the message says which, and what is wrong
    with it, and never repeats a secret."""


def pause_reason(error: str) -> str:
    """Why a delivery that met ``error`` (a ``ConfigurationError``'s message) is paused."""
    return f"{error}. Fix the delivery's settings, then resume it."


class configured:  # lower case: used as a statement, ``with configured("the body"):``
    """Turn a setting's error raised inside the block into ``ConfigurationError`` naming
    ``what`` (the setting); one already named passes as it is. A class, not a generator: it
    wraps every real-time send, and costs nothing when nothing fails."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:  # fmt: skip
        if exc is None or isinstance(exc, ConfigurationError):
            return
        if isinstance(exc, SETTING_ERRORS):
            raise ConfigurationError(_described(self.what, exc)) from exc


def _described(what: str, exc: BaseException) -> str:
    if isinstance(exc, UnknownReference):
        named_by = f", named by the custom field {exc.referrer!r}," if exc.referrer else ""
        return (
            f"{what}: {exc.name!r}{named_by} is neither a standard field nor one of the "
            "client's custom fields (deleted or renamed?)"
        )
    return f"{what}: {exc}" if str(exc) else f"{what}: {type(exc).__name__}"
