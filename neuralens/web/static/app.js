// The neuralens page: plain JavaScript over the JSON API (no build step, nothing loaded from elsewhere).
// Every API call goes through api(), which adds the access token when the server asked for one; images
// behind the API are fetched as blobs for the same reason (an <img src> cannot carry the token).
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "neuralens-token";

// ---- API plumbing -----------------------------------------------------------------------------------
let tokenPrompt = null; // the pending "ask for the token" promise, shared by concurrent calls

function authHeaders() {
  const token = localStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: "Bearer " + token } : {};
}

function askToken(message) {
  if (!tokenPrompt) {
    tokenPrompt = new Promise((resolve) => {
      const dialog = $("token-dialog");
      $("token-message").textContent = message || "";
      $("token-input").value = "";
      dialog.addEventListener("close", function done() {
        dialog.removeEventListener("close", done);
        localStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
        tokenPrompt = null;
        resolve();
      });
      dialog.showModal();
    });
  }
  return tokenPrompt;
}

// fetch() against the API; asks for the token on 401 and retries; throws Error(message) on any other error.
async function api(path, options = {}, retried = false) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.status === 401 && !retried) {
    const body = await response.json().catch(() => ({}));
    const hadToken = Boolean(localStorage.getItem(TOKEN_KEY));
    await askToken(hadToken ? body.error || "wrong access token" : "");
    return api(path, options, true);
  }
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    const error = new Error(body.error || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return response;
}
const apiJSON = async (path, options) => (await api(path, options)).json();
const apiBlobURL = async (path) => URL.createObjectURL(await (await api(path)).blob());

function showNotice(text) {
  const notice = $("notice");
  notice.textContent = text;
  notice.hidden = !text;
}

function say(id, text, kind = "") {
  const el = $(id);
  el.textContent = text;
  el.className = "message " + kind;
}

const fmt = (x) => (x === null || x === undefined ? "—" : Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-2 && x !== 0) ? x.toExponential(2) : x.toFixed(2));
const secs = (s) => (s === null || s === undefined ? "—" : s >= 90 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${s.toFixed(1)} s`);

// ---- tabs -------------------------------------------------------------------------------------------
function showTab(name) {
  for (const tab of document.querySelectorAll(".tab")) {
    const active = tab.dataset.tab === name;
    tab.classList.toggle("active", active);
    tab.setAttribute("aria-selected", String(active));
  }
  for (const panel of document.querySelectorAll(".tab-panel")) panel.hidden = panel.id !== "tab-" + name;
  if (name === "faces") loadPeople();
}

// ---- style transfer: choosing inputs ----------------------------------------------------------------
const chosen = { content: null, styles: [] }; // items: {file} or {sample}, plus url for the thumbnail
let info = { samples: [], limits: {}, options: [] };

function setContent(item) {
  chosen.content = item;
  const thumb = $("content-thumb");
  thumb.src = item.url;
  thumb.hidden = false;
  $("content-drop").classList.add("filled");
  markSamples();
  if (fast.model || fast.painting) fastStylize(true); // the real-time result follows the photo
}

function addStyles(items) {
  for (const item of items) {
    if (item.sample && chosen.styles.some((s) => s.sample === item.sample)) continue;
    chosen.styles.push(item);
  }
  renderStyles();
}

function renderStyles() {
  const list = $("style-chosen");
  list.replaceChildren();
  chosen.styles.forEach((item, index) => {
    const li = document.createElement("li");
    const img = document.createElement("img");
    img.src = item.url;
    img.alt = item.sample || item.file.name;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.title = "remove this style";
    remove.setAttribute("aria-label", "remove style " + (index + 1));
    remove.textContent = "×";
    remove.addEventListener("click", () => { chosen.styles.splice(index, 1); renderStyles(); });
    li.append(img, remove);
    list.append(li);
  });
  markSamples();
  if (fast.painting && fast.paintingItem !== chosen.styles[0]) fastStylize(true); // "any painting" follows it
}

function markSamples() {
  for (const el of document.querySelectorAll("#content-samples .sample")) el.classList.toggle("picked", chosen.content && chosen.content.sample === el.dataset.sample);
  for (const el of document.querySelectorAll("#style-samples .sample")) el.classList.toggle("picked", chosen.styles.some((s) => s.sample === el.dataset.sample));
}

// Photos in the content picker, paintings in the style picker (the server says which is which; a sample
// of no declared kind goes in both).
function renderSamples() {
  const pickers = [["content-samples", "content", (s) => setContent(s)], ["style-samples", "style", (s) => addStyles([s])]];
  for (const [boxId, kind, pick] of pickers) {
    const box = $(boxId);
    box.replaceChildren();
    for (const sample of info.samples.filter((s) => !s.kind || s.kind === kind)) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "sample";
      button.dataset.sample = sample.name;
      button.title = sample.title || sample.name;
      const img = document.createElement("img");
      img.src = sample.url;
      img.alt = sample.name;
      button.append(img);
      button.addEventListener("click", () => pick({ sample: sample.name, url: sample.url }));
      box.append(button);
    }
  }
}

const fileItem = (file) => ({ file, url: URL.createObjectURL(file) });
const imagesOf = (files) => Array.from(files || []).filter((f) => f.type.startsWith("image/") || f.type === "");

function wireDrop(zoneId, onFiles) {
  const zone = $(zoneId);
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    onFiles(imagesOf(e.dataTransfer.files));
  });
}

// ---- style transfer: settings ----------------------------------------------------------------------
// The controls are built from info.options (every option of POST /api/jobs, with its kind, default,
// limits, choices and help). These four are shown first, with widgets of their own; the rest go under
// "More settings" and are sent only when changed.
const MAIN_OPTIONS = ["style_weight", "size", "iterations", "preserve_color"];
const LABELS = { style_weight: "Style strength", size: "Size (long side)", iterations: "Iterations",
                 preserve_color: "Photo's colours" };
const CHOICE_LABELS = { preserve_color: { none: "style's colours", luminance: "keep (luminance)", histogram: "keep (histogram)" } };
const controls = new Map(); // option name -> {field, input, read(): value to send ("" for none), show()}

const optionId = (name) => "opt-" + name.replace(/_/g, "-");
const labelOf = (field) => LABELS[field.name] || field.name.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
const asText = (value) => (value === null || value === undefined ? "" : Array.isArray(value) ? value.join(",") : String(value));

function choiceSelect(field) {
  const select = document.createElement("select");
  for (const choice of field.choices) {
    const option = document.createElement("option");
    option.value = choice === null ? "none" : String(choice);
    option.textContent = (CHOICE_LABELS[field.name] || {})[option.value] || (option.value === "none" ? field.none_help || "none" : option.value);
    select.append(option);
  }
  select.value = field.default === null ? "none" : String(field.default);
  return select;
}

// A generic control: a select for choices, a checkbox for true/false, a number box for numbers and a
// text box for the rest (layer lists, weights); an empty box means the option's "none" (its none_help).
function genericInput(field) {
  if (field.choices) return choiceSelect(field);
  const input = document.createElement("input");
  if (field.kind === "bool") {
    input.type = "checkbox";
    input.checked = Boolean(field.default);
    return input;
  }
  if (field.kind === "int" || field.kind === "float") {
    input.type = "number";
    input.step = field.kind === "int" ? "1" : "any";
    const low = field.minimum !== null ? field.minimum : field.above !== null && field.kind === "int" ? field.above + 1 : null;
    if (low !== null) input.min = String(low);
    if (field.maximum !== null) input.max = String(field.maximum);
  } else {
    input.type = "text";
  }
  input.value = asText(field.default);
  if (field.none_help) input.placeholder = field.none_help;
  return input;
}

function rangeInput(min, max, step, value) {
  const input = document.createElement("input");
  input.type = "range";
  Object.assign(input, { min: String(min), max: String(max), step: String(step) });
  input.value = String(value);
  return input;
}

// The four main controls: β on a log scale, the size and the iterations as sliders (0 iterations: the
// option's default, by size), the colours as a select.
function mainControl(field) {
  if (field.name === "style_weight") {
    const input = rangeInput(2, 6, 0.1, Math.log10(field.default || 1).toFixed(1));
    const value = () => Math.pow(10, Number(input.value));
    return { input, read: () => String(value()), show: () => "β = " + value().toExponential(1).replace("e+", "e") };
  }
  if (field.name === "size") {
    const max = info.limits.max_size || 1024;
    const input = rangeInput(64, max, 32, Math.min(field.default, max));
    return { input, read: () => input.value, show: () => input.value + " px" };
  }
  if (field.name === "iterations") {
    const input = rangeInput(0, Math.min(500, info.limits.max_iterations || 500), 1, field.default || 0);
    input.title = "0: " + (field.none_help || "the default");
    return { input, read: () => (input.value === "0" ? "" : input.value), show: () => (input.value === "0" ? "auto" : input.value) };
  }
  const input = genericInput(field);
  return { input, read: () => input.value, show: null };
}

function buildOptions() {
  const main = $("options-main");
  const more = $("options-more");
  main.replaceChildren();
  more.replaceChildren();
  controls.clear();
  const fields = [...MAIN_OPTIONS.map((n) => info.options.find((f) => f.name === n)).filter(Boolean),
                  ...info.options.filter((f) => !MAIN_OPTIONS.includes(f.name))];
  for (const field of fields) {
    const isMain = MAIN_OPTIONS.includes(field.name);
    const control = isMain ? mainControl(field) : { input: genericInput(field), show: null };
    const input = control.input;
    input.id = optionId(field.name);
    input.name = field.name;
    input.title = input.title || field.help;
    if (!control.read) control.read = () => (input.type === "checkbox" ? String(input.checked) : input.value.trim());
    control.field = field;
    const row = document.createElement("div");
    row.className = "control" + (control.show ? "" : " wide");
    const label = document.createElement("label");
    label.htmlFor = input.id;
    label.textContent = labelOf(field);
    label.title = field.help;
    row.append(label, input);
    if (control.show) {
      const output = document.createElement("output");
      output.id = input.id + "-value";
      output.htmlFor = input.id;
      row.append(output);
      const update = () => { output.textContent = control.show(); };
      input.addEventListener("input", update);
      update();
    }
    if (!isMain) {
      const help = document.createElement("p");
      help.className = "help muted small";
      help.textContent = field.help + (field.nullable && field.none_help ? ` (empty: ${field.none_help})` : "");
      row.append(help);
    }
    (isMain ? main : more).append(row);
    controls.set(field.name, control);
  }
}

// The options to send: the main ones always (an empty value means the option's default), the others only
// when they differ from the default.
function appendOptions(form) {
  for (const [name, control] of controls) {
    const value = control.read();
    const isMain = MAIN_OPTIONS.includes(name);
    if (value === "" || (!isMain && value === asText(control.field.default))) continue;
    if (!isMain && control.field.kind === "bool" && value === String(Boolean(control.field.default))) continue;
    form.append(name, value);
  }
}

// ---- style transfer: running a job ------------------------------------------------------------------
let current = null; // {id, previewIteration, previewURL, done}

async function stylize(event) {
  event.preventDefault();
  if (!chosen.content) return say("style-message", "Choose a content photo first (or pick a sample).", "error");
  if (!chosen.styles.length) return say("style-message", "Choose at least one style image.", "error");
  const form = new FormData();
  if (chosen.content.file) form.append("content", chosen.content.file);
  else form.append("content_sample", chosen.content.sample);
  for (const s of chosen.styles) if (s.file) form.append("style", s.file);
  for (const s of chosen.styles) if (s.sample) form.append("style_sample", s.sample);
  appendOptions(form);
  $("stylize").disabled = true;
  say("style-message", "Sending…");
  try {
    const job = await apiJSON("/api/jobs", { method: "POST", body: form });
    current = { id: job.id, previewIteration: 0, previewURL: null, done: false };
    $("download").hidden = true;
    $("cancel").disabled = false;
    say("style-message", job.queue_position > 1 ? `Queued (position ${job.queue_position}).` : "Started.");
    showJob(job);
    follow(job.id);
  } catch (error) {
    say("style-message", error.message, "error");
    $("stylize").disabled = false;
  }
}

// Follow a job's server-sent events. fetch() streaming rather than EventSource, because EventSource
// cannot send the Authorization header. Falls back to polling if the stream breaks.
async function follow(id) {
  try {
    const response = await api(`/api/jobs/${id}/events`);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = /^event: (.*)$/m.exec(block);
        const data = /^data: (.*)$/m.exec(block);
        if (event && event[1] === "job" && data) await showJob(JSON.parse(data[1]));
      }
    }
  } catch (error) {
    if (current && current.id === id && !current.done) return poll(id);
  }
  if (current && current.id === id && !current.done) poll(id);
}

async function poll(id) {
  while (current && current.id === id && !current.done) {
    try { await showJob(await apiJSON(`/api/jobs/${id}`)); } catch (error) { say("style-message", error.message, "error"); return; }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function showJob(job) {
  if (!current || job.id !== current.id) return;
  const p = job.progress || {};
  $("stat-status").textContent = job.status + (job.status === "queued" && job.queue_position ? ` (#${job.queue_position})` : "");
  $("stat-iteration").textContent = p.iteration ? `${p.iteration} / ${p.total_iterations}` + (p.size ? ` at ${p.size[0]}×${p.size[1]}` : "") : "—";
  $("stat-content").textContent = fmt(p.content_loss);
  $("stat-style").textContent = fmt(p.style_loss);
  $("stat-elapsed").textContent = secs(p.elapsed);
  $("stat-eta").textContent = job.status !== "running" ? "—" : p.eta === null || p.eta === undefined ? "estimating…" : "about " + secs(p.eta);
  $("progress-bar").style.width = p.total_iterations ? `${(100 * p.iteration) / p.total_iterations}%` : "0%";
  const finished = ["done", "failed", "cancelled"].includes(job.status);
  if (finished && !current.done) {
    current.done = true;
    $("cancel").disabled = true;
    $("stylize").disabled = false;
    if (job.status === "failed") say("style-message", "Failed: " + job.error, "error");
    else if (job.status === "cancelled") say("style-message", job.urls.result ? "Cancelled; the image reached so far is kept." : "Cancelled.");
    else say("style-message", `Done in ${secs(p.elapsed)}.`, "ok");
    if (job.urls.result) await showResult(job);
    loadGallery();
  } else if (job.urls.preview && job.preview_iteration !== current.previewIteration) {
    current.previewIteration = job.preview_iteration;
    await showImage(job.urls.preview, job.preview_iteration, false);
  }
}

async function showImage(path, iteration, final) {
  const url = await apiBlobURL(path);
  const img = $("result");
  const old = img.dataset.blob;
  img.src = url;
  img.dataset.blob = url;
  img.dataset.iteration = String(iteration);
  img.dataset.final = final ? "1" : "0";
  img.hidden = false;
  $("stage-empty").hidden = true;
  if (old && old !== $("download").href) URL.revokeObjectURL(old);
  return url;
}

async function showResult(job) {
  const url = await showImage(job.urls.result, (job.progress || {}).iteration || 0, true);
  const link = $("download");
  link.href = url;
  link.download = `neuralens-${job.id.slice(0, 8)}.png`;
  link.hidden = false;
}

async function cancelJob() {
  if (!current) return;
  $("cancel").disabled = true;
  try { await api(`/api/jobs/${current.id}/cancel`, { method: "POST" }); say("style-message", "Cancelling…"); }
  catch (error) { say("style-message", error.message, "error"); }
}

// After a reload, pick up a job of this server that is still running or waiting (newest first).
function resumeUnfinished(jobs) {
  if (current && !current.done) return;
  const job = jobs.find((j) => j.status === "running" || j.status === "queued");
  if (!job) return;
  current = { id: job.id, previewIteration: 0, previewURL: null, done: false };
  $("stylize").disabled = true;
  $("cancel").disabled = false;
  say("style-message", "Following a job that was already running.");
  showJob(job);
  follow(job.id);
}

// ---- the gallery of past results --------------------------------------------------------------------
const galleryURLs = new Map(); // job id -> blob URL, so thumbnails are fetched once

async function loadGallery() {
  let jobs;
  try { jobs = (await apiJSON("/api/jobs")).jobs; } catch (error) { return showNotice(error.message); }
  resumeUnfinished(jobs);
  const withResult = jobs.filter((j) => j.urls.result);
  const list = $("gallery");
  list.replaceChildren();
  $("gallery-empty").hidden = withResult.length > 0;
  for (const job of withResult) {
    if (!galleryURLs.has(job.id)) galleryURLs.set(job.id, await apiBlobURL(job.urls.result));
    const url = galleryURLs.get(job.id);
    const li = document.createElement("li");
    li.dataset.job = job.id;
    const img = document.createElement("img");
    img.src = url;
    img.alt = "result " + job.id.slice(0, 8);
    const caption = document.createElement("div");
    caption.className = "caption";
    const o = job.options;
    const styles = (job.inputs.styles || []).join(" + ");
    caption.textContent = `${job.inputs.content} × ${styles} · ${job.result_size.join("×")} · β ${o.style_weight.toExponential(0)}` + (job.status === "cancelled" ? " · stopped early" : "");
    const actions = document.createElement("div");
    actions.className = "actions";
    const download = document.createElement("a");
    download.className = "button small";
    download.href = url;
    download.download = `neuralens-${job.id.slice(0, 8)}.png`;
    download.textContent = "Download";
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "small";
    remove.textContent = "Delete";
    remove.addEventListener("click", async () => {
      try { await api(`/api/jobs/${job.id}`, { method: "DELETE" }); } catch (error) { return showNotice(error.message); }
      URL.revokeObjectURL(galleryURLs.get(job.id));
      galleryURLs.delete(job.id);
      loadGallery();
    });
    actions.append(download, remove);
    li.append(img, caption, actions);
    list.append(li);
  }
}

// ---- real-time style: the built-in models, or any painting ---------------------------------------------
// GET /api/models lists the models; clicking one sends the chosen content (upload or sample) to
// POST /api/models/{name}/stylize, which answers the PNG itself. "Any painting" (live.js, when the server has
// the arbitrary-style engine) sends the photo and the first chosen painting to POST /api/fast instead.
// Live: at most one request is in flight. A slider moved meanwhile is remembered and sent with the latest
// values as soon as the answer is in (dragging shows a stream of previews, never a queue); a new photo,
// painting or model aborts the request in flight instead (its answer would show the old choice), and the
// server skips an aborted request that has not started. Only the latest request's image is shown.
const fast = { model: null, painting: false, paintingItem: null, request: 0, url: null, busy: false, again: false, controller: null };

// "woman-with-hat-matisse.jpg" -> "woman with hat matisse" (a painting that is not a bundled sample).
const paintingName = (file) => (file || "").replace(/\.[a-z0-9]+$/i, "").replace(/[-_]+/g, " ");

async function loadModels() {
  let data;
  try { data = await apiJSON("/api/models"); } catch (error) { return say("fast-message", error.message, "error"); }
  const box = $("fast-models");
  box.replaceChildren();
  $("fast-empty").hidden = data.models.length > 0;
  const size = $("fast-size");
  size.max = String(info.limits.max_size || 1024);
  size.value = String(Math.min(data.default_size, Number(size.max)));
  size.dispatchEvent(new Event("input"));
  for (const model of data.models) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "fast-model";
    button.dataset.model = model.name;
    button.setAttribute("aria-pressed", "false");
    if (model.painting_url) {
      const img = document.createElement("img");
      img.src = model.painting_url;
      img.alt = "";
      button.append(img);
    } else {
      button.classList.add("no-thumb"); // only the bundled paintings have thumbnails
    }
    const text = document.createElement("span");
    const name = document.createElement("span");
    name.className = "model-name";
    name.textContent = model.name;
    const about = document.createElement("span");
    about.className = "model-about";
    about.textContent = model.error ? "unreadable" : model.title || paintingName(model.painting);
    text.append(name, about);
    button.append(text);
    button.title = model.error || `${model.title || model.painting || model.name}: width ${model.width}, trained ${model.trained}`;
    button.disabled = Boolean(model.error);
    button.addEventListener("click", () => { fast.model = model.name; fast.painting = false; fastStylize(true); });
    box.append(button);
  }
}

// A change of the preview's inputs; ``restart`` (a new photo, painting or model) aborts the request in flight.
function fastStylize(restart = false) {
  if (fast.busy) {
    fast.again = true;
    if (restart === true && fast.controller) fast.controller.abort();
    return;
  }
  fastSend();
}

async function fastSend() {
  for (const el of document.querySelectorAll(".fast-model[data-model]")) el.setAttribute("aria-pressed", String(!fast.painting && el.dataset.model === fast.model));
  $("fast-painting").setAttribute("aria-pressed", String(fast.painting));
  if (!fast.model && !fast.painting) return;
  if (!chosen.content) return say("fast-message", "Choose a content photo first (under 1 · Content, or pick a sample).", "error");
  const painting = fast.painting ? chosen.styles[0] : null;
  if (fast.painting && !painting) return say("fast-message", "Choose a painting first (under 2 · Style, or pick a sample).", "error");
  const form = new FormData();
  if (chosen.content.file) form.append("content", chosen.content.file);
  else form.append("content_sample", chosen.content.sample);
  form.append("size", $("fast-size").value);
  form.append("strength", $("fast-strength").value);
  form.append("preserve_color", $("fast-color").value);
  const model = fast.painting ? "painting" : fast.model;
  const request = ++fast.request;
  const started = performance.now();
  fast.busy = true;
  fast.again = false;
  fast.controller = new AbortController();
  fast.paintingItem = painting;
  say("fast-message", fast.painting ? "Painting in the style of your painting…" : `Painting with ${model}…`);
  try {
    const signal = fast.controller.signal;
    const response = fast.painting
      ? await paintingPreview(form, painting, signal) // live.js: POST /api/fast
      : await api(`/api/models/${encodeURIComponent(model)}/stylize`, { method: "POST", body: form, signal });
    const blob = await response.blob();
    if (request !== fast.request) return; // a newer request is on its way
    const total = (performance.now() - started) / 1000;
    const server = Number(response.headers.get("X-Seconds"));
    const url = URL.createObjectURL(blob);
    const img = $("fast-result");
    img.onload = () => { img.dataset.size = `${img.naturalWidth}x${img.naturalHeight}`; };
    img.src = url;
    const photo = chosen.content.sample || chosen.content.file.name;
    img.alt = fast.painting ? `${photo} painted in the style of ${painting.sample || painting.file.name}` : `${photo} painted by the ${model} model`;
    img.dataset.model = model;
    img.hidden = false;
    $("fast-stage-empty").hidden = true;
    if (fast.url) URL.revokeObjectURL(fast.url);
    fast.url = url;
    const link = $("fast-download");
    link.href = url;
    const kind = blob.type === "image/jpeg" ? "jpg" : "png";
    link.download = `neuralens-${model}.${kind}`;
    link.textContent = `Download ${kind === "jpg" ? "JPEG" : "PNG"}`;
    link.hidden = false;
    say("fast-message", `${model}: ${server.toFixed(2)} s on the server, ${total.toFixed(2)} s in all.`, "ok");
  } catch (error) {
    if (error.name !== "AbortError" && request === fast.request) say("fast-message", error.message, "error");
  } finally {
    fast.busy = false;
    fast.controller = null;
    if (fast.again) fastSend();
  }
}

// ---- faces ------------------------------------------------------------------------------------------
async function loadPeople() {
  let data;
  try { data = await apiJSON("/api/faces/people"); } catch (error) { return say("enroll-message", error.message, "error"); }
  const list = $("people");
  list.replaceChildren();
  $("people-empty").hidden = data.people.length > 0;
  const select = $("verify-name");
  select.replaceChildren();
  for (const person of data.people) {
    const li = document.createElement("li");
    li.dataset.name = person.name;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = person.name;
    const count = document.createElement("span");
    count.className = "muted small";
    count.textContent = `${person.embeddings} photo${person.embeddings === 1 ? "" : "s"}`;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "small";
    remove.textContent = "Remove";
    // Two clicks (no confirm() dialog): the first arms the button, the second removes.
    remove.addEventListener("click", async () => {
      if (!remove.classList.contains("armed")) { remove.classList.add("armed"); remove.textContent = "Really remove?"; return; }
      try {
        await api(`/api/faces/people/${encodeURIComponent(person.name)}`, { method: "DELETE" });
        say("enroll-message", `Removed ${person.name}.`, "ok");
      } catch (error) { say("enroll-message", error.message, "error"); }
      loadPeople();
    });
    li.append(name, count, remove);
    list.append(li);
    const option = document.createElement("option");
    option.value = option.textContent = person.name;
    select.append(option);
  }
}

async function enroll(event) {
  event.preventDefault();
  const form = new FormData();
  const name = $("enroll-name").value.trim();
  form.append("name", name);
  for (const file of $("enroll-photo").files) form.append("photo", file);
  $("enroll").disabled = true;
  say("enroll-message", "Looking for the face…");
  try {
    const result = await apiJSON("/api/faces/people", { method: "POST", body: form });
    let text = result.added ? `Enrolled ${result.name} (${result.added} photo${result.added === 1 ? "" : "s"}).` : `${result.name}: these photos were already enrolled.`;
    if (result.warnings.length) text += " Warning: " + result.warnings.join("; ");
    say("enroll-message", text, result.warnings.length ? "warn" : "ok");
    $("enroll-form").reset();
    await loadPeople();
  } catch (error) {
    say("enroll-message", error.message, "error");
  } finally {
    $("enroll").disabled = false;
  }
}

async function identify(event) {
  event.preventDefault();
  const file = $("identify-photo").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("photo", file);
  $("identify").disabled = true;
  say("identify-message", "Searching…");
  try {
    const result = await apiJSON("/api/faces/identify", { method: "POST", body: form });
    drawFaces(file, result);
    const known = result.faces.filter((f) => f.name !== "unknown").length;
    say("identify-message", result.faces.length ? `${result.faces.length} face(s), ${known} recognised.` : "No face found in this photo.", "ok");
  } catch (error) {
    say("identify-message", error.message, "error");
  } finally {
    $("identify").disabled = false;
  }
}

// Boxes are drawn over the photo in percentages of its size, so they follow the image when it is scaled.
function drawFaces(file, result) {
  const frame = document.querySelector("#identify-figure .faces-frame");
  for (const old of frame.querySelectorAll(".face-box")) old.remove();
  const img = $("identify-image");
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(file);
  const list = $("identify-list");
  list.replaceChildren();
  for (const face of result.faces) {
    const [left, top, right, bottom] = face.box;
    const box = document.createElement("div");
    box.className = "face-box " + (face.name === "unknown" ? "unknown" : "known");
    box.style.left = `${(100 * left) / result.width}%`;
    box.style.top = `${(100 * top) / result.height}%`;
    box.style.width = `${(100 * (right - left)) / result.width}%`;
    box.style.height = `${(100 * (bottom - top)) / result.height}%`;
    const label = document.createElement("span");
    label.textContent = face.name;
    box.append(label);
    frame.append(box);
    const li = document.createElement("li");
    li.textContent = face.name === "unknown"
      ? `Face ${face.index}: unknown (nearest ${face.nearest}, distance ${face.distance.toFixed(2)} > ${face.threshold.toFixed(2)})`
      : `Face ${face.index}: ${face.name} (distance ${face.distance.toFixed(2)}, confidence ${(100 * face.confidence).toFixed(0)}%)`;
    list.append(li);
  }
  $("identify-figure").hidden = false;
}

async function verify(event) {
  event.preventDefault();
  const file = $("verify-photo").files[0];
  const name = $("verify-name").value;
  if (!file || !name) return say("verify-message", "Enrol someone, then choose them and a photo.", "error");
  const form = new FormData();
  form.append("name", name);
  form.append("photo", file);
  say("verify-message", "Comparing…");
  try {
    const r = await apiJSON("/api/faces/verify", { method: "POST", body: form });
    say("verify-message", `${r.same ? "Yes" : "No"}: distance ${r.distance.toFixed(2)} (threshold ${r.threshold.toFixed(2)}), confidence ${(100 * r.confidence).toFixed(0)}% that it is ${r.name}.`, r.same ? "ok" : "warn");
  } catch (error) {
    say("verify-message", error.message, "error");
  }
}

// ---- start ------------------------------------------------------------------------------------------
async function start() {
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showTab(tab.dataset.tab));
  $("content-file").addEventListener("change", (e) => { const f = imagesOf(e.target.files)[0]; if (f) setContent(fileItem(f)); });
  $("style-file").addEventListener("change", (e) => { addStyles(imagesOf(e.target.files).map(fileItem)); e.target.value = ""; });
  wireDrop("content-drop", (files) => files[0] && setContent(fileItem(files[0])));
  wireDrop("style-drop", (files) => addStyles(files.map(fileItem)));
  $("style-form").addEventListener("submit", stylize);
  $("cancel").addEventListener("click", cancelJob);
  $("enroll-form").addEventListener("submit", enroll);
  $("identify-form").addEventListener("submit", identify);
  $("verify-form").addEventListener("submit", verify);
  $("fast-strength").addEventListener("input", (e) => { $("fast-strength-value").textContent = `${Math.round(100 * e.target.value)} %`; });
  $("fast-size").addEventListener("input", (e) => { $("fast-size-value").textContent = `${e.target.value} px`; });
  // Live: every move of a slider updates the preview (at most one request in flight, see fastStylize).
  for (const id of ["fast-strength", "fast-size"]) $(id).addEventListener("input", () => fastStylize());
  $("fast-color").addEventListener("change", () => fastStylize());
  try {
    info = await apiJSON("/api/info");
  } catch (error) {
    return showNotice("Cannot reach the server: " + error.message);
  }
  $("server-info").textContent = `v${info.version} · ${info.device}`;
  buildOptions();
  renderSamples();
  loadGallery();
  await loadModels();
  if (typeof startLive === "function") await startLive(); // live.js: "any painting" and the webcam tab
  if (typeof startClassify === "function") await startClassify(); // classify.js: the classify tab
  if (typeof startVideo === "function") await startVideo(); // video.js: the video tab
  document.body.dataset.ready = "1";
}

start();
