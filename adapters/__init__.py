"""Everything that touches the world: event and view stores, the CLI, the demo, reports.

``adapters.bootstrap`` is the one composition root that turns a database URL into
concrete stores; nothing else constructs them.
"""
