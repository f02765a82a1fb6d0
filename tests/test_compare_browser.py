"""The compare page in a real browser (Debian's chromium through Playwright, offline: any
host but the stack's is refused) against a whole stack: two tiny DCGAN runs that differ in
one parameter (the two trials of a sweep), ticked on the job list and compared. The chart
holds one curve per run and follows the metric menu, the table shows the parameter that
differs, both runs' samples show. The sweep's page ranks the trials by a final metric and
links to their compare view.

Set ``DASHBOARD_SCREENSHOTS=docs/screenshots`` to write ``compare.png`` and ``sweep.png``
there."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import RunningStack
from tests.test_dashboard_browser import (  # noqa: F401 (``browser`` is a fixture)
    WAIT_MS,
    _context,
    _shot,
    _sign_in,
    browser,
)

pytestmark = pytest.mark.slow
# Two runs that differ in latent_dim only, small enough for a minute on two shared cores.
RUN = {"steps": 60, "batch_size": 16, "base_filters": 4, "sample_every": 20, "checkpoint_every": 60}


def _two_finished_runs(stack: RunningStack, owner: str) -> tuple[str, list[str]]:
    """A sweep over latent_dim 8 and 16 (trials "latent #0" and "latent #1"), both run."""
    client = stack.client(owner)
    sweep = client.sweep("train", "dcgan", RUN, grid={"latent_dim": [8, 16]}, name="latent")
    ids = [t["job_id"] for t in sweep["trials"]]
    for job_id in ids:
        assert client.wait(job_id, timeout=WAIT_MS / 1000 * 2)["status"] == "succeeded"
    return sweep["id"], ids


def test_compare_two_runs_in_a_browser(browser: Browser, local_stack: RunningStack) -> None:  # noqa: F811
    owner = "compare-user"
    sweep_id, (first, second) = _two_finished_runs(local_stack, owner)
    context = _context(browser, local_stack)
    page = context.new_page()
    _sign_in(page, local_stack, local_stack.raw_key(owner))
    compare = page.get_by_role("button", name="Compare selected")
    expect(compare).to_be_disabled()  # until 2 are ticked
    page.get_by_label("Compare latent #0").check()
    expect(compare).to_be_disabled()
    page.get_by_label("Compare latent #1").check()
    expect(compare).to_be_enabled()
    compare.click()
    expect(page).to_have_url(re.compile(r"/compare\?"))
    assert parse_qs(urlsplit(page.url).query)["ids"] == [second, first]  # the list's order

    chart = page.locator("#compare-chart")
    expect(chart).to_have_attribute("data-series", "2")
    legend = chart.locator(".u-legend .u-series")
    expect(legend).to_have_count(3)  # the step axis, then one per run
    expect(legend.nth(1)).to_contain_text("latent #1")
    expect(legend.nth(2)).to_contain_text("latent #0")
    assert int(chart.get_attribute("data-points") or 0) >= 2
    menu = page.get_by_label("Metric", exact=True)
    choices = menu.locator("option").all_inner_texts()
    assert "d_loss (train)" in choices and "g_loss (train)" in choices, choices
    menu.select_option(label="g_loss (train)")
    expect(chart).to_have_attribute("data-metric", "train:g_loss")
    expect(chart).to_have_attribute("data-series", "2")

    row = page.locator('#compare-params tr[data-param="latent_dim"]')
    expect(row.locator("td")).to_have_text(["16", "8"])
    expect(page.locator("#compare-metrics tr[data-metric]").first).to_be_visible()
    for job_id in (first, second):
        image = page.locator(f'#compare-samples [data-job="{job_id}"] img').last
        expect(image).to_be_visible()
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    _shot(page, "compare")

    page.goto(local_stack.url(f"/compare?ids={first}"))
    expect(page.locator("#compare-error")).to_contain_text("give 2 to 8 job ids")
    _rank_the_sweep(page, sweep_id, [first, second])
    context.close()


def _rank_the_sweep(page: Page, sweep_id: str, ids: list[str]) -> None:
    """From the nav's Sweeps link: the sweep, its trials ranked by a final metric, and the
    link that compares them in that order."""
    page.get_by_role("link", name="Sweeps").click()
    page.locator(f'tr[data-sweep="{sweep_id}"]').get_by_role("link", name="latent").click()
    expect(page.get_by_role("heading", name="Sweep latent")).to_be_visible()
    page.get_by_label("Rank by final metric").fill("g_loss")
    page.get_by_role("button", name="Rank").click()
    rows = page.locator("#sweep-trials tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.locator(".status")).to_have_text(["succeeded", "succeeded"])
    expect(rows.locator("td.step")).to_have_text([f"{RUN['steps']}/{RUN['steps']}"] * 2)
    ranked = [rows.nth(i).get_attribute("data-job") or "" for i in range(2)]
    assert sorted(ranked) == sorted(ids), ranked
    losses = [float(rows.nth(i).locator("td.metric").inner_text()) for i in range(2)]
    assert losses == sorted(losses), losses  # smallest g_loss first
    link = page.locator("#sweep-compare")
    expect(link).to_have_attribute("href", re.compile(rf"ids={ranked[0]}(,|%2C){ranked[1]}"))
    _shot(page, "sweep")
    link.click()
    expect(page.locator("#compare-chart")).to_have_attribute("data-series", "2")
