from __future__ import annotations

import re

from django import forms


class CodeForm(forms.Form):
    """The six digits an authenticator app shows (spaces, as some apps group them, ignored)."""

    token = forms.CharField(
        label="Code",
        max_length=12,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "autofocus": True,
                "size": 8,
            }
        ),
    )

    def clean_token(self) -> str:
        token = re.sub(r"\s", "", self.cleaned_data["token"])
        if not re.fullmatch(r"\d{6}", token):
            raise forms.ValidationError("Enter the 6-digit code your authenticator app shows.")
        return token
