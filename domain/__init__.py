"""Quipu's domain: events in the past tense, the write-side rules and the posting rules.

Nothing here does IO. ``domain.catalog`` lists every event type; ``domain.rules`` holds the
consistency boundaries (order, payment, fee, wallet, adjustment) and what each refuses;
``domain.posting_rules`` turns events into balanced journal entries; ``domain.service`` is
the one application service every adapter (CLI, HTTP, Kafka) calls to append events.
"""
