"""The admin's delivery form: secrets write-only, columns as lines, every check on its field."""

from __future__ import annotations

from django import forms

from deliveries.channels import (
    WRITABLE_SECRETS,
    all_settings,
    delivery_errors,
    kind_choices,
    kind_error,
)
from deliveries.models import Delivery
from deliveries.validation import DELIMITERS

# What every delivery has, whatever its channel; the channels' settings follow.
COMMON = ("client", "name", "kind", "active", "all_campaigns", "campaigns", "starts_at")


class KindField(forms.CharField):
    """A select of the offered kinds that still lets "ftp" reach validation, which answers it
    with a message pointing to SFTP and FTPS instead of "not a valid choice"."""

    widget = forms.Select(choices=kind_choices())


def columns_as_text(columns: list[dict]) -> str:
    return "\n".join(
        c["source"] if c["source"] == c["output"] else f"{c['source']} -> {c['output']}"
        for c in columns
    )


def headers_as_text(headers: list[dict]) -> str:
    return "\n".join(f"{h['name']}: {h['value']}" for h in headers)


def headers_from_text(text: str) -> list[dict]:
    headers = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise forms.ValidationError(f"Line {number}: write 'Name: value'.")
        headers.append({"name": name.strip(), "value": value.strip()})
    return headers


def columns_from_text(text: str) -> list[dict]:
    columns = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        source, arrow, output = (part.strip() for part in line.partition("->"))
        if not source or (arrow and not output):
            raise forms.ValidationError(f"Line {number}: write 'source -> Output name'.")
        columns.append({"source": source, "output": output or source})
    return columns


class DeliveryForm(forms.ModelForm):
    kind = KindField(max_length=8)
    columns_text = forms.CharField(
        label="Columns",
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 60}),
        help_text=(
            "One per line, in file order: a standard field, extra.<key> or a custom field, "
            "optionally '-> Output name'. Empty: every standard field."
        ),
    )
    password = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False)
    )
    private_key = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60, "autocomplete": "off"}),
        help_text="OpenSSH or PEM text (ed25519, RSA, ECDSA).",
    )
    passphrase = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False)
    )
    auth_secret = forms.CharField(
        label="Password, token or API key", required=False, strip=False,
        widget=forms.PasswordInput(render_value=False),
    )  # fmt: skip
    signing_secret = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False),
        help_text="whsec_... agreed with the receiver; empty on a new delivery: one is made "
        "and shown once.",
    )  # fmt: skip
    headers_text = forms.CharField(
        label="Headers", required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="One per line: 'Name: value'.",
    )  # fmt: skip
    clear_auth_secret = forms.BooleanField(required=False, label="Remove the stored secret")
    clear_signing_secret = forms.BooleanField(required=False, label="Remove (a new one is made)")
    clear_password = forms.BooleanField(required=False, label="Remove the stored password")
    clear_private_key = forms.BooleanField(required=False, label="Remove the stored key")
    clear_passphrase = forms.BooleanField(required=False, label="Remove the stored passphrase")
    delimiter = forms.ChoiceField(choices=[(k, v) for k, v in DELIMITERS.items()])

    class Meta:
        model = Delivery
        # headers: edited as "headers_text" lines
        fields = (*COMMON, *(name for name in all_settings() if name != "headers"))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "columns_text" in self.fields:
            self.fields["columns_text"].initial = columns_as_text(self.instance.columns or [])
        if "headers_text" in self.fields:
            self.fields["headers_text"].initial = headers_as_text(self.instance.headers or [])
        for name in WRITABLE_SECRETS:
            if name in self.fields:
                stored = bool(getattr(self.instance, name, ""))
                state = (
                    "A value is stored (never shown); type to replace it."
                    if stored
                    else ("Nothing stored.")
                )
                extra = self.fields[name].help_text
                self.fields[name].help_text = f"{extra} {state}".strip()
                self.initial[name] = ""  # write-only: the stored value never reaches the page

    def clean_kind(self) -> str:
        kind = self.cleaned_data["kind"].strip().lower()
        problem = kind_error(kind)
        if problem:  # "ftp": the message pointing to SFTP and FTPS
            raise forms.ValidationError(problem)
        return kind

    def clean_headers_text(self) -> list[dict]:
        return headers_from_text(self.cleaned_data.get("headers_text") or "")

    def clean_columns_text(self) -> list[dict]:
        return columns_from_text(self.cleaned_data.get("columns_text") or "")

    def clean(self):
        cleaned = super().clean()
        for name in WRITABLE_SECRETS:
            if name not in self.fields:
                continue
            if cleaned.get(f"clear_{name}"):
                cleaned[name] = ""
            elif not cleaned.get(name):
                cleaned[name] = getattr(self.instance, name, "")  # blank keeps what is stored
        if self.errors:
            return cleaned
        candidate = self._candidate(cleaned)
        campaigns = list(cleaned.get("campaigns") or [])
        for field, messages in delivery_errors(candidate, campaigns=campaigns).items():
            for message in messages:
                target = {"columns": "columns_text", "headers": "headers_text"}.get(field, field)
                self.add_error(target if target in self.fields else None, message)
        return cleaned

    def _candidate(self, cleaned: dict) -> Delivery:
        model_fields = {f.name for f in Delivery._meta.concrete_fields}
        candidate = self.instance
        for name, value in cleaned.items():
            if name in model_fields:
                setattr(candidate, name, value)
        candidate.columns = cleaned.get("columns_text", candidate.columns)
        candidate.headers = cleaned.get("headers_text", candidate.headers)
        return candidate

    def _post_clean(self) -> None:
        super()._post_clean()
        if "columns_text" in self.cleaned_data:
            self.instance.columns = self.cleaned_data["columns_text"]
        if "headers_text" in self.cleaned_data:
            self.instance.headers = self.cleaned_data["headers_text"]


class RedeliverForm(forms.Form):
    start = forms.DateTimeField(help_text="In the client's time zone; stored time of referrals.")
    end = forms.DateTimeField(help_text="Exclusive.")

    def __init__(self, *args, zone, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.zone = zone

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end:
            # Typed times are the client's wall clock, whatever the admin's own zone is.
            cleaned["start"] = start.replace(tzinfo=None).replace(tzinfo=self.zone)
            cleaned["end"] = end.replace(tzinfo=None).replace(tzinfo=self.zone)
            if cleaned["end"] <= cleaned["start"]:
                raise forms.ValidationError("The end of the range must be after its start.")
        return cleaned
