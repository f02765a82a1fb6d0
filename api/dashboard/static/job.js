// One job, live from GET /v1/jobs/{id}/events: progress, loss curves (uPlot, drawn from
// GET /v1/jobs/{id}/metrics and grown by each progress event), samples, outputs, log.
"use strict";

(() => {
  const root = document.getElementById("job");
  const jobId = root.dataset.job;
  const base = `/v1/jobs/${encodeURIComponent(jobId)}`;
  const statusNode = document.getElementById("job-status");
  const bar = document.getElementById("job-progress");
  const stepNode = document.getElementById("job-step");
  const etaNode = document.getElementById("job-eta");
  const phaseNode = document.getElementById("job-phase");
  const log = document.getElementById("log");
  const MAX_LOG_LINES = 500;
  etaNode.textContent = etaNode.dataset.eta ? `ETA ${Atelier.formatEta(etaNode.dataset.eta)}` : "";
  log.scrollTop = log.scrollHeight;

  // --- loss curves ---------------------------------------------------------------------
  const chartNode = document.getElementById("loss-chart");
  const curves = { names: [], steps: [], values: {} };  // values[name][i] at steps[i]
  let plot = null;

  function addPoint(step, metrics) {
    if (curves.steps.length && step <= curves.steps[curves.steps.length - 1]) return;
    for (const name of Object.keys(metrics)) {
      if (!(name in curves.values)) {
        curves.names.push(name);
        curves.values[name] = curves.steps.map(() => null);
        plot = null;  // a new series: build the chart again
      }
    }
    curves.steps.push(step);
    for (const name of curves.names) curves.values[name].push(name in metrics ? metrics[name] : null);
  }

  const PALETTE = ["#4063d8", "#cb3c33", "#389826", "#9558b2", "#c27c0e", "#13808a"];
  function draw() {
    if (!chartNode || !window.uPlot || !curves.steps.length) return;
    const data = [curves.steps, ...curves.names.map((n) => curves.values[n])];
    if (plot) { plot.setData(data); return; }
    chartNode.textContent = "";
    const width = Math.max(320, chartNode.clientWidth || 640);
    plot = new uPlot({
      width, height: 260,
      scales: { x: { time: false } },
      axes: [{ label: "step" }, { label: "loss" }],
      series: [{ label: "step" }, ...curves.names.map((name, i) => ({
        label: name, stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: true,
      }))],
    }, data, chartNode);
    chartNode.dataset.points = String(curves.steps.length);
  }
  function redraw() { draw(); if (chartNode) chartNode.dataset.points = String(curves.steps.length); }

  async function loadHistory() {
    const result = await Atelier.api("GET", `${base}/metrics`);
    if (!result.ok || !result.data || !result.data.series) return;
    const merged = new Map();
    for (const [series, points] of Object.entries(result.data.series)) {
      for (const point of points) {
        const into = merged.get(point.step) || {};
        for (const [name, value] of Object.entries(point.metrics || {})) {
          into[series === "train" ? name : `${series} ${name}`] = value;
        }
        merged.set(point.step, into);
      }
    }
    for (const step of [...merged.keys()].sort((a, b) => a - b)) addPoint(step, merged.get(step));
    redraw();
  }

  // --- live events ---------------------------------------------------------------------
  function onProgress(event) {
    // Until step 1 the job prepares its data: the phase's label, its count and its ETA
    // are shown; the bar stays the run's steps.
    const preparing = event.phase === "preparing";
    if (!preparing) {
      bar.value = event.fraction;
      bar.textContent = `${Math.round(event.fraction * 100)}%`;
    }
    phaseNode.textContent = preparing ? `preparing: ${event.label || "the data"}` : "";
    stepNode.textContent = preparing
      ? `${event.items_done || 0}/${event.items_total || 0} ${event.unit || ""}`.trim()
      : `${event.step}/${event.total}`;
    etaNode.textContent = event.eta_seconds != null ? `ETA ${Atelier.formatEta(event.eta_seconds)}` : "";
    if (event.metrics && Object.keys(event.metrics).length) {
      addPoint(event.step, event.metrics);
      redraw();
      const latest = document.getElementById("loss-latest");
      if (latest) {
        latest.textContent = Object.entries(event.metrics)
          .map(([name, value]) => `${name} ${Number(value).toFixed(4)}`).join("  ");
      }
    }
  }

  function onOutput(event) {
    const strip = document.getElementById("samples");
    const target = event.name.startsWith("samples/") && strip ? strip : document.getElementById("outputs");
    if (target.querySelector(`[data-name="${CSS.escape(event.name)}"]`)) return;
    target.append(Atelier.renderOutput(event));
    if (target === strip) strip.scrollLeft = strip.scrollWidth;
  }

  function onLog(event) {
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.append(document.createTextNode(`${event.line}\n`));
    while (log.childNodes.length > MAX_LOG_LINES) log.removeChild(log.firstChild);
    if (atEnd) log.scrollTop = log.scrollHeight;
  }

  function onStatus(event) {
    Atelier.setStatus(statusNode, event.status);
    if (event.attempt !== undefined) document.getElementById("job-attempt").textContent = event.attempt;
    if (event.error) {
      document.getElementById("job-error").textContent = `${event.error.type}: ${event.error.message}`;
    }
    if (event.model_id) {
      const cell = document.getElementById("job-model");
      cell.textContent = "";
      cell.append(Atelier.el("a", { href: `/models/${encodeURIComponent(event.model_id)}` }, event.model_id));
    }
    if (Atelier.TERMINAL.has(event.status)) {
      const cancel = document.getElementById("cancel-form");
      if (cancel) cancel.hidden = true;
      etaNode.textContent = "";
      if (event.status === "succeeded") { bar.value = 1; }
    }
  }

  // The page shows the job as of its last event; the stream goes on from there. A job
  // already over has nothing more to say (its stream would only close, and the browser
  // reconnect to it every few seconds).
  if (!Atelier.TERMINAL.has(root.dataset.status)) {
    const after = encodeURIComponent(root.dataset.lastEventId);
    const source = Atelier.follow(`${base}/events?last_event_id=${after}`, {
      status: onStatus, progress: onProgress, output: onOutput, log: onLog,
      end: (event) => { onStatus(event); source.close(); },
    });
  }
  loadHistory();
})();
