"""Stage 2, index: sentences and chunks, the embedding model, the Chroma store and BM25."""
