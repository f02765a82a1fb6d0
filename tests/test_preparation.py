"""A job's preparation phase (issue 25, point 9): its progress arithmetic and ETA, its
fenced and throttled writes to the record and the event stream, the CLI's line for it, and
built-in corpora prepared once per deployment (``workers.prepared``): built by one worker,
fetched by the others, built once when two want it at once, taken over when the builder
died.

Fast tier: a real Redis, the local object store, a real ``JobContext`` on a claimed job;
no worker, no TensorFlow."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from atelier.cli.main import main as cli_main
from atelier.cli.terminal import format_eta, preparing_line
from atelier.client import Progress as ProgressBody
from atelier.shared.datasets import DatasetStore
from atelier.shared.errors import LeaseLost
from atelier.shared.events import EventType
from atelier.shared.job_logs import JobLogs
from atelier.shared.job_records import Phase, Progress
from atelier.shared.jobs import JobStore, JobType
from atelier.shared.redis_keys import KEYS
from atelier.shared.settings import Settings
from atelier.shared.storage import LocalObjectStore, ObjectLayout, make_object_store
from atelier.workers import prepared
from atelier.workers.context import JobContext
from atelier.workers.kinds.melody import folk
from atelier.workers.metrics import PREPARED_CORPORA
from atelier.workers.preparation import NO_PREPARATION, PhaseReporter, phase_eta
from atelier.workers.prepared import PreparedCorpora
from tests.conftest import InProcessApi
from tests.test_dashboard import _sign_in


def test_the_eta_is_the_rate_so_far_and_unknown_before_the_first_item() -> None:
    assert phase_eta(0, 400, 5.0) is None
    assert phase_eta(100, 400, 50.0) == 150.0  # 0.5 s an item, 300 to go
    assert phase_eta(400, 400, 80.0) == 0.0
    assert phase_eta(3, 2, 1.0) == 0.0  # never negative


def test_a_phase_is_written_at_its_start_its_end_and_at_most_every_interval() -> None:
    now = [100.0]
    written: list[Progress] = []
    reporter = PhaseReporter(written.append, 1.0, step=40, total=200, clock=lambda: now[0])
    reporter.phase("building the folk corpus", 10, "tunes")
    for _ in range(9):
        now[0] += 0.25
        reporter.advance()
    now[0] += 0.25
    reporter.advance()  # the last: written whatever the interval
    assert [p.items_done for p in written] == [0, 4, 8, 10]
    first, middle, last = written[0], written[1], written[-1]
    assert first.phase is Phase.PREPARING and first.label == "building the folk corpus"
    assert (first.items_total, first.unit, first.eta_seconds) == (10, "tunes", None)
    assert middle.eta_seconds == 1.5  # 4 in 1 s: 6 to go
    assert last.eta_seconds == 0.0
    # Preparing does not move the step: a resumed attempt stays at its checkpoint.
    assert {(p.step, p.total, p.fraction) for p in written} == {(40, 200, 0.2)}


def test_the_cli_line_says_the_phase_its_count_and_its_eta() -> None:
    body: ProgressBody = {
        "step": 0,
        "total": 1200,
        "fraction": 0.0,
        "eta_seconds": 70.4,
        "metrics": {},
        "updated_at": None,
        "phase": "preparing",
        "label": "building the folk corpus",
        "items_done": 120,
        "items_total": 400,
        "unit": "tunes",
    }
    assert preparing_line(body) == "preparing: building the folk corpus 120/400 tunes, ETA 1m10s"
    assert preparing_line({**body, "phase": "training"}) is None
    big: ProgressBody = {**body, "items_done": 1200, "items_total": 40000, "eta_seconds": None}
    assert preparing_line(big) == "preparing: building the folk corpus 1,200/40,000 tunes"
    assert format_eta(5) == "5s" and format_eta(7500) == "2h05m" and format_eta(None) == ""


@pytest.fixture()
def context(redis_client: redis.Redis, tmp_path: Path) -> JobContext:
    """A claimed training job's context, as a worker has it."""
    settings = Settings.from_env({}, data_dir=tmp_path, progress_interval_seconds=60)
    store = JobStore(redis_client)
    job = store.create("olwen", JobType.TRAIN, "melody", {"dataset": "folk", "steps": 50})
    claimed = store.claim(job.id, "test-worker", 30)
    assert claimed is not None
    logs = JobLogs(redis_client, 100)
    objects = make_object_store(settings)
    return JobContext(
        claimed, settings, store, objects, logs, None, datasets=DatasetStore(redis_client)
    )


def test_preparation_reaches_the_record_and_the_stream_then_training_replaces_it(
    context: JobContext,
) -> None:
    context.preparation.phase("building the folk corpus", 3, "tunes")
    context.preparation.advance(3)
    job = context.jobs.get(context.job.id)
    assert job is not None
    shown = job.progress
    assert (shown.phase, shown.label, shown.items_done, shown.items_total, shown.unit) == (
        Phase.PREPARING,
        "building the folk corpus",
        3,
        3,
        "tunes",
    )
    progress = [e.data for e in context.jobs.events.for_job(job.id) if e.type is EventType.PROGRESS]
    assert [(p["phase"], p["items_done"]) for p in progress] == [("preparing", 0), ("preparing", 3)]
    assert context.jobs.history.read(job.id) == {"train": [], "validation": []}  # no points

    context.report(1, 50, {"loss": 2.0})
    job = context.jobs.get(context.job.id)
    assert job is not None and job.progress.phase is Phase.TRAINING
    assert job.progress.label is None and job.progress.items_done is None


def test_a_fenced_off_attempt_writes_no_preparation_and_stops(
    context: JobContext, redis_admin: redis.Redis
) -> None:
    context.preparation.phase("building the folk corpus", 100, "tunes")
    # A newer attempt took the job (its claim set a fence of its own).
    redis_admin.hset(KEYS.job(context.job.id), "fence", "2-newer")
    before = context.jobs.get(context.job.id)
    with pytest.raises(LeaseLost):
        context.preparation.phase("reading the folk corpus", 100, "tunes")
    after = context.jobs.get(context.job.id)
    assert before is not None and after is not None
    assert after.progress == before.progress
    assert after.progress.label == "building the folk corpus"
    assert context.lease.lost.is_set()


def _counted(corpus: str, source: str) -> float:
    return PREPARED_CORPORA.labels(corpus, source)._value.get()  # type: ignore[no-any-return]


class Builds:
    """A build that counts its calls and takes ``seconds``."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.calls = 0
        self.seconds = seconds
        self._lock = threading.Lock()

    def __call__(self) -> bytes:
        with self._lock:
            self.calls += 1
        time.sleep(self.seconds)
        return b"the corpus"


def test_a_corpus_is_built_once_then_fetched_by_a_worker_with_an_empty_disk(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    objects = LocalObjectStore(tmp_path / "objects")
    build = Builds()
    first = PreparedCorpora(redis_client, objects, tmp_path / "worker-1")
    fetched = _counted("toy", "fetched")
    assert first.get("toy", "r1", build, NO_PREPARATION) == b"the corpus"
    assert objects.get_bytes(ObjectLayout.prepared("toy", "r1")) == b"the corpus"
    assert first.get("toy", "r1", build, NO_PREPARATION) == b"the corpus"  # its disk
    second = PreparedCorpora(redis_client, objects, tmp_path / "worker-2")
    assert second.get("toy", "r1", build, NO_PREPARATION) == b"the corpus"
    assert build.calls == 1
    assert _counted("toy", "fetched") == fetched + 1
    # A new recipe is a new corpus, never the stale one.
    assert second.get("toy", "r2", build, NO_PREPARATION) == b"the corpus"
    assert build.calls == 2


def test_two_workers_at_once_build_it_once(redis_client: redis.Redis, tmp_path: Path) -> None:
    objects = LocalObjectStore(tmp_path / "objects")
    build = Builds(seconds=1.5)
    results: list[bytes] = []

    def worker(name: str) -> None:
        corpora = PreparedCorpora(redis_client, objects, tmp_path / name)
        results.append(corpora.get("toy", "r1", build, NO_PREPARATION))

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [b"the corpus", b"the corpus"] and build.calls == 1


def test_a_waiting_worker_takes_over_from_a_builder_that_died(
    redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prepared, "POLL_SECONDS", 0.1)
    # A builder took the lock and was killed: its lease runs out, nothing was stored.
    redis_client.set(KEYS.prepare_lock("toy", "r1"), "dead-builder", px=500)
    build = Builds()
    corpora = PreparedCorpora(redis_client, LocalObjectStore(tmp_path / "objects"), tmp_path / "w")
    assert corpora.get("toy", "r1", build, NO_PREPARATION) == b"the corpus"
    assert build.calls == 1
    assert not redis_client.exists(KEYS.prepare_lock("toy", "r1"))  # released


def test_the_folk_build_counts_its_tunes(tmp_path: Path) -> None:
    written: list[Progress] = []
    reporter = PhaseReporter(written.append, 0.0, step=0, total=10)
    corpus = folk.build(per_source=2, preparation=reporter)
    assert len(corpus.tunes) + sum(corpus.dropped.values()) == 6
    assert [p.items_done for p in written] == [0, 1, 2, 3, 4, 5, 6]
    assert {p.items_total for p in written} == {6} and written[0].label == folk.LABEL
    assert folk.decode(folk.encode(corpus)) == corpus
    assert folk.recipe(2) != folk.recipe(0)


def preparing_the_corpus(
    api: InProcessApi, job_id: str, done: int, of: int, eta_seconds: float | None = None
) -> tuple[JobStore, str, Progress]:
    """Claim a 1,200-step melody job as a worker would and write that it is building the
    folk corpus, ``done`` of ``of`` tunes: (the store, the fence, the progress written)."""
    store = JobStore(api.redis)
    claimed = store.claim(job_id, "test-worker", 30)
    assert claimed is not None and claimed.fence is not None
    progress = Progress(
        total=1200,
        eta_seconds=eta_seconds,
        phase=Phase.PREPARING,
        label="building the folk corpus",
        items_done=done,
        items_total=of,
        unit="tunes",
    )
    assert store.history.write_progress(job_id, claimed.fence, progress)
    return store, claimed.fence, progress


def test_the_api_and_the_dashboard_show_the_phase(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client()
    job_id = client.submit("train", "melody", {"dataset": "folk", "steps": 1200})["id"]
    preparing_the_corpus(inprocess_api, job_id, done=120, of=400, eta_seconds=70.0)
    shown = client.get(job_id)["progress"]
    assert shown["phase"] == "preparing" and preparing_line(shown) == (
        "preparing: building the folk corpus 120/400 tunes, ETA 1m10s"
    )
    browser = inprocess_api.app.test_client()
    assert _sign_in(browser, inprocess_api.raw_key()).status_code == 302  # type: ignore[attr-defined]
    page = browser.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "preparing: building the folk corpus</span>" in page and "120/400 tunes" in page
    # The job list: the phase, its count, its share on the bar and its ETA, not "0/1200".
    row = _row(browser.get("/").get_data(as_text=True), job_id)
    assert 'data-phase="preparing"' in row and 'value="0.3"' in row, row
    assert "preparing: building the folk corpus 120/400 tunes</span>" in row, row
    assert 'data-eta="70.0"' in row and "0/1200" not in row, row


def test_atelier_jobs_shows_the_preparation(
    inprocess_api: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = inprocess_api.client()
    monkeypatch.setattr("atelier.cli.main._client", lambda: client)
    preparing, queued = (
        client.submit("train", "melody", {"dataset": "folk", "steps": 1200}, name=name)["id"]
        for name in ("first tune", "second tune")
    )
    store, fence, progress = preparing_the_corpus(
        inprocess_api, preparing, done=340, of=1000, eta_seconds=40.0
    )
    result = CliRunner().invoke(cli_main, ["jobs"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    shown = lines[preparing]
    assert shown.split()[3:5] == ["running", "preparing"], shown
    assert shown.endswith("first tune  [building the folk corpus 340/1,000 tunes, ETA 40s]"), shown
    assert lines[queued].split()[3:5] == ["queued", "-"], lines[queued]  # not "0%"
    # Once it trains, the row is the run's share again.
    trained = progress.model_copy(update={"phase": Phase.TRAINING, "step": 600, "fraction": 0.5})
    assert store.history.write_progress(preparing, fence, trained)
    again = CliRunner().invoke(cli_main, ["jobs"]).output
    assert f"{preparing}  train    melody   running         50%" in again, again
    assert "[building" not in again


def _row(page: str, job_id: str) -> str:
    start = page.index(f'<tr data-job="{job_id}"')
    return page[start : page.index("</tr>", start)]


def test_the_system_and_sweep_pages_show_the_phase_and_a_queued_job_no_steps(
    inprocess_api: InProcessApi,
) -> None:
    """The System page's running jobs and a sweep's trials say a job's preparation as the
    job list does (one macro, progress.html; /v1/system and a sweep's trials carry the
    phase), and a queued job's progress column is empty, not "0/0"."""
    client = inprocess_api.client()
    base = {"dataset": "folk", "steps": 1200}
    sweep = client.sweep("train", "melody", base, grid={"steps": [1200, 1300]})
    preparing, queued = (t["job_id"] for t in sweep["trials"])
    preparing_the_corpus(inprocess_api, preparing, done=340, of=1000)
    said = "preparing: building the folk corpus 340/1,000 tunes"

    trials = {t["job_id"]: t for t in client.get_sweep(sweep["id"])["trials"]}
    shown = trials[preparing]["progress"]
    assert shown is not None and preparing_line(shown) == said
    waiting = trials[queued]["progress"]
    assert waiting is not None and (waiting["step"], waiting["total"]) == (0, 0), waiting
    running = client.request("GET", "/v1/system")["running"]
    assert [(r["job_id"], r["phase"], r["label"], r["items_done"]) for r in running] == [
        (preparing, "preparing", "building the folk corpus", 340)
    ]

    browser = inprocess_api.app.test_client()
    assert _sign_in(browser, inprocess_api.raw_key()).status_code == 302  # type: ignore[attr-defined]
    system = browser.get("/system").get_data(as_text=True)
    assert f"<td>{said}</td>" in system, system
    page = browser.get(f"/sweeps/{sweep['id']}").get_data(as_text=True)
    assert f'<td class="step">{said}</td>' in _row(page, preparing)
    assert '<td class="step"></td>' in _row(page, queued), _row(page, queued)
    jobs = browser.get("/").get_data(as_text=True)
    assert '<span class="step" data-field="step"></span>' in _row(jobs, queued), _row(jobs, queued)
    assert "0/0" not in _row(jobs, queued) and said in _row(jobs, preparing)
