"""The KDCI Studio dashboard (``streamlit run app/main.py``): ``main`` (the navigation over the
page scripts in ``pages/``) and ``shared`` (session state and the view helpers pages share).
Installed with the engine, so the pages import it from any working directory."""
