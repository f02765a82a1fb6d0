// Take a model away: GET /v1/models/{id}/export?format=keras|savedmodel, with the session
// cookie as every /v1 read of the dashboard. A worker makes the bundle on first request:
// until then the API answers 202 with Retry-After, and the page asks again (a bounded
// number of times). Then the zip: from local storage the answer is the file itself, saved
// from a Blob (a default model's bundle is a few hundred KB to a few MB); from object
// storage a 302 to a presigned URL, which the page navigates to (a fetch may not follow a
// redirect to another origin: the page's CSP says connect-src 'self'; a navigation may,
// and a zip is downloaded, not shown).
"use strict";

(() => {
  const section = document.getElementById("export");
  const status = document.getElementById("export-status");
  const buttons = section.querySelectorAll("button[data-format]");
  const MAX_TRIES = 90;  // at the API's 2 s, three minutes: far more than a bundle takes
  const MAX_WAIT_SECONDS = 10;
  const NAMES = { keras: "Keras", savedmodel: "SavedModel" };
  let blobUrl = null;

  const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

  // Retry-After in seconds or as an HTTP date; else a backoff. Never over MAX_WAIT_SECONDS.
  function retryAfter(response, tries) {
    const raw = response.headers.get("Retry-After") || "";
    let seconds = /^\d+$/.test(raw.trim()) ? Number(raw) : (Date.parse(raw) - Date.now()) / 1000;
    if (!Number.isFinite(seconds) || seconds < 0) seconds = Math.min(2 ** tries, MAX_WAIT_SECONDS);
    return Math.min(Math.max(seconds, 0.5), MAX_WAIT_SECONDS);
  }

  // The name the API gives (Content-Disposition), else one like the CLI's.
  function fileName(response, format) {
    const given = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(response.headers.get("Content-Disposition") || "");
    return given ? decodeURIComponent(given[1]) : `${section.dataset.modelId}-${format}.zip`;
  }

  async function problem(response) {
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    return Atelier.problemText({ status: response.status, data });
  }

  async function save(response, format) {
    const blob = await response.blob();
    if (blobUrl) URL.revokeObjectURL(blobUrl);
    blobUrl = URL.createObjectURL(blob);
    const name = fileName(response, format);
    const link = Atelier.el("a", { href: blobUrl, download: name, id: "export-link", "data-format": format }, name);
    status.textContent = "";
    status.append("Ready: ", link, ` (${Math.max(1, Math.round(blob.size / 1024)).toLocaleString("en")} KB).`);
    link.click();
  }

  async function download(format) {
    const path = `/v1/models/${encodeURIComponent(section.dataset.modelId)}/export?format=${format}`;
    for (let tries = 0; tries < MAX_TRIES; tries += 1) {
      const response = await fetch(path, { credentials: "same-origin", redirect: "manual" });
      if (response.type === "opaqueredirect") {  // object storage: a presigned URL
        status.textContent = `Ready: downloading the ${NAMES[format]} export.`;
        window.location.assign(path);
        return;
      }
      if (response.status === 202) {
        status.textContent = `Preparing the ${NAMES[format]} export… (a worker makes it once; asked ${tries + 1} times)`;
        await sleep(retryAfter(response, tries));
        continue;
      }
      if (!response.ok) { status.textContent = `The export could not be made: ${await problem(response)}`; return; }
      await save(response, format);
      return;
    }
    status.textContent = `The ${NAMES[format]} export is still being made after ${MAX_TRIES} tries; try again later.`;
  }

  for (const button of buttons) {
    button.addEventListener("click", async () => {
      for (const b of buttons) b.disabled = true;
      status.textContent = `Preparing the ${NAMES[button.dataset.format]} export…`;
      try {
        await download(button.dataset.format);
      } catch (error) {
        status.textContent = `The export could not be fetched: ${error.message}`;
      } finally {
        for (const b of buttons) b.disabled = false;
      }
    });
  }
})();
