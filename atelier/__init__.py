"""Atelier: durable, observable generative-AI jobs.

``import atelier`` gives the Python client::

    from atelier import Client

    client = Client("http://127.0.0.1:8000", api_key)
    job = client.wait(client.submit("train", "dcgan", {"steps": 800})["id"])

The service itself lives in ``atelier.api`` (the HTTP API), ``atelier.workers`` (Celery
workers running TensorFlow), ``atelier.shared`` (what both import) and ``atelier.cli``
(the ``atelier`` command).
"""

from atelier.client import ApiError, Client, Dataset, Job, Model, epoch_seconds

__all__ = ["ApiError", "Client", "Dataset", "Job", "Model", "epoch_seconds"]
