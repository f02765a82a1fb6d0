// Upload a dataset with XMLHttpRequest, whose upload events give a real progress bar
// (fetch has none), then add its card.
"use strict";

(() => {
  const form = document.getElementById("upload-form");
  const bar = document.getElementById("up-progress");
  const status = document.getElementById("up-status");
  const list = document.getElementById("datasets");

  function card(dataset) {
    const item = Atelier.el("li", { class: "card dataset", "data-dataset": dataset.name });
    item.append(Atelier.el("h2", {}, dataset.title));
    const unit = dataset.modality === "image" ? "images" : "characters";
    item.append(Atelier.el("p", {}, `${dataset.name} · ${dataset.modality} · ${dataset.count} ${unit}`));
    if (dataset.classes) {
      const shown = dataset.class_names.slice(0, 12).map((name, i) => `${name} (${dataset.class_counts[i]})`);
      const more = dataset.classes > 12 ? ", …" : "";
      item.append(Atelier.el("p", { class: "classes" }, `${dataset.classes} classes: ${shown.join(", ")}${more}`));
    }
    if (dataset.preview_url) {
      item.append(Atelier.el("img", { src: dataset.preview_url, alt: `Preview of ${dataset.title}` }));
    }
    if (dataset.excerpt) item.append(Atelier.el("pre", { class: "excerpt" }, dataset.excerpt));
    return item;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const request = new XMLHttpRequest();
    request.open("POST", "/v1/datasets");
    request.setRequestHeader("X-CSRF-Token", Atelier.csrfToken);
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) {
        bar.value = e.loaded / e.total;
        status.textContent = `Uploading… ${Math.round((100 * e.loaded) / e.total)}%`;
      }
    });
    request.upload.addEventListener("load", () => { status.textContent = "Checking the upload…"; });
    request.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch (_) { body = null; }
      if (request.status === 201 && body) {
        bar.value = 1;
        status.textContent = `Uploaded ${body.name}.`;
        list.prepend(card(body));
        form.reset();
      } else {
        status.textContent = `Refused: ${(body && (body.detail || body.title)) || `HTTP ${request.status}`}`;
      }
    });
    request.addEventListener("error", () => { status.textContent = "The upload failed (network)."; });
    bar.hidden = false;
    bar.value = 0;
    request.send(new FormData(form));
  });
})();
