"""Entry point: `streamlit run app.py`. Renders the settings sidebar, starts loading the models, routes to the pages."""

import streamlit as st

from ui import resources
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
resources.show_embedding_path(settings)
# Every page says itself what is loading, where it needs the workspace (ui/resources.py: when_open).
pages.run()
