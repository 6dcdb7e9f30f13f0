// Live parts of the page (loaded after app.js, whose helpers it uses): "any painting" in the real-time card
// (POST /api/paintings once per painting, then POST /api/fast) and the webcam tab (/ws/webcam).
"use strict";

let live = { arbitrary: false, models: [], webcam: { url: "/ws/webcam", width: 320, height: 240 } };

// Called by app.js's start() once the models are listed.
async function startLive() {
  try { live = await apiJSON("/api/live"); } catch (error) { return say("webcam-message", error.message, "error"); }
  const button = $("fast-painting");
  button.hidden = !live.arbitrary;
  button.addEventListener("click", () => { fast.painting = true; fastStylize(true); });
  renderWebcamStyles();
  $("webcam-style").addEventListener("change", () => cam.ws && sendSettings());
  $("webcam-strength").addEventListener("input", (e) => {
    $("webcam-strength-value").textContent = `${Math.round(100 * e.target.value)} %`;
    if (cam.ws) sendSettings();
  });
  $("webcam-start").addEventListener("click", webcamStart);
  $("webcam-stop").addEventListener("click", () => webcamStop("Stopped."));
  // The camera is on only while its tab is shown.
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => { if (tab.dataset.tab !== "webcam") webcamStop(); });
}

// ---- any painting: the arbitrary-style engine ---------------------------------------------------------
// A painting is uploaded once (its id is kept on the chosen item); a bundled one is named. Returns the id
// or null for a sample.
async function paintingId(item, signal) {
  if (item.sample) return null;
  if (!item.paintingId) {
    const form = new FormData();
    form.append("painting", item.file);
    item.paintingId = (await apiJSON("/api/paintings", { method: "POST", body: form, signal })).id;
  }
  return item.paintingId;
}

// POST /api/fast with the photo of ``form`` and painting ``item``; uploads the painting again once when the
// server has forgotten it (it keeps the most recently used few).
async function paintingPreview(form, item, signal, retried = false) {
  const body = new FormData();
  for (const [key, value] of form.entries()) body.append(key, value);
  const id = await paintingId(item, signal);
  if (id) body.append("painting_id", id);
  else body.append("painting_sample", item.sample);
  try {
    return await api("/api/fast", { method: "POST", body, signal });
  } catch (error) {
    if (error.status !== 404 || !id || retried) throw error;
    item.paintingId = null;
    return paintingPreview(form, item, signal, true);
  }
}

// ---- webcam -------------------------------------------------------------------------------------------
// getUserMedia -> a 320x240 canvas -> JPEG -> WebSocket; the server answers each frame with the stylized
// JPEG. At most MAX_IN_FLIGHT frames are on their way: two, so the server has the next frame as soon as it
// finishes one (one would leave it idle for a network round trip and the browser's JPEG encoding).
const MAX_IN_FLIGHT = 2;
const FPS_ANSWERS = 10; // frames/s over the last ten answers
// ``session`` counts starts and stops: a start still waiting for the camera gives up when it has changed.
const cam = { ws: null, stream: null, ready: false, inFlight: 0, sent: [], times: [], meta: null, url: null, answered: 0, canvas: null, session: 0 };

function renderWebcamStyles() {
  const select = $("webcam-style");
  select.replaceChildren();
  const group = (label) => { const g = document.createElement("optgroup"); g.label = label; select.append(g); return g; };
  const add = (parent, value, text) => { const o = document.createElement("option"); o.value = value; o.textContent = text; parent.append(o); };
  const models = group("Built-in models (fastest)");
  for (const name of live.models) add(models, "model:" + name, name);
  if (live.arbitrary) {
    const paintings = group("Any painting (arbitrary style)");
    add(paintings, "chosen", "the first painting chosen under Style transfer");
    for (const sample of info.samples.filter((s) => s.kind === "style")) add(paintings, "sample:" + sample.name, sample.title);
  }
  $("webcam-start").disabled = select.options.length === 0;
  if (!select.options.length) say("webcam-message", "This server has no built-in models and no arbitrary-style engine.", "error");
}

// The settings message for the chosen style and strength (a chosen upload is sent to /api/paintings first).
async function webcamSettings() {
  const settings = { strength: Number($("webcam-strength").value) };
  const value = $("webcam-style").value;
  if (value.startsWith("model:")) settings.model = value.slice(6);
  else if (value.startsWith("sample:")) settings.painting_sample = value.slice(7);
  else if (value === "chosen") {
    const item = chosen.styles[0];
    if (!item) throw new Error("Choose a painting under Style transfer (2 · Style) first, or pick another style.");
    const id = await paintingId(item);
    if (id) settings.painting = id;
    else settings.painting_sample = item.sample;
  }
  return settings;
}

async function sendSettings() {
  try {
    const settings = await webcamSettings();
    if (cam.ws && cam.ws.readyState === WebSocket.OPEN) cam.ws.send(JSON.stringify(settings));
  } catch (error) { say("webcam-message", error.message, "error"); }
}

async function webcamStart() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return say("webcam-message", "This browser offers no camera to this page: it needs https, or the server opened as http://127.0.0.1 or http://localhost.", "error");
  }
  const session = ++cam.session;
  $("webcam-start").disabled = true;
  let settings, stream;
  try { settings = await webcamSettings(); } catch (error) { $("webcam-start").disabled = false; return say("webcam-message", error.message, "error"); }
  say("webcam-message", "Asking for the camera…");
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: live.webcam.width }, height: { ideal: live.webcam.height } }, audio: false });
  } catch (error) {
    $("webcam-start").disabled = false;
    return say("webcam-message", `No camera: ${error.message || error.name}`, "error");
  }
  if (session !== cam.session) { for (const track of stream.getTracks()) track.stop(); return; } // stopped meanwhile
  cam.stream = stream;
  const video = $("webcam-video");
  video.srcObject = stream;
  video.hidden = false;
  await video.play();
  if (session !== cam.session) return;
  $("webcam-stop").disabled = false;
  $("webcam-result").dataset.frames = "0";
  cam.canvas = Object.assign(document.createElement("canvas"), { width: live.webcam.width, height: live.webcam.height });
  Object.assign(cam, { ready: false, inFlight: 0, sent: [], times: [], meta: null, answered: 0 });
  connect(settings);
}

function connect(settings) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}${live.webcam.url}`);
  ws.binaryType = "blob";
  cam.ws = ws;
  // The token (when the server has one) goes in the first message, not the URL: URLs end up in logs.
  ws.onopen = () => {
    const token = localStorage.getItem(TOKEN_KEY);
    ws.send(JSON.stringify(token ? { token, ...settings } : settings));
    say("webcam-message", "Connected; waiting for the server…");
  };
  ws.onmessage = (event) => (typeof event.data === "string" ? onText(JSON.parse(event.data)) : onFrame(event.data));
  ws.onclose = async (event) => {
    if (cam.ws !== ws) return; // stopped, or replaced by a newer connection
    cam.ws = null;
    if (event.code === 4401 && cam.stream) {
      await askToken(event.reason);
      return connect(await webcamSettings());
    }
    webcamStop(event.code === 1000 || event.code === 1005 ? "Disconnected." : `Disconnected: ${event.reason || "code " + event.code}.`, event.code !== 1000);
  };
}

function onText(message) {
  if (message.type === "ready") {
    cam.ready = true;
    say("webcam-message", "Live.", "ok");
    pump();
  } else if (message.type === "frame") {
    cam.meta = message; // its image is the next binary message
  } else if (message.type === "error") {
    say("webcam-message", message.error, "error");
    if (message.frame !== undefined) { cam.inFlight = Math.max(0, cam.inFlight - 1); setTimeout(pump, 500); }
  } else if (message.type === "settings") {
    say("webcam-message", "Live.", "ok");
  }
}

function onFrame(blob) {
  cam.inFlight = Math.max(0, cam.inFlight - 1);
  const now = performance.now();
  const sentAt = cam.sent.shift();
  cam.answered += 1;
  cam.times.push(now);
  if (cam.times.length > FPS_ANSWERS) cam.times.shift();
  const img = $("webcam-result");
  const url = URL.createObjectURL(blob);
  img.onload = () => { if (cam.url && cam.url !== url) URL.revokeObjectURL(cam.url); cam.url = url; };
  img.src = url;
  img.hidden = false;
  img.dataset.frames = String(cam.answered);
  $("webcam-empty").hidden = true;
  const span = cam.times.length > 1 ? (cam.times[cam.times.length - 1] - cam.times[0]) / 1000 : 0;
  const meta = cam.meta || {};
  const ms = (s) => (s === undefined || s === null ? "—" : `${Math.round(1000 * s)} ms`);
  const seconds = meta.seconds || {};
  $("webcam-fps").textContent = span > 0 ? ((cam.times.length - 1) / span).toFixed(1) : "…";
  $("webcam-frames").textContent = String(cam.answered);
  $("webcam-dropped").textContent = meta.dropped === undefined ? "—" : String(meta.dropped);
  $("webcam-model-ms").textContent = ms(seconds.model);
  $("webcam-codec-ms").textContent = seconds.decode === undefined ? "—" : ms(seconds.decode + seconds.encode);
  $("webcam-trip-ms").textContent = sentAt === undefined ? "—" : `${Math.round(now - sentAt)} ms`;
  pump();
}

// Send frames while fewer than MAX_IN_FLIGHT are unanswered: the camera runs at its own rate, and what the
// server cannot take is never captured (the server drops any surplus as well).
function pump() {
  while (cam.ws && cam.ready && cam.inFlight < MAX_IN_FLIGHT) sendFrame();
}

function sendFrame() {
  const video = $("webcam-video");
  const { width, height } = cam.canvas;
  // Fill the frame, cropping the camera's picture to 4:3 rather than stretching it.
  const vw = video.videoWidth || width, vh = video.videoHeight || height;
  const scale = Math.max(width / vw, height / vh);
  const sw = width / scale, sh = height / scale;
  cam.canvas.getContext("2d").drawImage(video, (vw - sw) / 2, (vh - sh) / 2, sw, sh, 0, 0, width, height);
  cam.inFlight += 1;
  const ws = cam.ws;
  cam.canvas.toBlob((blob) => {
    if (!blob || !ws || ws.readyState !== WebSocket.OPEN || cam.ws !== ws) { cam.inFlight = Math.max(0, cam.inFlight - 1); return; }
    cam.sent.push(performance.now());
    ws.send(blob);
  }, "image/jpeg", 0.8);
}

function webcamStop(message, failed = false) {
  cam.session += 1;
  const ws = cam.ws;
  cam.ws = null;
  cam.ready = false;
  if (ws) ws.close(1000, "stopped");
  if (cam.stream) for (const track of cam.stream.getTracks()) track.stop();
  const wasOn = Boolean(cam.stream || ws);
  cam.stream = null;
  $("webcam-video").hidden = true;
  $("webcam-start").disabled = $("webcam-style").options.length === 0;
  $("webcam-stop").disabled = true;
  if (message && wasOn) say("webcam-message", message, failed ? "error" : "");
}
