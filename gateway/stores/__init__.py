"""Small storage interfaces, each with an in-memory twin (embedded default) and Redis."""
