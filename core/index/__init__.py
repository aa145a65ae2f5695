"""Where chunks are stored and searched: the vector store protocol, Milvus, and BM25."""

from core.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    "core.index",
    {
        "VectorStore": "store",
        "VectorStoreError": "store",
        "MAX_SEARCH_LIMIT": "store",
        "MilvusVectorStore": "milvus",
        "LexicalSearch": "bm25",
    },
)
