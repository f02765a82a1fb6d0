// A job's parameter form, built from a kind's JSON Schema as GET /v1/kinds serves it: one
// input per param by its type (a number with its bounds, an integer, a select for an enum,
// a checkbox for a boolean, text, a comma list for an array), its default filled in, its
// description as help. Values are checked here before a submit, with the message beside
// the field; a 422's field errors (problem+json `errors`) land beside the fields they name.
// What is sent is what differs from the defaults ("Edit as JSON" shows just that object).
// A param marked `x-atelier-names` ("dataset" or "model") offers the owner's datasets or
// models as it is typed. Params added to a schema later show up without a change here.
"use strict";

const ParamsForm = (() => {
  const NAMES = "x-atelier-names";

  // The shape of one param: its type, whether null is allowed, and its constraints.
  function shapeOf(prop) {
    const branches = prop.anyOf || [prop];
    const inner = branches.find((b) => b.type !== "null") || {};
    const nullable = branches.some((b) => b.type === "null");
    return Object.assign({}, inner, { nullable, names: prop[NAMES] || inner[NAMES] });
  }

  // "at least 1, at most 1000000" from a number's bounds (JSON Schema keywords).
  function rangeText(s) {
    const parts = [];
    if (s.minimum !== undefined) parts.push(`at least ${s.minimum}`);
    if (s.exclusiveMinimum !== undefined) parts.push(`more than ${s.exclusiveMinimum}`);
    if (s.maximum !== undefined) parts.push(`at most ${s.maximum}`);
    if (s.exclusiveMaximum !== undefined) parts.push(`less than ${s.exclusiveMaximum}`);
    return parts.join(", ");
  }

  function helpText(s, description) {
    const parts = [description || ""];
    if (s.type === "integer" || s.type === "number") parts.push(rangeText(s));
    if (s.type === "array") {
      const items = s.items || {};
      parts.push(items.enum ? `comma-separated, any of: ${items.enum.join(", ")}` : "comma-separated");
      if (items.type === "integer" || items.type === "number") parts.push(`each ${rangeText(items)}`);
    }
    if (s.maxLength !== undefined && s.type === "string") parts.push(`up to ${s.maxLength} characters`);
    if (s.nullable) parts.push("empty: none");
    return parts.filter(Boolean).join(" · ");
  }

  // --- checking one value against its schema: a message, or "" -------------------------
  function numberProblem(value, s) {
    if (s.type === "integer" && !Number.isInteger(value)) return "a whole number, please";
    if (!Number.isFinite(value)) return "a number, please";
    if (s.minimum !== undefined && value < s.minimum) return `at least ${s.minimum}`;
    if (s.exclusiveMinimum !== undefined && value <= s.exclusiveMinimum) return `more than ${s.exclusiveMinimum}`;
    if (s.maximum !== undefined && value > s.maximum) return `at most ${s.maximum}`;
    if (s.exclusiveMaximum !== undefined && value >= s.exclusiveMaximum) return `less than ${s.exclusiveMaximum}`;
    return "";
  }

  function stringProblem(value, s) {
    if (s.minLength !== undefined && value.length < s.minLength) return `at least ${s.minLength} characters`;
    if (s.maxLength !== undefined && value.length > s.maxLength) return `at most ${s.maxLength} characters`;
    if (s.enum && !s.enum.includes(value)) return `one of: ${s.enum.join(", ")}`;
    if (s.pattern) {
      let re = null;
      try { re = new RegExp(s.pattern, "u"); } catch (_) { re = null; }  // the server judges it
      if (re && !re.test(value)) return `not of the form ${s.pattern}`;
    }
    return "";
  }

  // One item of a comma list as its type wants it: [value, problem].
  function parseItem(text, s) {
    if (s.type === "integer" || s.type === "number") {
      const value = text === "" ? NaN : Number(text);
      return [value, numberProblem(value, s)];
    }
    return [text, stringProblem(text, s)];
  }

  function parseList(text, s) {
    const parts = text.split(",").map((t) => t.trim()).filter((t) => t !== "");
    if (!parts.length && s.nullable) return [null, ""];
    const values = [];
    for (const [i, part] of parts.entries()) {
      const [value, problem] = parseItem(part, s.items || {});
      if (problem) return [null, `item ${i + 1} (${part}): ${problem}`];
      values.push(value);
    }
    if (s.minItems !== undefined && values.length < s.minItems) return [null, `at least ${s.minItems} items`];
    if (s.maxItems !== undefined && values.length > s.maxItems) return [null, `at most ${s.maxItems} items`];
    return [values, ""];
  }

  // A field's value from its input: [value, problem].
  function parse(field) {
    const { input, shape: s } = field;
    if (input.tagName === "SELECT") return [JSON.parse(input.value), ""];
    if (s.type === "boolean") return [input.checked, ""];
    const text = input.value.trim();
    if (s.type === "array") return parseList(text, s);
    if (text === "") {
      if (input.validity && input.validity.badInput) return [null, "a number, please"];
      if (s.nullable) return [null, ""];
      if (s.type !== "string" || field.required) return [null, "required"];
    }
    if (s.type === "integer" || s.type === "number") {
      const value = Number(text);
      return [value, numberProblem(value, s)];
    }
    const value = s.type === "string" ? input.value : text;
    return [value, stringProblem(value, s)];
  }

  // --- building the inputs ---------------------------------------------------------------
  function selectFor(s) {
    const select = Atelier.el("select");
    if (s.nullable) select.append(Atelier.el("option", { value: "null" }, "(none)"));
    for (const choice of s.enum) select.append(Atelier.el("option", { value: JSON.stringify(choice) }, choice));
    return select;
  }

  // A boolean that may also be null (a dcgan's `conditional`: null means "when the dataset
  // is labelled") is a choice of three, not a checkbox that could only say true or false.
  function inputFor(s) {
    if (s.enum) return selectFor(s);
    if (s.type === "boolean" && s.nullable) return selectFor(Object.assign({}, s, { enum: [true, false] }));
    if (s.type === "boolean") return Atelier.el("input", { type: "checkbox" });
    if (s.type === "integer" || s.type === "number") {
      const input = Atelier.el("input", { type: "number", step: s.type === "integer" ? "1" : "any", class: "number" });
      const low = s.minimum !== undefined ? s.minimum : s.exclusiveMinimum;
      const high = s.maximum !== undefined ? s.maximum : s.exclusiveMaximum;
      if (low !== undefined) input.min = String(low);
      if (high !== undefined) input.max = String(high);
      return input;
    }
    const input = Atelier.el("input", { type: "text", spellcheck: "false" });
    if (s.type === "string" && s.maxLength !== undefined) input.maxLength = s.maxLength;
    return input;
  }

  function setValue(field, value) {
    const { input, shape: s } = field;
    if (input.tagName === "SELECT") input.value = JSON.stringify(value === undefined ? null : value);
    else if (s.type === "boolean") input.checked = Boolean(value);
    else if (Array.isArray(value)) input.value = value.join(", ");
    else input.value = value === null || value === undefined ? "" : String(value);
  }

  function fieldFor(name, prop, required, prefix) {
    const shape = shapeOf(prop);
    const id = `${prefix}-${name}`;
    const input = inputFor(shape);
    input.id = id;  // no name: a form's named inputs would shadow its own properties
    input.setAttribute("aria-describedby", `${id}-help ${id}-error`);
    if (required) input.required = true;
    const wrap = Atelier.el("div", { class: `param param-${shape.type || "any"}`, "data-param": name });
    const help = Atelier.el("small", { class: "help", id: `${id}-help` });
    help.append(Atelier.el("code", {}, name), " ", helpText(shape, prop.description));
    const error = Atelier.el("p", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
    error.hidden = true;
    wrap.append(Atelier.el("label", { for: id }, prop.title || name), input, help, error);
    return { name, input, shape, required, wrap, error, hasDefault: "default" in prop, fallback: prop.default };
  }

  // Only what differs from a default is sent: the server fills in the rest as the schema
  // says, and a training that continues a model takes what is left out from that model.
  const differs = (field, value) => !field.hasDefault || JSON.stringify(value) !== JSON.stringify(field.fallback);

  function showError(field, message) {
    field.error.textContent = message;
    field.error.hidden = !message;
    field.input.setAttribute("aria-invalid", message ? "true" : "false");
    field.wrap.classList.toggle("invalid", Boolean(message));
  }

  // --- the owner's datasets and models, read once a page, offered as a field is typed ----
  const lists = {};
  function listOf(what) {
    const path = what === "dataset" ? "/v1/datasets" : "/v1/models?limit=100";
    if (!lists[what]) lists[what] = Atelier.api("GET", path).then((r) => (r.ok ? r.data.data : []));
    return lists[what];
  }

  function choiceOf(what, item) {
    if (what === "dataset") return { value: item.name, label: `${item.title} (${item.modality})` };
    const named = item.name ? `${item.name} v${item.version}, ` : "";
    return { value: item.id, label: `${named}${item.steps} steps on ${item.dataset}` };
  }

  async function offerChoices(field, context) {
    const what = field.shape.names;
    const list = Atelier.el("datalist", { id: `${field.input.id}-choices` });
    field.input.setAttribute("list", list.id);
    field.wrap.append(list);
    for (const item of await listOf(what)) {
      if (what === "dataset" && context.modality && item.modality !== context.modality) continue;
      if (what === "model" && context.kind && item.kind !== context.kind) continue;
      const choice = choiceOf(what, item);
      list.append(Atelier.el("option", { value: choice.value, label: choice.label }));
    }
  }

  // --- the raw JSON editor: the same values as one object, for what fields cannot say ----
  function rawEditor(fields, grid) {
    const details = Atelier.el("details", { class: "raw-params" });
    const text = Atelier.el("textarea", { rows: "10", spellcheck: "false", "aria-label": "Parameters as JSON" });
    const note = Atelier.el("p", { class: "field-error", "aria-live": "polite" });
    note.hidden = true;
    details.append(Atelier.el("summary", {}, "Edit as JSON"), text);
    const say = (message) => { note.textContent = message; note.hidden = !message; };
    const current = () => Object.fromEntries(fields.flatMap((f) => {
      const [value, problem] = parse(f);
      return problem ? [[f.name, f.input.value]] : differs(f, value) ? [[f.name, value]] : [];
    }));
    const parsed = () => {
      try {
        const values = JSON.parse(text.value);
        if (values && typeof values === "object" && !Array.isArray(values)) return values;
        say("The parameters must be a JSON object.");
      } catch (error) { say(`Not valid JSON: ${error.message}`); }
      return null;
    };
    const close = () => {  // the JSON's values back into the fields
      const values = parsed();
      if (values) for (const f of fields) setValue(f, f.name in values ? values[f.name] : f.fallback);
      details.open = false;
    };
    details.addEventListener("toggle", () => {
      grid.hidden = details.open;
      say("");
      if (details.open) text.value = JSON.stringify(current(), null, 2); else close();
    });
    return { details, note, parsed, close, isOpen: () => details.open };
  }

  // --- the whole form ---------------------------------------------------------------------
  function read(fields, raw) {
    if (raw.isOpen()) {
      const values = raw.parsed();
      return { ok: values !== null, values: values || {} };
    }
    const values = {};
    let first = null;
    for (const field of fields) {
      const [value, problem] = parse(field);
      showError(field, problem);
      if (problem) first = first || field; else if (differs(field, value)) values[field.name] = value;
    }
    if (first) first.input.focus();
    return { ok: !first, values };
  }

  // The 422's errors beside the fields they name ("params.steps", "params.labels.0");
  // answers the messages no field here names.
  function showProblem(fields, raw, result) {
    const errors = (result.data && result.data.errors) || [];
    const named = errors.map((e) => [fields.find((f) => `${e.field}.`.startsWith(`params.${f.name}.`)), e]);
    if (named.some(([field]) => field) && raw.isOpen()) raw.close();
    const left = [];
    for (const [field, e] of named) if (field) showError(field, e.message); else left.push(e);
    const first = named.find(([field]) => field);
    if (first) first[0].input.focus();
    return left;
  }

  // Build the form for `schema` into `container`: options are `prefix` (of the inputs'
  // ids), `values` (given values, over the defaults), `kind` and `modality` (which models
  // and datasets to offer).
  function build(container, schema, options) {
    const required = new Set(schema.required || []);
    const grid = Atelier.el("div", { class: "param-grid" });
    const fields = [];
    for (const [name, prop] of Object.entries(schema.properties || {})) {
      const field = fieldFor(name, prop, required.has(name), options.prefix);
      const given = (options.values || {})[name];
      setValue(field, given !== undefined ? given : prop.default);
      // A message goes when its field is edited; new ones come at a submit only: shown on
      // leaving the field, one would move the button under a click in flight.
      field.input.addEventListener("input", () => showError(field, ""));
      if (field.shape.names) offerChoices(field, options);
      fields.push(field);
      grid.append(field.wrap);
    }
    const raw = rawEditor(fields, grid);
    container.replaceChildren(grid, raw.details, raw.note);
    return {
      fields,
      read: () => read(fields, raw),
      // A refusal: its field errors beside their fields; answers the form's status line.
      refused: (result) => {
        const left = showProblem(fields, raw, result);
        const marked = ((result.data && result.data.errors) || []).length > left.length;
        return marked && !left.length ? "Refused: see the marked fields."
          : `Refused: ${Atelier.problemText(result)}`;
      },
      clear: () => fields.forEach((f) => showError(f, "")),
    };
  }

  return { build, shapeOf, parse, NAMES };
})();
