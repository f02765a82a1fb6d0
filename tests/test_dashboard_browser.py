"""The dashboard and the docs pages in a real browser: Debian's chromium, headless, driven
by Playwright (never a downloaded browser), against a whole stack (gunicorn, real Celery
workers training a tiny DCGAN with TensorFlow).

Set ``DASHBOARD_SCREENSHOTS=docs/screenshots`` to write a screenshot of each page there
(the README's Dashboard section shows them).
"""

from __future__ import annotations

import http.server
import io
import json
import os
import re
import socketserver
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Request,
    Response,
    Route,
    expect,
    sync_playwright,
)

from atelier.api.dashboard.system import RunningJobOut, SystemOut, WorkerOut
from atelier.api.views.events import _format as format_event
from atelier.shared.errors import ExportFailed
from atelier.shared.events import Event, EventType
from atelier.shared.job_records import Phase, Progress
from atelier.shared.jobs import JobType
from tests.conftest import RunningStack
from tests.payloads import zip_of

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = os.environ.get("DASHBOARD_SCREENSHOTS", "")
# Long enough on CPU to watch it move (a few seconds), small enough to stay well under a
# minute: samples every 20 steps, a checkpoint half-way.
TRAIN = {
    "steps": 160,
    "batch_size": 16,
    "latent_dim": 8,
    "base_filters": 4,
    "sample_every": 20,
    "checkpoint_every": 80,
}
LONG_TRAIN = {**TRAIN, "steps": 1_000_000, "sample_every": 100_000, "checkpoint_every": 100_000}
WAIT_MS = 90_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    # Assertions wait as long as actions: a tiny training job on 2 shared cores takes a while.
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
        )
        yield launched
        launched.close()


def _context(browser: Browser, stack: RunningStack, **options: object) -> BrowserContext:
    """A fresh browser profile that may reach the stack only: any other host (a CDN) is
    refused, so the pages prove they work offline."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 900},
        accept_downloads=True,
        **options,  # type: ignore[arg-type]
    )
    own = urlsplit(stack.settings.api_url).netloc

    def only_the_stack(route: Route) -> None:
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            route.abort()

    context.route("**/*", only_the_stack)
    context.set_default_timeout(WAIT_MS)
    return context


def _shot(page: Page, name: str, full_page: bool = True) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=full_page)


def _sign_in(page: Page, stack: RunningStack, key: str) -> None:
    page.goto(stack.url("/"))
    expect(page).to_have_url(re.compile(r"/sign-in\?next="))
    _shot(page, "sign-in")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(stack.url("/"))
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()


def _shape_png(seed: int) -> bytes:
    """A white disc or square on black: a dataset whose samples look like something."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", (28, 28))
    size = int(rng.integers(8, 16))
    x, y = (int(v) for v in rng.integers(2, 26 - size, 2))
    draw = ImageDraw.Draw(image)
    (draw.ellipse if seed % 2 else draw.rectangle)((x, y, x + size, y + size), fill=255)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _upload_dataset(page: Page, tmp_path: Path) -> str:
    archive = tmp_path / "shapes.zip"
    archive.write_bytes(zip_of({f"{i:03}.png": _shape_png(i) for i in range(96)}))
    page.get_by_role("link", name="Datasets").click()
    page.get_by_label("File (.zip of images, .npz, or .txt)").set_input_files(str(archive))
    page.get_by_label("Title").fill("Browser shapes")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#up-status")).to_contain_text("Uploaded ds_")
    assert page.locator("#up-progress").evaluate("bar => bar.value") == 1
    card = page.locator(".dataset", has_text="Browser shapes")
    expect(card.locator("img")).to_be_visible()
    _shot(page, "datasets")
    name = card.get_attribute("data-dataset")
    assert name and name.startswith("ds_")
    return name


def _fill(page: Page, prefix: str, values: dict[str, object]) -> None:
    """Type values into a params form's fields (``params.js`` names them prefix-param)."""
    for name, value in values.items():
        page.locator(f"#{prefix}-{name}").fill(str(value))


def _start_training(page: Page, dataset: str, params: dict[str, int]) -> str:
    """From the jobs page's form; answers the new job's id."""
    page.get_by_role("link", name="Jobs").click()
    page.get_by_label("Kind").last.select_option("dcgan")
    expect(page.locator('#train-fields[data-kind="dcgan"]')).to_be_attached()
    _fill(page, "train-p", {"dataset": dataset, **params})
    page.get_by_role("button", name="Start training").click()
    link = page.locator("#train-status a")
    expect(link).to_have_text(re.compile(r"^job_"))
    job_id = link.inner_text()
    expect(page.locator(f'tr[data-job="{job_id}"]')).to_be_visible()
    return job_id


def _check_the_training_form(page: Page, dataset: str) -> None:
    """The form is the kind's schema: a field per param with its default, type, bounds and
    help; the owner's datasets offered; a bad value refused in the page, beside its field,
    with nothing sent; what only the server can judge comes back beside its field too."""
    page.get_by_role("link", name="Jobs").click()
    form = page.locator("#train-form")
    expect(page.locator('#train-fields[data-kind="dcgan"]')).to_be_attached()
    steps = page.get_by_label("Steps", exact=True)
    expect(steps).to_have_value("1300")
    expect(steps).to_have_attribute("type", "number")
    expect(steps).to_have_attribute("max", "1000000")
    expect(form.locator("#train-p-steps-help")).to_contain_text("Optimizer steps")
    expect(page.get_by_label("Loss", exact=True).locator("option")).to_have_text(["bce", "hinge"])
    expect(page.get_by_label("Spectral Norm")).to_have_attribute("type", "checkbox")
    expect(page.get_by_label("Spectral Norm")).not_to_be_checked()
    # null (the default: conditional when the dataset is labelled), true or false
    conditional = page.get_by_label("Conditional")
    expect(conditional).to_have_value("null")
    expect(conditional.locator("option")).to_have_text(["(none)", "true", "false"])
    expect(form.locator(f'#train-p-dataset-choices option[value="{dataset}"]')).to_have_count(1)
    page.get_by_label("Kind").last.select_option("textgen")  # another kind, its own params
    expect(page.get_by_label("Vocabulary Size")).to_have_value("1024")
    expect(page.get_by_label("Dataset", exact=True)).to_have_value("fables")
    expect(form.locator("#train-p-loss")).to_have_count(0)
    page.get_by_label("Kind").last.select_option("dcgan")

    posts: list[str] = []

    def record_post(request: Request) -> None:
        if request.method == "POST":
            posts.append(request.url)

    page.on("request", record_post)
    _fill(page, "train-p", {"dataset": dataset, **TRAIN, "steps": 0, "augment": "cutout, sideways"})
    page.get_by_role("button", name="Start training").click()
    expect(form.locator("#train-p-steps-error")).to_have_text("at least 1")
    expect(form.locator("#train-p-augment-error")).to_contain_text("item 2 (sideways): one of")
    expect(page.locator("#train-status")).to_have_text("Not sent: correct the marked fields.")
    assert posts == []
    assert steps.get_attribute("aria-invalid") == "true"

    _fill(page, "train-p", {"dataset": "no-such-dataset", "steps": 160, "augment": ""})
    page.get_by_role("button", name="Start training").click()  # the server refuses it
    expect(form.locator("#train-p-dataset-error")).to_have_text("no such dataset")
    expect(page.locator("#train-status")).to_have_text("Refused: see the marked fields.")
    expect(form.locator("#train-p-steps-error")).to_be_hidden()
    assert len(posts) == 1 and posts[0].endswith("/v1/jobs")
    page.remove_listener("request", record_post)


def _watch_job(page: Page) -> None:
    """Record, in the page, every progress value and chart size the live page shows."""
    page.evaluate(
        """() => {
        window.__seen = {progress: [], points: []};
        window.__sameDocument = true;
        const bar = document.getElementById('job-progress');
        const chart = document.getElementById('loss-chart');
        new MutationObserver(() => window.__seen.progress.push(bar.value))
            .observe(bar, {attributes: true});
        new MutationObserver(() => window.__seen.points.push(Number(chart.dataset.points || 0)))
            .observe(chart, {attributes: true, attributeFilter: ['data-points']});
    }"""
    )


def _train_and_watch(page: Page, stack: RunningStack, dataset: str) -> str:
    job_id = _start_training(page, dataset, TRAIN)
    page.goto(stack.url(f"/jobs/{job_id}"))
    _watch_job(page)
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=WAIT_MS * 2)
    seen = page.evaluate("window.__seen")
    assert page.evaluate("window.__sameDocument") is True  # never reloaded
    progress = sorted(set(seen["progress"]))
    assert len(progress) >= 2 and 0 < progress[0] < progress[-1], seen
    assert len(seen["points"]) >= 2 and seen["points"][-1] > seen["points"][0], seen
    expect(page.locator("#samples img").first).to_be_visible()
    assert page.locator("#samples img").count() >= 2
    expect(page.locator("#job-model a")).to_have_text(re.compile(r"^model_"))
    _shot(page, "job")
    return page.locator("#job-model a").inner_text()


def _see_a_job_prepare_in_the_list(page: Page, stack: RunningStack, job_id: str) -> None:
    """The list's live row of a job preparing its data: the phase's label and count, its
    share on the bar and its ETA, where a training job shows its steps. The event is made
    by the API's own code (``api.views.events``) and served in place of the stream: a real
    job's preparation here ends before a page could be looked at."""
    progress = Progress(
        total=LONG_TRAIN["steps"],
        eta_seconds=40.0,
        updated_at=time.time(),
        phase=Phase.PREPARING,
        label="building the folk corpus",
        items_done=340,
        items_total=1000,
        unit="tunes",
    )
    event = Event(
        "9999999999999-0", EventType.PROGRESS, job_id, "", progress.model_dump(mode="json")
    )
    events = re.compile(r"/v1/events\?")

    def stream(route: Route) -> None:
        route.fulfill(status=200, content_type="text/event-stream", body=format_event(event))

    page.route(events, stream)
    page.goto(stack.url("/"))
    row = page.locator(f'tr[data-job="{job_id}"]')
    expect(row).to_have_attribute("data-phase", "preparing")
    step = row.locator('[data-field="step"]')
    expect(step).to_have_text("preparing: building the folk corpus 340/1,000 tunes")
    expect(row.locator('[data-field="eta"]')).to_have_text("40 s")
    assert row.locator('[data-field="progress"]').evaluate("bar => bar.value") == 0.34
    page.unroute(events, stream)


def _see_the_system_page_show_a_phase(page: Page, job_id: str) -> None:
    """The System page's refresh (every 5 s) says a running job's preparation as the job
    list does (Atelier.progressText). The API's own answer (``RunningJobOut``), served in
    place: a real job's preparation here ends before the page could refresh."""
    entry = RunningJobOut(
        job_id=job_id,
        type=JobType.TRAIN,
        kind="melody",
        worker="vm:1",
        step=0,
        total=1200,
        fraction=0.0,
        lease_seconds_left=30.0,
        phase=Phase.PREPARING,
        label="building the folk corpus",
        items_done=340,
        items_total=1000,
        unit="tunes",
    )
    node = WorkerOut(name="atelier-train@vm", queues=["atelier-train"], running=[entry])
    body = SystemOut(queues=[], workers=[node], running=[entry]).model_dump_json()
    system = re.compile(r"/v1/system$")

    def answer(route: Route) -> None:
        route.fulfill(status=200, content_type="application/json", body=body)

    page.route(system, answer)
    said = "preparing: building the folk corpus 340/1,000 tunes"
    expect(page.locator("#running tbody tr").first.locator("td").nth(3)).to_have_text(said)
    expect(page.locator("#workers")).to_contain_text(f"{job_id} (melody train, {said})")
    page.unroute(system, answer)


def _cancel_a_job(page: Page, stack: RunningStack, dataset: str) -> None:
    job_id = _start_training(page, dataset, LONG_TRAIN)
    _shot(page, "jobs")
    _see_a_job_prepare_in_the_list(page, stack, job_id)
    page.goto(stack.url(f"/jobs/{job_id}"))
    expect(page.locator("#job-status")).to_have_text("running")
    # The system page names the worker running it (what Flower shows).
    page.get_by_role("link", name="System").click()
    expect(page.locator("#workers")).to_contain_text(job_id)
    expect(page.locator("#running")).to_contain_text(job_id)
    _shot(page, "system")
    _see_the_system_page_show_a_phase(page, job_id)
    page.goto(stack.url(f"/jobs/{job_id}"))
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator("#job-status")).to_have_text("canceled", timeout=WAIT_MS)
    expect(page.get_by_role("button", name="Cancel job")).to_be_hidden()


def _generate(page: Page, stack: RunningStack, model_id: str, tmp_path: Path) -> None:
    page.goto(stack.url("/models"))
    expect(page.locator(".model", has_text=model_id).locator("img")).to_be_visible()
    _shot(page, "models")
    page.get_by_role("link", name=model_id).click()
    expect(page.get_by_label("Model Id")).to_have_value(model_id)
    expect(page.get_by_label("Format")).to_have_value('"png"')
    # Labels the model never learned (its dataset was unlabelled): the server's 422, beside.
    page.get_by_label("Labels").fill("3")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#gen-p-labels-error")).to_contain_text("learned no classes")
    # The same values as JSON, edited there and read back into the fields.
    page.get_by_text("Edit as JSON").click()
    raw = page.get_by_label("Parameters as JSON")
    expect(raw).to_have_value(re.compile(r'"labels"'))  # filled as the toggle event runs
    assert json.loads(raw.input_value())["labels"] == [3]
    raw.fill(json.dumps({"model_id": model_id, "n": 16, "seed": 3, "labels": None}))
    page.get_by_text("Edit as JSON").click()
    expect(page.get_by_label("Seed")).to_have_value("3")
    expect(page.get_by_label("Labels")).to_have_value("")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#gen-status")).to_contain_text("succeeded", timeout=WAIT_MS)
    image = page.locator("#gallery img").first
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    _shot(page, "model")
    link = page.locator("#gallery a[download]").first
    with page.expect_download() as download_info:
        link.click()
    saved = tmp_path / "download"
    download_info.value.save_as(saved)
    assert saved.read_bytes().startswith(b"\x89PNG")


def _export(page: Page, model_id: str, tmp_path: Path) -> None:
    """The model page's export buttons: "preparing" while the API answers 202 (a worker of
    the stack makes the bundle), then the zip is downloaded; a failure's problem+json
    (the API's own, served in place: a real export here does not fail) is shown."""
    answers: list[tuple[str, int]] = []

    def record(response: Response) -> None:
        if "/export?" in response.url:
            answers.append((response.url.rpartition("format=")[2], response.status))

    page.on("response", record)
    status = page.locator("#export-status")
    expected = {"keras": "model.keras", "savedmodel": "saved_model/saved_model.pb"}
    for button, fmt in (("Download for Keras", "keras"), ("Download as SavedModel", "savedmodel")):
        with page.expect_download() as download_info:
            page.get_by_role("button", name=button).click()
            expect(status).to_contain_text("Preparing the")
        saved = tmp_path / f"export-{fmt}.zip"
        download_info.value.save_as(saved)
        assert download_info.value.suggested_filename == f"{model_id}-{fmt}.zip"
        with zipfile.ZipFile(saved) as bundle:
            names = bundle.namelist()
        assert expected[fmt] in names and "README.md" in names and "generate.py" in names, names
        link = status.locator("#export-link")
        expect(link).to_have_attribute("download", f"{model_id}-{fmt}.zip")
        mine = [code for f, code in answers if f == fmt]
        assert mine[0] == 202 and mine[-1] == 200 and set(mine) == {200, 202}, answers
    page.remove_listener("response", record)
    _export_from_object_storage(page, tmp_path / "export-savedmodel.zip")

    path = f"/v1/models/{model_id}/export"
    failed = ExportFailed(f"The keras export of {model_id} failed (boom); ask again to retry.")
    body = json.dumps(failed.to_problem(instance=path))

    def fail(route: Route) -> None:
        route.fulfill(status=500, content_type="application/problem+json", body=body)

    page.route(re.compile(r"/export\?format=keras$"), fail)
    page.get_by_role("button", name="Download for Keras").click()
    expect(status).to_have_text(f"The export could not be made: {failed.detail}")
    expect(page.get_by_role("button", name="Download for Keras")).to_be_enabled()
    page.unroute(re.compile(r"/export\?format=keras$"), fail)


class _ObjectStore(http.server.BaseHTTPRequestHandler):
    """Another origin serving one object, as S3 answers a presigned GET."""

    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _export_from_object_storage(page: Page, bundle: Path) -> None:
    """On S3 a ready export is a 302 to a presigned URL on another origin, which the page's
    fetch may not follow (CSP connect-src 'self'): the page navigates to the export instead
    and the browser downloads the zip from there, the page staying. The 302 is served in
    place (this stack stores files locally), to a server of the bundle just made."""
    _ObjectStore.body = bundle.read_bytes()
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _ObjectStore)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    presigned = f"http://127.0.0.1:{server.server_address[1]}/exports/b.zip?X-Amz-Signature=a"
    export = re.compile(r"/export\?format=savedmodel$")

    def redirect(route: Route) -> None:
        route.fulfill(status=302, headers={"Location": presigned})

    def allow(route: Route) -> None:  # the context lets the stack's origin only
        route.continue_()

    page.route(export, redirect)
    page.route(presigned, allow)
    try:
        with page.expect_download() as download_info:
            page.get_by_role("button", name="Download as SavedModel").click()
        saved = bundle.with_name("from-object-storage.zip")
        download_info.value.save_as(saved)
        assert saved.read_bytes() == _ObjectStore.body
        assert download_info.value.url == presigned
        expect(page.locator("#export-status")).to_have_text(
            "Ready: downloading the SavedModel export."
        )
    finally:
        server.shutdown()
        page.unroute(export, redirect)
        page.unroute(presigned, allow)


def test_train_watch_cancel_and_generate_in_a_browser(
    browser: Browser, local_stack: RunningStack, tmp_path: Path
) -> None:
    context = _context(browser, local_stack)
    page = context.new_page()
    _sign_in(page, local_stack, local_stack.raw_key("browser-user"))
    dataset = _upload_dataset(page, tmp_path)
    _check_the_training_form(page, dataset)
    model_id = _train_and_watch(page, local_stack, dataset)
    _cancel_a_job(page, local_stack, dataset)
    _generate(page, local_stack, model_id, tmp_path)
    _export(page, model_id, tmp_path)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(local_stack.url("/sign-in"))
    page.goto(local_stack.url("/models"))
    expect(page).to_have_url(re.compile(r"/sign-in\?next=/models"))
    context.close()


def test_no_session_redirects_and_forged_posts_are_refused(
    browser: Browser, local_stack: RunningStack
) -> None:
    context = _context(browser, local_stack, bypass_csp=True)
    page = context.new_page()
    for path in ("/", "/datasets", "/system"):
        page.goto(local_stack.url(path))
        expect(page).to_have_url(re.compile(r"/sign-in\?next="))
    _sign_in(page, local_stack, local_stack.raw_key("forger"))
    # A form without the CSRF token, posted by the browser with the session cookie.
    with page.expect_navigation() as navigation:
        page.evaluate(
            """() => {
            const form = document.createElement('form');
            form.method = 'post'; form.enctype = 'multipart/form-data'; form.action = '/sign-out';
            const field = document.createElement('input');
            field.name = 'csrf_token'; field.value = 'forged';
            form.append(field); document.body.append(form); form.submit();
        }"""
        )
    response = navigation.value
    assert response is not None and response.status == 403
    # The JSON API with the cookie but without X-CSRF-Token: 403 problem+json.
    refused = page.request.post(
        local_stack.url("/v1/jobs"), data={"type": "train", "kind": "dcgan", "params": {}}
    )
    assert refused.status == 403
    assert refused.json()["type"].endswith(":csrf-failed")
    assert page.request.get(local_stack.url("/v1/jobs")).status == 200  # reads are fine
    page.goto(local_stack.url("/"))
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()  # still signed in
    context.close()


def test_docs_pages_render_offline(browser: Browser, local_stack: RunningStack) -> None:
    context = _context(browser, local_stack)
    page = context.new_page()
    page.goto(local_stack.url("/v1/docs/redoc/"))
    expect(page.get_by_role("heading", name=re.compile(r"^Atelier API"))).to_be_visible()
    # Each operation's summary heads its section (the side menu's copy is collapsed).
    expect(page.locator("h2", has_text="Submit a job").first).to_be_visible()
    _shot(page, "docs-redoc", full_page=False)
    page.goto(local_stack.url("/v1/docs/swagger/"))
    submit = page.locator(".opblock-post", has_text="Submit a job")
    expect(submit.locator(".opblock-summary-path").first).to_have_text(re.compile(r"/v1/jobs"))
    _shot(page, "docs-swagger", full_page=False)
    context.close()
