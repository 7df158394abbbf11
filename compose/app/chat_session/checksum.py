"""Checksums of written data (docs/app-api.md): the suite recomputes them.

The checksum is the hex SHA-256 of the UTF-8 bytes of
``json.dumps(fields, sort_keys=True, separators=(",", ":"))`` where the fields
are the ones a client writes: for a session ``client_id`` (lower-case hyphenated
UUID), ``title`` and ``model`` (the model id, an integer); for a message
``client_id``, ``role`` and ``content``.
"""

import hashlib
import json
from collections.abc import Mapping


def checksum(fields: Mapping[str, object]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def session_fields(client_id, title: str, model_id: int | None) -> dict[str, object]:
    return {"client_id": str(client_id), "title": title, "model": model_id}


def message_fields(client_id, role: str, content: str) -> dict[str, object]:
    return {"client_id": str(client_id), "role": role, "content": content}
