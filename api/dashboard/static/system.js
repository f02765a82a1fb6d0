// Refresh the system tables from GET /v1/system every few seconds.
"use strict";

(() => {
  const PERIOD_MS = 5000;
  const other = "another owner's job";

  function fill(tableId, rows, empty, columns) {
    const body = document.querySelector(`#${tableId} tbody`);
    body.textContent = "";
    if (!rows.length) {
      const row = Atelier.el("tr");
      row.append(Atelier.el("td", { colspan: String(columns) }, empty));
      body.append(row);
    }
    for (const cells of rows) {
      const row = Atelier.el("tr");
      for (const cell of cells) row.append(Atelier.el("td", {}, cell));
      body.append(row);
    }
  }

  // Steps, or the phase preparing its data, as the job list says them (common.js).
  const describe = (r) => {
    const progress = Atelier.progressText(r);
    return `${r.job_id || other} (${r.kind} ${r.type}${progress ? `, ${progress}` : ""})`;
  };

  async function refresh() {
    const result = await Atelier.api("GET", "/v1/system");
    const note = document.getElementById("system-updated");
    if (!result.ok) { note.textContent = `Could not refresh: ${Atelier.problemText(result)}`; return; }
    const s = result.data;
    fill("queues", s.queues.map((q) => [q.queue, q.type, q.waiting, q.running]), "", 4);
    fill("workers", s.workers.map((w) => [w.name, w.queues.join(", "),
      w.running.length ? w.running.map(describe).join("; ") : "idle"]), "No worker answered.", 3);
    fill("running", s.running.map((r) => [r.job_id || other, `${r.kind} ${r.type}`, r.worker || "–",
      Atelier.progressText(r), `${r.lease_seconds_left} s`]), "Nothing running.", 5);
    note.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every 5 seconds.`;
  }
  setInterval(refresh, PERIOD_MS);
})();
