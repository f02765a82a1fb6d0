"""The web dashboard: server-rendered pages at ``/`` beside the JSON API, with small
vanilla scripts that follow ``GET /v1/events`` (``blueprint`` builds it; ``sessions``
holds the sign-in; ``pages`` the views; ``compare`` runs side by side; ``system`` the
workers and queues view)."""
