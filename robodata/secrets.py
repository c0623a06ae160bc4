"""Secrets never live in robodata's files, run configs or metadata: find them, and redact URLs that carry them.

A config (the YAML file merged with ``--set`` overrides) is refused when it holds a secret anywhere:

- a key that names one (``password``, ``token``, ``api_key``, ...) with a value;
- a URL with a password in it (``postgresql://user:pw@host/db``, ``ray://u:p@head:10001``) or a secret query
  parameter (``s3://b/x?token=...``, ``X-Amz-Signature=...``);
- a command-line argument that passes one (``--wandb.api_key=...``, or ``["--token", "..."]`` in a list).

Credentials come from the environment instead (``AWS_*``, ``MLFLOW_TRACKING_PASSWORD``,
``$ROBODATA_REGISTRY_URL``, ``$ROBODATA_STORAGE_OPTIONS``). :func:`redact` blanks a URL's password and secret
query values wherever one is shown (metadata, logs, errors).
"""

from __future__ import annotations

import re
from typing import Any

SECRET_WORDS = ("password", "passwd", "secret", "token", "access_key", "api_key", "apikey", "credential",
                "signature", "private_key")
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@:\s]*):(?P<pw>[^/@\s]+)@")
_QUERY_SECRET = re.compile(r"(?P<key>[?&;](?:[^=&;#\s]*(?:" + "|".join(SECRET_WORDS) + r")[^=&;#\s]*))=(?P<v>[^&;#\s]+)",
                           re.IGNORECASE)
_ARG_SECRET = re.compile(r"^--?[\w.-]*(?:" + "|".join(SECRET_WORDS) + r")[\w.-]*(?:=(?P<v>.+))?$", re.IGNORECASE)


def _secret_word(name: str) -> bool:
    n = name.lower().replace("-", "_")
    return any(w in n for w in SECRET_WORDS)


def secrets_in_text(text: str) -> list[str]:
    """What in one string is a secret: "a password in a URL", "a secret URL parameter", "an argument ..."."""
    out = []
    if _URL_PASSWORD.search(text):
        out.append("a password in a URL")
    if _QUERY_SECRET.search(text):
        out.append("a secret URL parameter")
    m = _ARG_SECRET.match(text.strip())
    if m and m["v"]:
        out.append("a secret command-line argument")
    return out


def find_secrets(data: Any, path: str = "") -> list[str]:
    """Where ``data`` (a config mapping) holds a secret: ``key.path (what)`` for each."""
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            p = f"{path}.{k}" if path else str(k)
            if _secret_word(str(k)) and v not in (None, "", [], {}):
                out.append(p)
            else:
                out += find_secrets(v, p)
    elif isinstance(data, (list, tuple)):
        items = list(data)
        for i, v in enumerate(items):
            p = f"{path}.{i}"
            if isinstance(v, str) and _ARG_SECRET.match(v.strip()) and "=" not in v and i + 1 < len(items):
                out.append(f"{p} (a secret command-line argument: {v} followed by its value)")
            out += find_secrets(v, p)
    elif isinstance(data, str):
        out += [f"{path} ({what})" for what in secrets_in_text(data)]
    return out


def redact(text: str) -> str:
    """``text`` with every URL password and secret query value replaced by ``***``."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}=***", text)
