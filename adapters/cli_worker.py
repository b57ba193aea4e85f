"""``quipu worker`` and ``quipu outbox``: Kafka ingestion and publication (placeholder until they land)."""
