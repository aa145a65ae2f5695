"""Entry point: `streamlit run app.py`. Renders the settings sidebar, starts loading the models, routes to the pages."""

import streamlit as st

from ui import resources
from ui.safe import md
from ui.sidebar import settings_sidebar

st.set_page_config(page_title="Retrieve & rerank explorer", page_icon="🔎", layout="wide")
pages = st.navigation(
    [
        st.Page("views/home.py", title="Home", icon="🏠", default=True),
        st.Page("views/documents.py", title="Documents", icon="📄"),
        st.Page("views/search.py", title="Search", icon="🔎"),
        st.Page("views/evaluate.py", title="Evaluate", icon="📊"),
        st.Page("views/experiments.py", title="Experiments", icon="🧪"),
    ]
)
# The models and the index start loading now, in the background, whichever page was opened: pages
# render at once and wait for them only where they need them (ui/resources.py).
settings = settings_sidebar()
resources.start_loading(settings)
# Home and Search say themselves what is loading; the other pages import the heavy libraries at their
# top, so until those are in, this line is what they show.
step = resources.loading_step(settings) if pages.url_path not in ("", "search") else None
loading = st.empty()
if step:
    loading.info(f"{md(step)}… This page opens when the models and the index are ready.", icon="⏳")
try:
    pages.run()
finally:
    loading.empty()
