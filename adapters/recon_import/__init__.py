"""Importers of external records for reconciliation: processor reports and bank statements.

``read_statement(path, fmt)`` reads a whole file in one of :data:`FORMATS` (Mercado Pago's
release report, Stripe's balance transactions, ISO 20022 camt.053, a bank CSV) into validated
``StatementLinePayload`` lines, or refuses it whole with :class:`ImportRefused` naming every bad
line and column. ``statement_events`` turns an accepted file into the ``recon.file_imported`` and
``recon.line_imported`` documents to post; they are derived from the file's bytes alone, so
importing a file twice records it once. Layouts live in ``config/recon_formats.toml``.
"""

from adapters.recon_import.events import statement_events
from adapters.recon_import.model import ImportedFile, ImportRefused
from adapters.recon_import.reader import FORMATS, read_statement

__all__ = ["FORMATS", "ImportRefused", "ImportedFile", "read_statement", "statement_events"]
