"""The bootstrap admin API key: which Secret holds it, and the Secret the operator creates."""

from __future__ import annotations

import base64
import secrets
import string
from typing import Any

from bbapi_operator.meta import Owner
from bbapi_operator.spec import SecretRef, Spec

KEY_LENGTH = 20
KEY_FIELD = "api-key"
_ALPHABET = string.ascii_letters + string.digits


def secret_ref(owner: Owner, spec: Spec) -> SecretRef:
    """The user's Secret if the spec names one, else the one the operator generates."""
    return spec.api_key_secret or SecretRef(name=owner.child("api-key"), key=KEY_FIELD)


def generate_key() -> str:
    """A random key in the shape of BuildBuddy's: 20 letters and digits."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(KEY_LENGTH))


def secret(owner: Owner, key: str) -> dict[str, Any]:
    """The generated Secret. Created once and never patched, so the key never changes."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": owner.metadata("api-key"),
        "type": "Opaque",
        "data": {KEY_FIELD: base64.b64encode(key.encode()).decode()},
    }
