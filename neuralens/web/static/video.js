// The Video tab (loaded after app.js, whose helpers it uses): upload a short clip, choose how to paint it (a
// built-in model, any painting through the arbitrary-style network, or optimisation), follow the job (polling
// GET /api/videos/{id}), show the latest painted frame while it runs, then play and download the result.
// The settings are built from GET /api/videos/info (the options of `neuralens video`, with their defaults).
"use strict";

const vid = { info: null, file: null, painting: null, job: null, frame: 0, previewURL: null, resultURL: null };
const videoControls = new Map(); // option name -> {field, input}
// Shown first; the others go under "More settings". Every one is sent only when it differs from its default.
const VIDEO_MAIN = ["size", "consistency", "strength", "start", "end"];
const VIDEO_LABELS = { size: "Size (long side)", consistency: "Consistency", strength: "Strength", start: "Start (s)",
                       end: "End (s)", fps: "Frame rate", temporal_weight: "Temporal weight", long_term: "Long-term",
                       frame_iterations: "Frame iterations", flow_preset: "Flow preset", audio: "Keep the audio",
                       preserve_color: "Photo's colours" };
const VIDEO_POLL_MS = 500;

async function startVideo() {
  try { vid.info = await apiJSON("/api/videos/info"); } catch (error) { return say("video-message", error.message, "error"); }
  const limits = vid.info.limits;
  $("video-limits").textContent = `At most ${Math.round(limits.max_upload_bytes / 1e6)} MB, ${limits.max_seconds} s and ` +
    `${limits.max_frames} frames (${limits.max_optimisation_frames} with optimisation); frames up to ${limits.max_size} px.`;
  renderVideoEngines();
  buildVideoOptions();
  renderVideoPaintings();
  const takeVideo = (file) => {
    if (!file) return;
    vid.file = file;
    $("video-file-name").textContent = `${file.name} (${(file.size / 1e6).toFixed(1)} MB)`;
    $("video-drop").classList.add("filled");
  };
  $("video-file").addEventListener("change", (e) => takeVideo(e.target.files[0]));
  const zone = $("video-drop");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); takeVideo(e.dataTransfer.files[0]); });
  $("video-painting-file").addEventListener("change", (e) => { const f = imagesOf(e.target.files)[0]; if (f) setVideoPainting(fileItem(f)); });
  wireDrop("video-painting-drop", (files) => files[0] && setVideoPainting(fileItem(files[0])));
  $("video-engine").addEventListener("change", showVideoEngine);
  $("video-form").addEventListener("submit", submitVideo);
  $("video-cancel").addEventListener("click", cancelVideo);
  showVideoEngine();
  // After a reload, follow a video job of this server that is still running or waiting.
  try {
    const jobs = (await apiJSON("/api/videos")).jobs;
    const unfinished = jobs.find((j) => j.status === "running" || j.status === "queued");
    if (unfinished) followVideo(unfinished);
  } catch (error) { say("video-message", error.message, "error"); }
}

function renderVideoEngines() {
  const select = $("video-engine");
  select.replaceChildren();
  const group = (label) => { const g = document.createElement("optgroup"); g.label = label; select.append(g); return g; };
  const add = (parent, value, text) => { const o = document.createElement("option"); o.value = value; o.textContent = text; parent.append(o); };
  const engines = Object.fromEntries(vid.info.engines.map((e) => [e.name, e]));
  const models = group("Built-in models (fastest)");
  for (const name of vid.info.models) add(models, "model:" + name, name);
  const paintings = group("Any painting");
  if (engines.fast && engines.fast.available) add(paintings, "fast", "one pass a frame (arbitrary style)");
  add(paintings, "optimisation", "optimised frame by frame (slow: about a minute a frame)");
}

// Paintings for the fast and optimisation engines: an upload or a bundled one.
function renderVideoPaintings() {
  const box = $("video-painting-samples");
  box.replaceChildren();
  for (const sample of info.samples.filter((s) => !s.kind || s.kind === "style")) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sample";
    button.dataset.sample = sample.name;
    button.title = sample.title || sample.name;
    const img = document.createElement("img");
    img.src = sample.url;
    img.alt = sample.name;
    button.append(img);
    button.addEventListener("click", () => setVideoPainting({ sample: sample.name, url: sample.url }));
    box.append(button);
  }
}

function setVideoPainting(item) {
  vid.painting = item;
  const thumb = $("video-painting-thumb");
  thumb.src = item.url;
  thumb.hidden = false;
  for (const el of document.querySelectorAll("#video-painting-samples .sample")) el.classList.toggle("picked", item.sample === el.dataset.sample);
}

function showVideoEngine() {
  const value = $("video-engine").value;
  $("video-painting").hidden = value.startsWith("model:");
  const strength = videoControls.get("strength");
  if (strength) strength.row.hidden = value === "optimisation"; // optimisation has no strength: it paints
}

function buildVideoOptions() {
  const main = $("video-options-main");
  const more = $("video-options-more");
  main.replaceChildren();
  more.replaceChildren();
  videoControls.clear();
  const fields = [...VIDEO_MAIN.map((n) => vid.info.options.find((f) => f.name === n)).filter(Boolean),
                  ...vid.info.options.filter((f) => !VIDEO_MAIN.includes(f.name))];
  for (const field of fields) {
    const input = genericInput(field);
    input.id = "video-opt-" + field.name.replace(/_/g, "-");
    input.name = field.name;
    input.title = field.help;
    if (field.name === "size") input.max = String(vid.info.limits.max_size);
    const emptyIsNone = field.nullable && field.default === null; // else an empty box means the default
    if (!emptyIsNone) input.placeholder = "";
    const row = document.createElement("div");
    row.className = "control wide";
    const label = document.createElement("label");
    label.htmlFor = input.id;
    label.textContent = VIDEO_LABELS[field.name] || labelOf(field);
    label.title = field.help;
    row.append(label, input);
    const help = document.createElement("p");
    help.className = "help muted small";
    help.textContent = field.help + (emptyIsNone && field.none_help ? ` (empty: ${field.none_help})` : "");
    row.append(help);
    (VIDEO_MAIN.includes(field.name) ? main : more).append(row);
    videoControls.set(field.name, { field, input, row });
  }
  // The container of the result (not an option of the run itself).
  const row = document.createElement("div");
  row.className = "control wide";
  const label = document.createElement("label");
  label.htmlFor = "video-format";
  label.textContent = "Format";
  const select = document.createElement("select");
  select.id = "video-format";
  for (const name of vid.info.formats) { const o = document.createElement("option"); o.value = name; o.textContent = name; select.append(o); }
  row.append(label, select);
  main.append(row);
}

function appendVideoOptions(form) {
  for (const [name, { field, input, row }] of videoControls) {
    if (row.hidden) continue;
    const value = input.type === "checkbox" ? String(input.checked) : input.value.trim();
    const fallback = field.kind === "bool" ? String(Boolean(field.default)) : asText(field.default);
    if (value === "" || value === fallback) continue;
    form.append(name, value);
  }
  form.append("format", $("video-format").value);
}

async function submitVideo(event) {
  event.preventDefault();
  if (!vid.file) return say("video-message", "Choose a video first.", "error");
  const engine = $("video-engine").value;
  const form = new FormData();
  form.append("video", vid.file);
  if (engine.startsWith("model:")) {
    form.append("engine", "model");
    form.append("model", engine.slice(6));
  } else {
    if (!vid.painting) return say("video-message", "Choose a painting (an upload or one of the samples).", "error");
    form.append("engine", engine);
    if (vid.painting.file) form.append("style", vid.painting.file);
    else form.append("style_sample", vid.painting.sample);
  }
  appendVideoOptions(form);
  $("video-start").disabled = true;
  say("video-message", "Uploading…");
  try {
    const job = await apiJSON("/api/videos", { method: "POST", body: form });
    say("video-message", job.queue_position > 1 ? `Queued (position ${job.queue_position}).` : "Started.");
    followVideo(job);
  } catch (error) {
    say("video-message", error.message, "error");
    $("video-start").disabled = false;
  }
}

async function followVideo(job) {
  vid.job = job;
  vid.frame = 0;
  $("video-start").disabled = true;
  $("video-cancel").disabled = false;
  $("video-download").hidden = true;
  $("video-result").hidden = true;
  $("video-result-gif").hidden = true;
  const id = job.id;
  while (vid.job && vid.job.id === id) {
    await showVideoJob(job);
    if (["done", "failed", "cancelled"].includes(job.status)) return;
    await new Promise((r) => setTimeout(r, VIDEO_POLL_MS));
    try { job = await apiJSON(`/api/videos/${id}`); } catch (error) { return say("video-message", error.message, "error"); }
  }
}

async function showVideoJob(job) {
  const p = job.progress || {};
  const total = p.total_frames || (job.video || {}).frames;
  $("video-status").textContent = job.status + (job.status === "queued" && job.queue_position ? ` (#${job.queue_position})` : "");
  const painting = p.evaluations && job.status === "running" ? ` (evaluation ${p.evaluation} / ${p.evaluations})` : "";
  $("video-frames").textContent = (p.frame ? `${p.frame} / ${total}` : total ? `0 / ${total}` : "—") + painting;
  $("video-fps").textContent = p.frames_per_second ? p.frames_per_second.toFixed(1) : "—";
  $("video-elapsed").textContent = secs(p.elapsed);
  $("video-eta").textContent = job.status !== "running" ? "—" : p.eta === null || p.eta === undefined ? "estimating…" : "about " + secs(p.eta);
  $("video-audio").textContent = (job.video.input || {}).audio ? (job.options.audio ? "kept" : "dropped") : "none";
  $("video-progress-bar").style.width = total && p.frame ? `${(100 * p.frame) / total}%` : "0%";
  if (job.urls.preview && job.preview_frame !== vid.frame) {
    vid.frame = job.preview_frame;
    const url = await apiBlobURL(job.urls.preview);
    const img = $("video-preview");
    img.src = url;
    img.dataset.frame = String(job.preview_frame);
    img.hidden = false;
    $("video-empty").hidden = true;
    if (vid.previewURL) URL.revokeObjectURL(vid.previewURL);
    vid.previewURL = url;
  }
  if (!["done", "failed", "cancelled"].includes(job.status)) return;
  $("video-start").disabled = false;
  $("video-cancel").disabled = true;
  if (job.status === "failed") say("video-message", "Failed: " + job.error, "error");
  else if (job.status === "cancelled") say("video-message", job.urls.result ? `Cancelled; the ${job.result.frames} frames painted are kept.` : "Cancelled.");
  else say("video-message", `Done: ${job.result.frames} frames in ${secs(job.result.seconds)} (${job.result.frames_per_second.toFixed(1)} frames/s).`, "ok");
  if (job.urls.result) await showVideoResult(job);
}

async function showVideoResult(job) {
  const url = await apiBlobURL(job.urls.result);
  if (vid.resultURL) URL.revokeObjectURL(vid.resultURL);
  vid.resultURL = url;
  const gif = job.format === "gif";
  const player = gif ? $("video-result-gif") : $("video-result");
  player.src = url;
  player.hidden = false;
  player.dataset.job = job.id;
  $("video-preview").hidden = true;
  const link = $("video-download");
  link.href = url;
  link.download = `neuralens-${job.id.slice(0, 8)}.${job.format}`;
  link.textContent = `Download ${job.format === "gif" ? "GIF" : job.format.toUpperCase()}`;
  link.hidden = false;
}

async function cancelVideo() {
  if (!vid.job) return;
  $("video-cancel").disabled = true;
  try { await api(`/api/videos/${vid.job.id}/cancel`, { method: "POST" }); say("video-message", "Cancelling after this frame…"); }
  catch (error) { say("video-message", error.message, "error"); }
}
