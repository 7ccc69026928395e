"""The gateway: search with compliance checks over a Qdrant vector store, and indexing."""
