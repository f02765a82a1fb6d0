// The jobs table, live from GET /v1/events, and the "start a training job" form (params.js).
"use strict";

(() => {
  const table = document.getElementById("jobs-table");
  const body = table.querySelector("tbody");
  const filter = {
    status: table.dataset.filterStatus, type: table.dataset.filterType, kind: table.dataset.filterKind,
    tag: table.dataset.filterTag, name: (table.dataset.filterName || "").toLowerCase(),
  };
  // Ordered by a metric: a new job's place is not the top, so the live table only updates
  // the rows it shows (a reload places new ones).
  const sorted = Boolean(table.dataset.sorted);
  const pending = new Set();

  for (const cell of body.querySelectorAll('[data-field="eta"]')) {
    const over = Atelier.TERMINAL.has(cell.closest("tr").dataset.status);
    cell.textContent = over ? "–" : Atelier.formatEta(cell.dataset.eta);
  }
  // As the server writes it: "2026-11-29 07:01:31" (UTC, from the ISO timestamp).
  const shortTime = (iso) => String(iso).replace("T", " ").slice(0, 19);

  const matches = (job) => !sorted && (!filter.status || job.status === filter.status)
    && (!filter.type || job.type === filter.type) && (!filter.kind || job.kind === filter.kind)
    && (!filter.tag || (job.tags || []).includes(filter.tag))
    && (!filter.name || (job.name || "").toLowerCase().startsWith(filter.name));

  function rowFor(job) {
    const row = Atelier.el("tr", { "data-job": job.id, "data-type": job.type, "data-kind": job.kind });
    const pick = Atelier.el("td");
    pick.append(Atelier.el("input", { type: "checkbox", name: "ids", value: job.id, form: "compare-form",
                                      "aria-label": `Compare ${job.name || job.id}` }));
    const first = Atelier.el("td");
    first.append(Atelier.el("a", { href: `/jobs/${encodeURIComponent(job.id)}` }, job.name || job.id));
    if (job.name) first.append(Atelier.el("br"), Atelier.el("code", { class: "muted" }, job.id));
    const tags = Atelier.el("td", { class: "tags" });
    for (const tag of job.tags || []) {
      tags.append(Atelier.el("a", { class: "tag", href: `/?tag=${encodeURIComponent(tag)}` }, tag), " ");
    }
    row.append(pick, first, tags);
    const cells = [Atelier.el("span", { "data-field": "status" }), job.type, job.kind];
    for (const content of cells) {
      const td = Atelier.el("td");
      if (typeof content === "string") td.textContent = content; else td.append(content);
      row.append(td);
    }
    const progress = Atelier.el("td");
    progress.append(Atelier.el("progress", { max: "1", value: "0", "data-field": "progress",
                                             "aria-label": `Progress of ${job.id}` }));
    progress.append(" ", Atelier.el("span", { class: "step", "data-field": "step" }, ""));
    row.append(progress, Atelier.el("td", { "data-field": "eta" }, "–"),
               Atelier.el("td", {}, shortTime(job.created_at)));
    return row;
  }

  function applyJob(row, job) {
    row.dataset.status = job.status;
    Atelier.setStatus(row.querySelector('[data-field="status"]'), job.status);
    const p = job.progress || {};
    const over = Atelier.TERMINAL.has(job.status);
    applyProgress(row, { ...p, phase: over ? null : p.phase, eta_seconds: over ? null : p.eta_seconds });
  }

  // Until step 1 a job may prepare its data (read, tokenise, build a corpus): the bar, the
  // count and the ETA are that phase's, not the run's "0/N" steps.
  function applyProgress(row, p) {
    const bar = row.querySelector('[data-field="progress"]');
    const step = row.querySelector('[data-field="step"]');
    if (p.phase === "preparing") {
      row.dataset.phase = "preparing";
      bar.value = p.items_total ? (p.items_done || 0) / p.items_total : 0;
      step.textContent = Atelier.progressText(p);
    } else {
      if (p.fraction !== undefined) bar.value = p.fraction;
      if (p.step !== undefined) {
        delete row.dataset.phase;
        step.textContent = Atelier.progressText(p);  // "" for a queued job's 0/0
      }
    }
    row.querySelector('[data-field="eta"]').textContent = Atelier.formatEta(p.eta_seconds);
  }

  // A job the table does not show yet (submitted elsewhere): read it once, then add it.
  async function addJob(jobId) {
    if (pending.has(jobId)) return;
    pending.add(jobId);
    const result = await Atelier.api("GET", `/v1/jobs/${encodeURIComponent(jobId)}`);
    pending.delete(jobId);
    if (!result.ok || !matches(result.data) || findRow(jobId)) return;
    const row = rowFor(result.data);
    applyJob(row, result.data);
    body.prepend(row);
    document.getElementById("no-jobs").hidden = true;
  }

  const findRow = (jobId) => body.querySelector(`tr[data-job="${CSS.escape(jobId)}"]`);

  function onStatus(event) {
    const row = findRow(event.job);
    if (!row) { addJob(event.job); return; }
    row.dataset.status = event.status;
    Atelier.setStatus(row.querySelector('[data-field="status"]'), event.status);
    if (event.status === "succeeded") applyProgress(row, { fraction: 1, eta_seconds: null });
    if (Atelier.TERMINAL.has(event.status)) {
      row.querySelector('[data-field="eta"]').textContent = "–";
      if (row.dataset.phase) {  // over before its first step: no phase to show any more
        delete row.dataset.phase;
        row.querySelector('[data-field="step"]').textContent = "–";
      }
    }
  }

  function onProgress(event) {
    const row = findRow(event.job);
    if (row) applyProgress(row, event); else addJob(event.job);
  }

  const after = encodeURIComponent(table.dataset.lastEventId);
  Atelier.follow(`/v1/events?last_event_id=${after}`, { status: onStatus, end: onStatus, progress: onProgress },
                 document.getElementById("live-state"));

  // --- compare: 2 to 8 ticked rows ----------------------------------------------------
  const compareButton = document.getElementById("compare-button");
  const compareCount = document.getElementById("compare-count");
  function ticked() {
    const n = body.querySelectorAll('input[name="ids"]:checked').length;
    compareButton.disabled = n < 2 || n > 8;
    compareCount.textContent = n > 8 ? `${n} ticked: at most 8 can be compared.`
      : n ? `${n} ticked${n < 2 ? ": tick at least 2." : "."}` : "Tick 2 to 8 jobs to compare them.";
  }
  body.addEventListener("change", ticked);
  ticked();

  // --- the training form, built from the kind's params schema (GET /v1/kinds) -----------
  const form = document.getElementById("train-form");
  const kind = document.getElementById("train-kind");
  const fields = document.getElementById("train-fields");
  const status = document.getElementById("train-status");
  const kinds = {};
  let params = null;

  function showKind() {
    const spec = kinds[kind.value];
    if (!spec) return;
    status.textContent = "";
    params = ParamsForm.build(fields, spec.train_params_schema,
                              { prefix: "train-p", kind: spec.name, modality: spec.modality });
    fields.dataset.kind = spec.name;
  }
  kind.addEventListener("change", showKind);
  Atelier.api("GET", "/v1/kinds").then((result) => {
    if (!result.ok) { status.textContent = `The kinds could not be read: ${Atelier.problemText(result)}`; return; }
    for (const spec of result.data.data) kinds[spec.name] = spec;
    showKind();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!params) return;
    const read = params.read();
    if (!read.ok) { status.textContent = "Not sent: correct the marked fields."; return; }
    status.textContent = "Submitting…";
    const result = await Atelier.api("POST", "/v1/jobs", { type: "train", kind: kind.value, params: read.values });
    if (!result.ok) { status.textContent = params.refused(result); return; }
    status.textContent = "";
    const link = Atelier.el("a", { href: `/jobs/${encodeURIComponent(result.data.id)}` }, result.data.id);
    status.append("Started ", link, ".");
    if (!findRow(result.data.id) && matches(result.data)) {
      const row = rowFor(result.data);
      applyJob(row, result.data);
      body.prepend(row);
      document.getElementById("no-jobs").hidden = true;
    }
  });
})();
