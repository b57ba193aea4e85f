"""Logs, traces and request ids for the HTTP API and the Kafka worker (ADR 0023).

Everything here is an adapter: the domain and the ledger never import logging handlers or
OpenTelemetry. Logs are stdlib ``logging`` under the ``quipu`` logger, one JSON object per line
by default; traces are OpenTelemetry spans, off unless ``QUIPU_OTEL_EXPORTER`` names an exporter.
"""
