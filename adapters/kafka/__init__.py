"""Kafka adapters: the ingest worker, its dead letters, the journal outbox publisher and broker helpers.

Everything here speaks the plain Kafka protocol through aiokafka (and faust-streaming for the worker's
consumer), so it runs against Apache Kafka in production and against the development broker described in
``shared/KAFKA.md`` on this project's machines. No business rule lives here: the worker turns messages into
calls to :meth:`domain.service.LedgerService.post` and nothing more (ADR 0010, ADR 0022).
"""
