"""Embedding models: the offline default and any sentence-transformers model by name or path."""

from assistant.embeddings.embedder import Embedder, TextEmbedder, load_embedder

__all__ = ["Embedder", "TextEmbedder", "load_embedder"]
