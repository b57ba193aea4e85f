"""An accepted file as the raw event documents to post: ``recon.file_imported``, then one
``recon.line_imported`` per line.

Everything in them is derived from the file's bytes, never from the moment of import: the ids
come from the file's SHA-256 and the line number, and ``occurred_at`` from the lines' dates,
so importing the same file again posts the same documents and records nothing new.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Final

from adapters.recon_import.model import ImportedFile
from domain.recon.events import FileImportedPayload

#: Fixed forever: changing it would give every file already imported new ids.
NAMESPACE: Final = uuid.UUID("4e5ee52e-b43a-4a95-90c5-a50d9c82522a")
#: The envelope's ``source``: the importer, whatever produced the file.
SOURCE: Final = "recon-import"
#: ``occurred_at`` of a file without lines.
EPOCH: Final = dt.date(1970, 1, 1)


def file_event_id(sha256: str) -> uuid.UUID:
    """The id of a file's ``recon.file_imported``."""
    return uuid.uuid5(NAMESPACE, f"recon-file:{sha256}")


def line_event_id(sha256: str, line_no: int) -> uuid.UUID:
    """The id of a line's ``recon.line_imported``."""
    return uuid.uuid5(NAMESPACE, f"recon-line:{sha256}:{line_no}")


def _midnight(day: dt.date) -> str:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).isoformat()


def statement_events(imported: ImportedFile) -> list[dict[str, Any]]:
    """The raw documents to post for a file: its ``recon.file_imported`` first, then its lines in order."""
    latest = max((line.booked_on for line in imported.lines), default=EPOCH)
    file_payload = FileImportedPayload.model_validate(
        {
            "file_sha256": imported.sha256,
            "file_name": imported.name,
            "source": imported.source,
            "source_kind": imported.source_kind,
            "format": imported.format,
            "lines": len(imported.lines),
        }
    )
    documents: list[dict[str, Any]] = [
        {
            "event_id": str(file_event_id(imported.sha256)),
            "type": "recon.file_imported",
            "schema_version": 1,
            "occurred_at": _midnight(latest),
            "source": SOURCE,
            "payload": file_payload.model_dump(mode="json"),
        }
    ]
    documents.extend(
        {
            "event_id": str(line_event_id(imported.sha256, line.line_no)),
            "type": "recon.line_imported",
            "schema_version": 1,
            "occurred_at": _midnight(line.booked_on),
            "source": SOURCE,
            "payload": line.model_dump(mode="json"),
        }
        for line in imported.lines
    )
    return documents
