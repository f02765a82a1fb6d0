// Shared helpers of the dashboard's pages. No framework: fetch, EventSource and the DOM.
// Everything a job or user wrote is put in the page with textContent, never innerHTML.
"use strict";

const Atelier = (() => {
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const TERMINAL = new Set(["succeeded", "failed", "canceled", "expired"]);
  // Browsers do not play MIDI: a .mid output gets its download link only.
  const MIDI = new Set(["audio/midi", "audio/x-midi", "audio/mid"]);

  // A /v1 call with the session cookie; changes carry the session's CSRF token.
  async function api(method, path, body, extraHeaders) {
    const headers = Object.assign({ Accept: "application/json" }, extraHeaders || {});
    if (method !== "GET") headers["X-CSRF-Token"] = csrfToken;
    const init = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    return { ok: response.ok, status: response.status, data };
  }

  // The message of a problem+json answer (RFC 9457), or the HTTP status.
  function problemText(result) {
    const d = result.data || {};
    return d.detail || d.title || `HTTP ${result.status}`;
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function formatEta(seconds) {
    if (seconds === null || seconds === undefined || seconds === "" || Number.isNaN(Number(seconds))) return "–";
    let s = Math.max(0, Math.round(Number(seconds)));
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    return h ? `${h} h ${m} min` : m ? `${m} min ${s} s` : `${s} s`;
  }

  // One output as a list item, chosen by content type only, so a new kind's outputs
  // (text, images, audio such as a melody's .wav) show without changes here.
  function renderOutput(output) {
    const item = el("li", { class: "output", "data-name": output.name });
    const type = (output.content_type || "").split(";")[0].trim();
    if (type.startsWith("image/")) {
      item.append(el("img", { src: output.url, alt: output.name, loading: "lazy" }));
    } else if (type.startsWith("audio/") && !MIDI.has(type)) {
      item.append(el("audio", { controls: "", preload: "none", src: output.url, "aria-label": output.name }));
    } else if (type.startsWith("text/") || typeof output.text === "string") {
      item.append(el("pre", {}, output.text || ""));
    }
    item.append(el("a", { href: output.url, download: "" }, output.name));
    return item;
  }

  // Follow a /v1 event stream; handlers by event name get the parsed data. The browser
  // reconnects by itself, sending Last-Event-ID, so nothing is missed across a drop.
  function follow(path, handlers, stateNode) {
    const source = new EventSource(path, { withCredentials: true });
    const say = (text) => { if (stateNode) stateNode.textContent = text; };
    source.onopen = () => say("Live: updates arrive as they happen.");
    source.onerror = () => say("Live updates interrupted; reconnecting…");
    for (const name of ["status", "progress", "output", "log", "end"]) {
      source.addEventListener(name, (event) => {
        if (handlers[name]) handlers[name](JSON.parse(event.data));
      });
    }
    return source;
  }

  // What a progress column says (the job list, the System page; progress.html renders it
  // alike): the phase preparing a running job's data ("preparing: building the folk corpus
  // 340/1,000 tunes", as the job page and the CLI), its steps once it trains ("120/160"),
  // nothing before it has any (a queued job's 0/0). ``p``: a progress, or a running job.
  function progressText(p) {
    if (p.phase === "preparing") {
      const count = p.items_total
        ? ` ${(p.items_done || 0).toLocaleString("en")}/${p.items_total.toLocaleString("en")} ${p.unit || ""}` : "";
      return `preparing: ${p.label || "the data"}${count}`.trim();
    }
    return p.total ? `${p.step}/${p.total}` : "";
  }

  function setStatus(node, status) {
    node.textContent = status;
    node.className = `status status-${status}`;
  }

  return { api, problemText, el, formatEta, progressText, renderOutput, follow, setStatus, TERMINAL, csrfToken };
})();
