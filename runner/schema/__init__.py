"""Schema features: the dialect-neutral model and introspection, adoption, `agor-db check` (lints + parity)."""
