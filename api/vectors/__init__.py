"""Movie vectors in Milvus: one collection per model version."""
