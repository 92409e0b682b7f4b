"""The web interface: REST API, WebSocket and SSE streams, auth, metrics and the static UI.

`bassi.web.app.create_app` builds the FastAPI app; `bassi.web.server.run_server` serves it.
"""
