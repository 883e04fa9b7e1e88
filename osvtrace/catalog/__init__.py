"""The tracepoint schema, the record layout it is encoded in, and what is generated from it."""
