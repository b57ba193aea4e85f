"""The finance team's web console, served by ``quipu serve`` at ``/console`` (ADR 0021).

Server-rendered pages (Jinja2 templates, one stylesheet, charts as inline SVG from matplotlib, no
JavaScript) over the same row functions the CLI prints, so a figure on a page is the CLI's figure.
People sign in with an OAuth client's id and secret; the client's scopes decide which pages they
see and which decisions they may record.

- ``session.py``: the session cookie, CSRF tokens and the viewer's locale.
- ``pages.py``: what each page shows, from the CLI's row functions.
- ``routes.py``: the routes; ``mount`` adds them to the API's FastAPI app.
- ``templates/``, ``static/``: the HTML and its stylesheet, served from this machine only.
"""

from adapters.console.routes import mount

__all__ = ["mount"]
