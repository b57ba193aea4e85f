"""The HTTP API: thin routes over the same application service ``quipu post`` uses."""
