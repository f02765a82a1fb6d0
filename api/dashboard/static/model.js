// Generate from a model: POST /v1/jobs (Prefer: wait, so a short job answers in one
// request), else follow its events to the end; then show its outputs in the gallery.
"use strict";

(() => {
  const form = document.getElementById("generate-form");
  const fields = document.getElementById("gen-fields");
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

  // The form from the kind's generate params (GET /v1/kinds), this model given.
  let params = null;
  Atelier.api("GET", "/v1/kinds").then((result) => {
    const spec = result.ok && result.data.data.find((k) => k.name === form.dataset.kind);
    if (!spec) { status.textContent = `The kind's parameters could not be read: ${Atelier.problemText(result)}`; return; }
    params = ParamsForm.build(fields, spec.generate_params_schema, {
      prefix: "gen-p", kind: spec.name, modality: spec.modality, values: { model_id: form.dataset.modelId },
    });
    fields.dataset.kind = spec.name;
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!params) return;
    const read = params.read();
    if (!read.ok) { status.textContent = "Not sent: correct the marked fields."; return; }
    status.textContent = "Generating…";
    const result = await Atelier.api(
      "POST", "/v1/jobs", { type: "generate", kind: form.dataset.kind, params: read.values },
      { Prefer: "wait=30" },
    );
    if (!result.ok) { status.textContent = params.refused(result); return; }
    if (Atelier.TERMINAL.has(result.data.status)) show(result.data); else waitForEnd(result.data.id);
  });
})();
