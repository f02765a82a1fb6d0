"""Lua scripts run from a pipeline without redis-py's extra round trip.

redis-py's ``Script(client=pipeline)`` makes the pipeline send ``SCRIPT EXISTS`` (and
``SCRIPT LOAD`` for any missing) before its commands, on every execute: a whole round trip
spent asking, three per job before this (``bench/results/roundtrip-commands.md``). It asks
because an ``EVALSHA`` inside a MULTI that finds no script fails alone while the rest of
the transaction is applied. ``EVAL`` with the script's text cannot miss (the server caches
scripts by the digest of their text, so it is not compiled again), and its few hundred
bytes ride in the round trip the pipeline makes anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import redis
from redis.client import Pipeline
from redis.commands.core import Script
from redis.exceptions import NoScriptError

Arg = str | bytes | int | float


def run_script(
    script: Script,
    client: Pipeline | redis.Redis,
    keys: Sequence[str],
    args: Sequence[Arg],
) -> Any:
    """``script`` on ``keys`` and ``args``: queued in a buffering pipeline (as ``EVAL``),
    run at once on a pipeline in WATCH mode (``EVALSHA``, loading it if the server has
    not got it: no MULTI yet, so a miss costs nothing but the retry), or on a client."""
    if not isinstance(client, Pipeline):
        return script(keys=keys, args=args, client=client)
    if client.explicit_transaction or not client.watching:  # buffering: MULTI, or no WATCH
        text = cast(str, script.script)  # Atelier registers its scripts as text
        return client.eval(text, len(keys), *keys, *args)
    try:
        return client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        script.sha = client.script_load(script.script)
        return client.evalsha(script.sha, len(keys), *keys, *args)
