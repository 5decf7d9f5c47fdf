"""Small builders of GDELT-like files shared by the ingest tests (served over HTTP or written to disk)."""

from __future__ import annotations

import hashlib
import io
import zipfile


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def zip_bytes(name: str, text: bytes) -> bytes:
    """A zip holding one member ``name`` with ``text`` (deflated), as GDELT publishes its slices."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, text)
    return buf.getvalue()
