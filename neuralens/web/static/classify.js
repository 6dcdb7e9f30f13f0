// The Classify tab (loaded after app.js, whose helpers it uses: $, api, apiJSON, apiBlobURL, say, imagesOf,
// wireDrop, genericInput, labelOf, asText, secs). Classes of photos live on the server (GET /api/classify);
// training is a job the page polls (its epochs draw the curve); "Try a photo" and "Try the webcam" post to
// POST /api/classify/predict. Every name here starts with cls so that it cannot clash with the other scripts.
"use strict";

const CLS_MAIN = ["backbone", "head", "augment", "epochs"]; // shown first; the rest under "More settings"
const CLS_THUMBS_SHOWN = 12; // per class, the latest ones (the count says how many there are)
const CLS_POLL_MS = 400;
const CLS_WEBCAM_MS = 250; // a frame at most every 250 ms, and only when the previous answer is in
const CLS_FPS_ANSWERS = 10;
const clsState = { project: null, controls: new Map(), job: null, thumbs: new Map(), polling: false };
const clsCam = { stream: null, timer: null, busy: false, sent: 0, dropped: 0, times: [], canvas: null, session: 0 };

async function startClassify() {
  $("cls-add-form").addEventListener("submit", clsAddClass);
  $("cls-train").addEventListener("click", clsTrain);
  $("cls-cancel").addEventListener("click", clsCancel);
  $("cls-try-file").addEventListener("change", (e) => { const f = imagesOf(e.target.files)[0]; if (f) clsTryPhoto(f); e.target.value = ""; });
  wireDrop("cls-try-drop", (files) => files[0] && clsTryPhoto(files[0]));
  $("cls-cam-start").addEventListener("click", clsCamStart);
  $("cls-cam-stop").addEventListener("click", () => clsCamStop("Stopped."));
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => { if (tab.dataset.tab === "classify") clsLoad(); else clsCamStop(); });
  }
  await clsLoad(true);
}

// ---- the classes --------------------------------------------------------------------------------------
async function clsLoad(first = false) {
  let project;
  try { project = await apiJSON("/api/classify"); } catch (error) { return say("cls-message", error.message, "error"); }
  clsState.project = project;
  if (first) clsBuildOptions(project.options);
  clsRenderClasses(project.classes);
  clsRenderModel(project.model);
  if (project.training && (!clsState.job || clsState.job.id !== project.training.id || first)) {
    clsShowJob(project.training);
    if (!["done", "failed", "cancelled"].includes(project.training.status)) clsFollow(project.training.id);
  }
}

async function clsAddClass(event) {
  event.preventDefault();
  const input = $("cls-new-name");
  const form = new FormData();
  form.append("name", input.value);
  try {
    await apiJSON("/api/classify/classes", { method: "POST", body: form });
    input.value = "";
    say("cls-message", "");
  } catch (error) { return say("cls-message", error.message, "error"); }
  clsLoad();
}

function clsRenderClasses(classes) {
  const list = $("cls-classes");
  list.replaceChildren();
  $("cls-empty").hidden = classes.length > 0;
  for (const entry of classes) {
    const li = document.createElement("li");
    li.className = "cls-class";
    li.dataset.classId = entry.id;
    li.dataset.count = String(entry.count);
    const head = document.createElement("div");
    head.className = "cls-class-head";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = entry.name;
    const count = document.createElement("span");
    count.className = "muted small cls-count";
    count.textContent = `${entry.count} photo${entry.count === 1 ? "" : "s"}`;
    const rename = clsSmallButton("Rename", async () => {
      const value = prompt("New name for this class", entry.name);
      if (value === null || value.trim() === entry.name) return;
      const form = new FormData();
      form.append("name", value);
      try { await apiJSON(`/api/classify/classes/${entry.id}`, { method: "PATCH", body: form }); } catch (error) { say("cls-message", error.message, "error"); }
      clsLoad();
    });
    // Two clicks (no confirm() dialog), as for removing a person.
    const remove = clsSmallButton("Delete", async () => {
      if (!remove.classList.contains("armed")) { remove.classList.add("armed"); remove.textContent = "Really delete?"; return; }
      try { await api(`/api/classify/classes/${entry.id}`, { method: "DELETE" }); } catch (error) { say("cls-message", error.message, "error"); }
      clsLoad();
    });
    head.append(name, count, rename, remove);
    const drop = document.createElement("label");
    drop.className = "drop cls-drop";
    drop.id = `cls-drop-${entry.id}`;
    drop.tabIndex = 0;
    const input = document.createElement("input");
    input.type = "file";
    input.accept = "image/*";
    input.multiple = true;
    input.addEventListener("change", (e) => { clsUpload(entry, imagesOf(e.target.files)); e.target.value = ""; });
    const text = document.createElement("span");
    text.className = "drop-text";
    text.innerHTML = "Drop photos of this class here or <u>choose files</u>";
    drop.append(input, text);
    const thumbs = document.createElement("div");
    thumbs.className = "cls-thumbs";
    const shown = entry.photos.slice(-CLS_THUMBS_SHOWN);
    for (const photo of shown) thumbs.append(clsThumb(photo));
    if (entry.count > shown.length) {
      const more = document.createElement("span");
      more.className = "muted small";
      more.textContent = `+${entry.count - shown.length} more`;
      thumbs.append(more);
    }
    li.append(head, drop, thumbs);
    list.append(li);
    wireDrop(drop.id, (files) => clsUpload(entry, files));
  }
  const ready = classes.filter((c) => c.count > 0).length;
  $("cls-train").disabled = Boolean(clsState.job && ["queued", "running"].includes(clsState.job.status));
  $("cls-train").title = ready < 2 ? "add at least two classes with photos" : "";
}

function clsSmallButton(text, onClick) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "small";
  button.textContent = text;
  button.addEventListener("click", onClick);
  return button;
}

// Thumbnails come through the API (an <img src> cannot carry the token), fetched once per photo.
function clsThumb(photo) {
  const img = document.createElement("img");
  img.alt = "";
  img.dataset.photo = photo.id;
  const known = clsState.thumbs.get(photo.id);
  if (known) img.src = known;
  else apiBlobURL(photo.thumbnail).then((url) => { clsState.thumbs.set(photo.id, url); img.src = url; }).catch(() => {});
  return img;
}

// Photos go up in batches of the server's max_files per request; a bad file stops its batch with the
// server's message (nothing of that batch is stored).
async function clsUpload(entry, files) {
  if (!files.length) return;
  const batch = (clsState.project && clsState.project.limits.max_files) || 8;
  let added = 0, duplicates = 0;
  try {
    for (let start = 0; start < files.length; start += batch) {
      say("cls-message", `Uploading to ${entry.name}: ${Math.min(start + batch, files.length)} of ${files.length}…`);
      const form = new FormData();
      for (const file of files.slice(start, start + batch)) form.append("photo", file);
      const answer = await apiJSON(`/api/classify/classes/${entry.id}/photos`, { method: "POST", body: form });
      added += answer.added;
      duplicates += answer.duplicates;
    }
    say("cls-message", `Added ${added} photo${added === 1 ? "" : "s"} to ${entry.name}` + (duplicates ? ` (${duplicates} already there).` : "."), "ok");
  } catch (error) {
    say("cls-message", error.message, "error");
  }
  clsLoad();
}

// ---- training options: built from GET /api/classify's options (those of `neuralens classify train`) ------
function clsBuildOptions(fields) {
  const main = $("cls-options-main");
  const more = $("cls-options-more");
  main.replaceChildren();
  more.replaceChildren();
  clsState.controls.clear();
  const ordered = [...CLS_MAIN.map((n) => fields.find((f) => f.name === n)).filter(Boolean), ...fields.filter((f) => !CLS_MAIN.includes(f.name))];
  for (const field of ordered) {
    const input = genericInput(field);
    input.id = "cls-opt-" + field.name.replace(/_/g, "-");
    input.name = field.name;
    input.title = field.help;
    const row = document.createElement("div");
    row.className = "control wide";
    const label = document.createElement("label");
    label.htmlFor = input.id;
    label.textContent = labelOf(field);
    label.title = field.help;
    const help = document.createElement("p");
    help.className = "help muted small";
    help.textContent = field.help + (field.nullable && field.none_help ? ` (empty: ${field.none_help})` : "");
    row.append(label, input, help);
    (CLS_MAIN.includes(field.name) ? main : more).append(row);
    clsState.controls.set(field.name, { field, input });
  }
}

// Only the options that differ from their defaults are sent (the server has the same defaults).
function clsOptionsForm() {
  const form = new FormData();
  for (const [name, { field, input }] of clsState.controls) {
    const value = input.type === "checkbox" ? String(input.checked) : input.value.trim();
    const unchanged = input.type === "checkbox" ? input.checked === Boolean(field.default) : value === asText(field.default) || (value === "none" && field.default === null);
    if (!unchanged && value !== "") form.append(name, value);
  }
  return form;
}

// ---- a training: start, follow, show --------------------------------------------------------------------
async function clsTrain() {
  $("cls-train").disabled = true;
  say("cls-train-message", "Starting…");
  try {
    const job = await apiJSON("/api/classify/train", { method: "POST", body: clsOptionsForm() });
    clsState.job = null;
    clsShowJob(job);
    clsFollow(job.id);
  } catch (error) {
    $("cls-train").disabled = false;
    say("cls-train-message", error.message, "error");
  }
}

async function clsCancel() {
  if (!clsState.job) return;
  $("cls-cancel").disabled = true;
  try { clsShowJob(await apiJSON(`/api/classify/jobs/${clsState.job.id}/cancel`, { method: "POST" })); }
  catch (error) { say("cls-train-message", error.message, "error"); }
}

async function clsFollow(id) {
  if (clsState.polling === id) return;
  clsState.polling = id;
  try {
    while (clsState.polling === id) {
      const job = await apiJSON(`/api/classify/jobs/${id}`);
      clsShowJob(job);
      if (["done", "failed", "cancelled"].includes(job.status)) break;
      await new Promise((r) => setTimeout(r, CLS_POLL_MS));
    }
  } catch (error) {
    say("cls-train-message", error.message, "error");
  } finally {
    if (clsState.polling === id) clsState.polling = false;
  }
}

function clsShowJob(job) {
  const old = clsState.job;
  clsState.job = job;
  const running = ["queued", "running"].includes(job.status);
  $("cls-train").disabled = running;
  $("cls-cancel").disabled = !running;
  const f = job.features || {};
  const last = job.epochs.length ? job.epochs[job.epochs.length - 1] : null;
  const pct = (x) => (x === null || x === undefined ? "—" : `${(100 * x).toFixed(0)} %`);
  $("cls-stat-status").textContent = job.status + (job.stage && running ? ` (${job.stage})` : "");
  $("cls-stat-features").textContent = f.total ? `${f.done} / ${f.total}` : "—";
  $("cls-stat-epoch").textContent = last ? `${last.epoch}` + (last.stage === "fine-tune" ? " (fine-tune)" : "") : "—";
  $("cls-stat-train").textContent = last ? pct(last.train_accuracy) : "—";
  $("cls-stat-val").textContent = last ? pct(last.val_accuracy) : "—";
  $("cls-stat-elapsed").textContent = secs(job.elapsed);
  $("cls-progress-bar").style.width = f.total ? `${(100 * f.done) / f.total}%` : "0%";
  clsDrawCurve(job.epochs);
  $("cls-log").textContent = job.log.filter((line) => line.startsWith("warning") || line.startsWith("note")).join("\n");
  if (job.status === "failed") say("cls-train-message", "Failed: " + job.error, "error");
  else if (job.status === "cancelled") say("cls-train-message", "Cancelled: no model from this training.");
  else if (job.status === "done") say("cls-train-message", `Trained in ${secs(job.elapsed)}.`, "ok");
  else say("cls-train-message", job.status === "queued" ? "Waiting for the worker…" : job.stage === "features" ? "Reading the photos…" : "Training…");
  clsRenderResult(job.status === "done" ? job.result : null);
  if (job.status === "done" && (!old || old.id !== job.id || old.status !== "done")) clsLoad();
}

// The live curve: accuracy (train, validation) and loss / first loss per epoch, on a plain <canvas>.
function clsDrawCurve(rows) {
  const canvas = $("cls-curve");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, left = 36, right = 10, top = 10, bottom = 24;
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  ctx.strokeStyle = "#e2ded6";
  ctx.fillStyle = "#6b6f78";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = top + ((h - top - bottom) * i) / 4;
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(w - right, y); ctx.stroke();
    ctx.fillText(`${100 - 25 * i}%`, 2, y + 4);
  }
  const epochs = rows.length;
  canvas.dataset.points = String(epochs);
  if (!epochs) return;
  ctx.fillText("epoch " + rows[rows.length - 1].epoch, w - right - 60, h - 6);
  const x = (i) => left + ((w - left - right) * (epochs === 1 ? 0.5 : i / (epochs - 1)));
  const y = (v) => top + (h - top - bottom) * (1 - Math.max(0, Math.min(1, v)));
  const first = (rows.find((r) => r.train_loss) || {}).train_loss;
  const series = [
    ["train_accuracy", "#1f77b4", 2, (v) => v],
    ["val_accuracy", "#d62728", 2, (v) => v],
    ["train_loss", "#8cb4dc", 1, (v) => v / first],
    ["val_loss", "#f09696", 1, (v) => v / first],
  ];
  for (const [key, colour, width, scale] of series) {
    if (key.endsWith("loss") && !first) continue;
    ctx.strokeStyle = colour;
    ctx.lineWidth = width;
    ctx.beginPath();
    let drawing = false;
    rows.forEach((row, i) => {
      const v = row[key];
      if (v === null || v === undefined) { drawing = false; return; }
      if (drawing) ctx.lineTo(x(i), y(scale(v))); else ctx.moveTo(x(i), y(scale(v)));
      drawing = true;
    });
    ctx.stroke();
  }
}

function clsRenderResult(result) {
  const box = $("cls-result");
  box.replaceChildren();
  box.hidden = !result;
  if (!result) return;
  const v = result.validation;
  const summary = document.createElement("p");
  summary.id = "cls-accuracy";
  summary.textContent = v
    ? `Validation accuracy ${(100 * result.accuracy).toFixed(0)} % on ${result.val_images} held-out photo${result.val_images === 1 ? "" : "s"} (training ${(100 * result.train_accuracy).toFixed(0)} %).`
    : `Training accuracy ${(100 * result.train_accuracy).toFixed(0)} %; no photo was held out (each class needs two or more).`;
  box.append(summary);
  if (!v) return;
  const cell = (tag, text, cls) => { const el = document.createElement(tag); el.textContent = text; if (cls) el.className = cls; return el; };
  const pct = (x) => (x === null || x === undefined ? "—" : `${(100 * x).toFixed(0)} %`);
  const perClass = document.createElement("table");
  perClass.className = "cls-table";
  perClass.id = "cls-per-class";
  perClass.append(clsRow([cell("th", "class"), cell("th", "precision"), cell("th", "recall"), cell("th", "photos")]));
  for (const row of v.per_class) perClass.append(clsRow([cell("td", row.class), cell("td", pct(row.precision)), cell("td", pct(row.recall)), cell("td", String(row.support))]));
  const confusion = document.createElement("table");
  confusion.className = "cls-table cls-confusion";
  confusion.id = "cls-confusion";
  confusion.append(clsRow([cell("th", "true ↓ / predicted →"), ...v.classes.map((c) => cell("th", c))]));
  v.confusion.forEach((counts, i) => {
    confusion.append(clsRow([cell("th", v.classes[i]), ...counts.map((n, j) => cell("td", String(n), n && i === j ? "hit" : n ? "miss" : ""))]));
  });
  box.append(perClass, cell("p", "Confusion matrix (held-out photos):", "muted small"), confusion);
}

function clsRow(cells) {
  const tr = document.createElement("tr");
  tr.append(...cells);
  return tr;
}

function clsRenderModel(model) {
  const link = $("cls-download");
  $("cls-try").hidden = !model;
  $("cls-try-none").hidden = Boolean(model);
  if (!model) { link.hidden = true; return; }
  $("cls-model-about").textContent = `Classes: ${model.classes.join(", ")} · ${model.backbone}` + (model.accuracy !== null ? ` · validation ${(100 * model.accuracy).toFixed(0)} %` : "");
  link.hidden = false;
  link.onclick = async (event) => {
    event.preventDefault();
    try {
      const url = await apiBlobURL(model.url);
      const a = Object.assign(document.createElement("a"), { href: url, download: `classifier-${model.job.slice(0, 8)}.pt` });
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (error) { say("cls-try-message", error.message, "error"); }
  };
}

// ---- trying the model: a photo, or the webcam -------------------------------------------------------------
async function clsPredict(blob) {
  const form = new FormData();
  form.append("photo", blob, "photo.jpg");
  return apiJSON("/api/classify/predict", { method: "POST", body: form });
}

function clsShowPrediction(prediction) {
  $("cls-label").textContent = `${prediction.label} (${(100 * prediction.probability).toFixed(0)} %)`;
  $("cls-label").dataset.label = prediction.label;
  const bars = $("cls-bars");
  bars.replaceChildren();
  for (const { label, probability } of prediction.top) {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = label;
    const bar = document.createElement("span");
    bar.className = "cls-bar";
    const fill = document.createElement("span");
    fill.style.width = `${(100 * probability).toFixed(1)}%`;
    bar.append(fill);
    const value = document.createElement("span");
    value.className = "muted small";
    value.textContent = `${(100 * probability).toFixed(1)} %`;
    li.append(name, bar, value);
    bars.append(li);
  }
}

async function clsTryPhoto(file) {
  const img = $("cls-try-image");
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(file);
  img.hidden = false;
  say("cls-try-message", "Looking…");
  try {
    const prediction = await clsPredict(file);
    clsShowPrediction(prediction);
    say("cls-try-message", `${Math.round(1000 * prediction.seconds)} ms on the server.`, "ok");
  } catch (error) { say("cls-try-message", error.message, "error"); }
}

// getUserMedia -> a 320x240 canvas -> JPEG -> POST /api/classify/predict, at most every CLS_WEBCAM_MS and
// one request at a time: a frame due while an answer is awaited is skipped (and counted), never queued.
async function clsCamStart() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return say("cls-try-message", "This browser offers no camera to this page: it needs https, or the server opened as http://127.0.0.1 or http://localhost.", "error");
  }
  const session = ++clsCam.session;
  $("cls-cam-start").disabled = true;
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 320 }, height: { ideal: 240 } }, audio: false });
  } catch (error) {
    $("cls-cam-start").disabled = false;
    return say("cls-try-message", `No camera: ${error.message || error.name}`, "error");
  }
  if (session !== clsCam.session) { for (const track of stream.getTracks()) track.stop(); return; }
  clsCam.stream = stream;
  const video = $("cls-cam-video");
  video.srcObject = stream;
  video.hidden = false;
  await video.play();
  if (session !== clsCam.session) return;
  Object.assign(clsCam, { busy: false, sent: 0, dropped: 0, times: [] });
  clsCam.canvas = Object.assign(document.createElement("canvas"), { width: 320, height: 240 });
  $("cls-cam-stop").disabled = false;
  say("cls-try-message", "Live.", "ok");
  clsCam.timer = setInterval(clsCamFrame, CLS_WEBCAM_MS);
}

function clsCamFrame() {
  if (!clsCam.stream) return;
  if (clsCam.busy) { clsCam.dropped += 1; return; }
  const video = $("cls-cam-video");
  const { width, height } = clsCam.canvas;
  clsCam.canvas.getContext("2d").drawImage(video, 0, 0, width, height);
  clsCam.busy = true;
  const session = clsCam.session;
  clsCam.canvas.toBlob(async (blob) => {
    try {
      if (!blob || session !== clsCam.session) return;
      clsCam.sent += 1;
      const prediction = await clsPredict(blob);
      if (session !== clsCam.session) return;
      clsShowPrediction(prediction);
      const now = performance.now();
      clsCam.times.push(now);
      if (clsCam.times.length > CLS_FPS_ANSWERS) clsCam.times.shift();
      const span = clsCam.times.length > 1 ? (now - clsCam.times[0]) / 1000 : 0;
      $("cls-cam-fps").textContent = span > 0 ? ((clsCam.times.length - 1) / span).toFixed(1) : "…";
      $("cls-cam-frames").textContent = String(clsCam.sent);
      $("cls-cam-dropped").textContent = String(clsCam.dropped);
      $("cls-label").dataset.frames = String(clsCam.sent);
    } catch (error) {
      say("cls-try-message", error.message, "error");
    } finally {
      clsCam.busy = false;
    }
  }, "image/jpeg", 0.8);
}

function clsCamStop(message) {
  clsCam.session += 1;
  const wasOn = Boolean(clsCam.stream);
  if (clsCam.timer) clearInterval(clsCam.timer);
  clsCam.timer = null;
  if (clsCam.stream) for (const track of clsCam.stream.getTracks()) track.stop();
  clsCam.stream = null;
  $("cls-cam-video").hidden = true;
  $("cls-cam-start").disabled = false;
  $("cls-cam-stop").disabled = true;
  if (message && wasOn) say("cls-try-message", message);
}
