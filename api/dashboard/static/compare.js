// Runs side by side: one chart (uPlot) with each run's curve of the chosen metric, from
// GET /v1/jobs/compare. Any metric of any run's history, train or validation, can be chosen.
"use strict";

(() => {
  const root = document.getElementById("compare");
  const chartNode = document.getElementById("compare-chart");
  const select = document.getElementById("compare-metric");
  const state = document.getElementById("compare-chart-state");
  const PALETTE = ["#4063d8", "#cb3c33", "#389826", "#9558b2", "#c27c0e", "#13808a", "#d1477a", "#5b6475"];
  let runs = [];
  let plot = null;

  // "series:metric" of every metric in any run's history, validation ones after train ones.
  function metricChoices() {
    const seen = new Map();
    for (const run of runs) {
      for (const [series, points] of Object.entries(run.series || {})) {
        for (const point of points) {
          for (const name of Object.keys(point.metrics || {})) seen.set(`${series}:${name}`, { series, name });
        }
      }
    }
    const order = (c) => (c.series === "train" ? 0 : 1);
    return [...seen.entries()].sort((a, b) => order(a[1]) - order(b[1]) || a[0].localeCompare(b[0]));
  }

  // Chosen first: the validation loss if any run has one, else the first loss, else any.
  function preferred(choices) {
    const keys = choices.map(([key]) => key);
    return keys.find((k) => k === "validation:val_loss") || keys.find((k) => k.endsWith("loss")) || keys[0];
  }

  // uPlot wants one x array: every step any run has, each run null where it has no point.
  function aligned(series, name) {
    const byRun = runs.map((run) => {
      const values = new Map();
      for (const point of (run.series || {})[series] || []) {
        if (name in (point.metrics || {})) values.set(point.step, point.metrics[name]);
      }
      return values;
    });
    const steps = [...new Set(byRun.flatMap((values) => [...values.keys()]))].sort((a, b) => a - b);
    return [steps, ...byRun.map((values) => steps.map((s) => (values.has(s) ? values.get(s) : null)))];
  }

  function draw() {
    const [series, name] = select.value.split(/:(.*)/s);
    const data = aligned(series, name);
    if (plot) plot.destroy();
    chartNode.textContent = "";
    const width = Math.max(320, chartNode.clientWidth || 640);
    plot = new uPlot({
      width, height: 300,
      scales: { x: { time: false } },
      axes: [{ label: "step" }, { label: name }],
      series: [{ label: "step" }, ...runs.map((run, i) => ({
        label: run.name || run.id, stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: true,
      }))],
    }, data, chartNode);
    chartNode.dataset.series = String(runs.length);
    chartNode.dataset.metric = select.value;
    chartNode.dataset.points = String(data[0].length);
    const without = runs.filter((_, i) => !data[i + 1].some((v) => v !== null)).map((r) => r.name || r.id);
    state.textContent = without.length ? `No ${name} in: ${without.join(", ")}.` : "";
  }

  async function load() {
    const ids = encodeURIComponent(root.dataset.ids);
    const result = await Atelier.api("GET", `/v1/jobs/compare?ids=${ids}`);
    if (!result.ok) { state.textContent = `Could not load the curves: ${Atelier.problemText(result)}`; return; }
    runs = result.data.data;
    const choices = metricChoices();
    select.textContent = "";
    if (!choices.length) { state.textContent = "No curves yet: the runs have reported no metrics."; return; }
    for (const [key, c] of choices) select.append(Atelier.el("option", { value: key }, `${c.name} (${c.series})`));
    select.value = preferred(choices);
    select.disabled = false;
    select.addEventListener("change", draw);
    draw();
  }

  if (window.uPlot) load();
})();
