"""Turning files into indexed chunks: parsing, chunking, the catalog of indexed files, the workspace."""

from core.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    "core.ingest",
    {
        "IngestError": "parsing",
        "ParsedDocument": "parsing",
        "ParsedFile": "parsing",
        "SUPPORTED_SUFFIXES": "parsing",
        "parse_file": "parsing",
        "Chunker": "chunking",
        "Catalog": "catalog",
        "IndexedFile": "catalog",
        "FileInput": "workspace",
        "FileReport": "workspace",
        "IngestSummary": "workspace",
        "Workspace": "workspace",
        "name_problem": "names",
        "quoted": "names",
        "repair": "repair",
    },
)
