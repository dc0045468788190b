"""Lead ingestion: source adapters (``sources``) and the pure normaliser (``normalise``)."""
