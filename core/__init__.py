"""Headless core of the retrieve-and-rerank explorer: no Streamlit here, the app and CLI call into it."""
