"""Lead ingestion: source connectors (``sources``) and the pure normaliser (``normalise``)."""
