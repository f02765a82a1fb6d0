// Generate from a model: POST /v1/jobs (Prefer: wait, so a short job answers in one
// request), else follow its events to the end; then show its outputs in the gallery.
"use strict";

(() => {
  const form = document.getElementById("generate-form");
  const params = document.getElementById("gen-params");
  const status = document.getElementById("gen-status");
  const gallery = document.getElementById("gallery");

  function show(job) {
    if (job.status !== "succeeded") {
      status.textContent = `Job ${job.id} ${job.status}${job.error ? `: ${job.error.message}` : ""}.`;
      return;
    }
    status.textContent = `Job ${job.id} succeeded: ${job.outputs.length} outputs.`;
    for (const output of job.outputs) gallery.append(Atelier.renderOutput(output));
  }

  function waitForEnd(jobId) {
    const source = Atelier.follow(`/v1/jobs/${encodeURIComponent(jobId)}/events`, {
      progress: (event) => { status.textContent = `Generating… ${Math.round(event.fraction * 100)}%`; },
      end: async () => {
        source.close();
        const result = await Atelier.api("GET", `/v1/jobs/${encodeURIComponent(jobId)}`);
        if (result.ok) show(result.data); else status.textContent = Atelier.problemText(result);
      },
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let values;
    try { values = JSON.parse(params.value); } catch (error) {
      status.textContent = `The parameters are not valid JSON: ${error.message}`;
      return;
    }
    status.textContent = "Generating…";
    const result = await Atelier.api(
      "POST", "/v1/jobs", { type: "generate", kind: form.dataset.kind, params: values },
      { Prefer: "wait=30" },
    );
    if (!result.ok) { status.textContent = `Refused: ${Atelier.problemText(result)}`; return; }
    if (Atelier.TERMINAL.has(result.data.status)) show(result.data); else waitForEnd(result.data.id);
  });
})();
