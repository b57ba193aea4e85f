"""Rule files as events: each published version of a ``config/`` file, with the date it takes
effect and its exact text, so the log says which rules were in force at any moment.

Bookings never depend on a file (they carry their figures and rule versions); what this adds
is the rules' own history: who published which version, when it took effect, and whether the
files on disk are a published version (``quipu config status``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Annotated, Literal

from pydantic import Field, model_validator

from domain.envelope import Envelope, Payload, Text

ConfigName = Literal[
    "regions", "consumption_taxes", "import_duties", "withholding", "fx", "calendars", "settlement",
    "payout_routes", "logistics", "conversion_rules", "aml",
]  # fmt: skip


class ConfigPublishedPayload(Payload):
    """A version of a rule file, published to take effect on a date."""

    name: ConfigName
    version: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")]
    effective_from: dt.date
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    """Of ``content`` encoded as UTF-8: what ``quipu config status`` compares the files on disk with."""
    content: Annotated[str, Field(min_length=1, max_length=60_000)]
    published_by: Text

    @model_validator(mode="after")
    def _hash_matches(self) -> ConfigPublishedPayload:
        if hashlib.sha256(self.content.encode()).hexdigest() != self.sha256:
            raise ValueError("sha256: is not the SHA-256 of content")
        return self


class ConfigPublished(Envelope):
    """``config.published``: books nothing; the history of the rules."""

    type: Literal["config.published"]
    schema_version: Literal[1]
    payload: ConfigPublishedPayload
