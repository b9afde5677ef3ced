// The live page: camera frames go to /api/live, at most MAX_IN_FLIGHT without an answer, and
// animated frames come back. The server animates only the newest frame it holds (older waiting
// frames are dropped). With 2 in flight the frame rate stayed the same on a 2-core CPU and the
// latency doubled (the work is compute-bound), hence 1: each frame is grabbed when the last is done.
"use strict";

const $ = id => document.getElementById(id);
const FRAME_SIDE = 320;
const MAX_IN_FLIGHT = 1;
const stats = {latencies: [], shown: [], frames: 0, dropped: 0, fps: 0, median: null, p95: null};
window.liveStats = stats;
let socket = null, stream = null, sourceBlob = null, seq = 0, inFlight = 0, running = false;
const sentAt = new Map();
const canvas = document.createElement("canvas");

function showError(message) { $("error").textContent = message || ""; }

function percentile(values, p) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

function updateStats() {
  const now = performance.now();
  while (stats.shown.length && now - stats.shown[0] > 2000) stats.shown.shift();
  stats.fps = stats.shown.length / 2;
  const recent = stats.latencies.slice(-100);
  stats.median = percentile(recent, 0.5);
  stats.p95 = percentile(recent, 0.95);
  $("fps").textContent = stats.fps.toFixed(1);
  $("latency").textContent = stats.median == null ? "–" : Math.round(stats.median);
  $("latency95").textContent = stats.p95 == null ? "–" : Math.round(stats.p95);
  $("dropped").textContent = stats.dropped;
}
setInterval(updateStats, 500);

function sendFrame() {
  if (!running || inFlight >= MAX_IN_FLIGHT || socket.readyState !== WebSocket.OPEN) return;
  const video = $("camera");
  if (!video.videoWidth) return;
  const scale = FRAME_SIDE / Math.max(video.videoWidth, video.videoHeight);
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  const grabbed = performance.now();
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  const id = ++seq >>> 0;
  sentAt.set(id, grabbed);
  inFlight = sentAt.size;
  canvas.toBlob(async blob => {
    const header = new Uint8Array(5);
    header[0] = 70;  // "F"
    new DataView(header.buffer).setUint32(1, id);
    socket.send(await new Blob([header, blob]).arrayBuffer());
  }, "image/jpeg", 0.8);
}

function onFrame(buffer) {
  const view = new DataView(buffer);
  const id = view.getUint32(0);
  const grabbed = sentAt.get(id);
  for (const key of sentAt.keys()) if (key <= id) sentAt.delete(key);  // older ones were dropped
  inFlight = sentAt.size;
  const url = URL.createObjectURL(new Blob([buffer.slice(8)], {type: "image/jpeg"}));
  const img = $("output");
  img.onload = () => {
    URL.revokeObjectURL(url);
    const now = performance.now();
    if (grabbed !== undefined) stats.latencies.push(now - grabbed);
    stats.shown.push(now);
    stats.frames++;
  };
  img.src = url;
  sendFrame();
}

function onMessage(event) {
  if (event.data instanceof ArrayBuffer) return onFrame(event.data);
  const message = JSON.parse(event.data);
  if (message.type === "ready") { running = true; $("neutral").disabled = false; showError(""); sendFrame(); }
  else if (message.type === "stats") stats.dropped = message.dropped;
  else if (message.type === "error") { showError(message.error); sentAt.clear(); inFlight = 0; }
}

async function start() {
  showError("");
  try {
    if (!sourceBlob) sourceBlob = await sampleFile("source.png", "image/png");
    stream = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480}, audio: false});
  } catch (e) { showError("webcam unavailable: " + e.message); return; }
  $("camera").srcObject = stream;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/api/live`);
  socket.binaryType = "arraybuffer";
  socket.onmessage = onMessage;
  socket.onclose = event => {
    running = false;
    if (event.code !== 1000) showError(`live connection closed (${event.code}${event.reason ? ": " + event.reason : ""})`);
  };
  socket.onopen = async () => {
    socket.send(JSON.stringify({type: "options", model: $("model").value,
                                relative: $("relative").checked, adapt_scale: $("adapt_scale").checked}));
    socket.send(await new Blob([new Uint8Array([83]), sourceBlob]).arrayBuffer());  // "S"
  };
  $("start").disabled = true; $("stop").disabled = false;
  if (!window.liveTick) window.liveTick = setInterval(sendFrame, 15);  // resumes after a skipped frame
}

function stop() {
  running = false;
  if (socket) socket.close(1000);
  if (stream) stream.getTracks().forEach(t => t.stop());
  $("start").disabled = false; $("stop").disabled = true; $("neutral").disabled = true;
}

$("source").addEventListener("change", e => { if (e.target.files[0]) { sourceBlob = e.target.files[0]; if (running) restartSource(); } });
$("example-source").addEventListener("click", async () => { sourceBlob = await sampleFile("source.png", "image/png"); if (running) restartSource(); });
async function restartSource() {
  running = false; sentAt.clear(); inFlight = 0;
  socket.send(await new Blob([new Uint8Array([83]), sourceBlob]).arrayBuffer());
}
$("neutral").addEventListener("click", () => socket && socket.send(JSON.stringify({type: "neutral"})));
$("start").addEventListener("click", start);
$("stop").addEventListener("click", stop);
loadHealth($("model"));
