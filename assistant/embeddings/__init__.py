"""Embedding models: the offline default and any sentence-transformers model by name or path."""

from assistant.embeddings.embedder import Embedder, load_embedder

__all__ = ["Embedder", "load_embedder"]
