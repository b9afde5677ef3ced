// The animate page: pick or capture the inputs, start a job, follow its progress, show the result.
"use strict";

const $ = id => document.getElementById(id);
const files = {source: null, driving: null};
let currentJob = null;
let pollTimer = null;

function showError(message) { $("error").textContent = message || ""; }

function setFile(kind, file) {
  files[kind] = file;
  const preview = $(kind + "-preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.classList.add("shown");
  showError("");
}

$("source").addEventListener("change", e => e.target.files[0] && setFile("source", e.target.files[0]));
$("driving").addEventListener("change", e => e.target.files[0] && setFile("driving", e.target.files[0]));

async function useSample(kind) {
  try {
    if (kind === "source") setFile("source", await sampleFile("source.png", "image/png"));
    else setFile("driving", await sampleFile("driving.mp4", "video/mp4"));
  } catch (e) { showError("could not load the sample: " + e.message); }
}
$("example-source").addEventListener("click", () => useSample("source"));
$("example-driving").addEventListener("click", () => useSample("driving"));
$("example-both").addEventListener("click", async () => { await useSample("source"); await useSample("driving"); });

async function camera(audio) {
  try {
    return await navigator.mediaDevices.getUserMedia({video: true, audio});
  } catch (e) {
    if (audio) return camera(false);
    throw e;
  }
}

$("snap-start").addEventListener("click", async () => {
  try {
    const stream = await camera(false);
    $("snap-video").srcObject = stream;
    $("snap-video").classList.remove("hidden");
    $("snap").classList.remove("hidden");
  } catch (e) { showError("webcam unavailable: " + e.message); }
});
$("snap").addEventListener("click", () => {
  const video = $("snap-video");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  canvas.toBlob(blob => {
    setFile("source", new File([blob], "webcam.png", {type: "image/png"}));
    video.srcObject.getTracks().forEach(t => t.stop());
    video.classList.add("hidden"); $("snap").classList.add("hidden");
  }, "image/png");
});

let recorder = null;
$("rec-start").addEventListener("click", async () => {
  try {
    const stream = await camera(true);
    $("rec-video").srcObject = stream;
    $("rec-video").classList.remove("hidden");
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = e => e.data.size && chunks.push(e.data);
    recorder.onstop = () => {
      setFile("driving", new File(chunks, "webcam.webm", {type: recorder.mimeType || "video/webm"}));
      stream.getTracks().forEach(t => t.stop());
      $("rec-video").classList.add("hidden"); $("rec-stop").classList.add("hidden");
      $("rec-start").classList.remove("hidden"); $("rec-time").textContent = "";
    };
    const started = performance.now();
    recorder.start(250);
    $("rec-start").classList.add("hidden"); $("rec-stop").classList.remove("hidden");
    const tick = setInterval(() => {
      if (recorder.state !== "recording") return clearInterval(tick);
      $("rec-time").textContent = ((performance.now() - started) / 1000).toFixed(1) + " s";
    }, 200);
  } catch (e) { showError("webcam unavailable: " + e.message); }
});
$("rec-stop").addEventListener("click", () => recorder && recorder.stop());

function formData() {
  const form = new FormData();
  const o = $("options").elements;
  form.append("source", files.source);
  form.append("driving", files.driving);
  form.append("model", o.model.value);
  if (o.motion.value === "absolute") form.append("absolute", "true");
  if (!o.adapt_scale.checked) form.append("no_adapt_scale", "true");
  if (o.best_frame_auto.checked) form.append("best_frame", "auto");
  if (o.paste_back.checked) form.append("paste_back", "true");
  if (o.side_by_side.checked) form.append("side_by_side", "true");
  if (!o.audio.checked) form.append("no_audio", "true");
  form.append("smooth_keypoints", o.smooth_keypoints.value || "0");
  form.append("precision", o.precision.value);
  return form;
}

function running(on) {
  $("run").disabled = on;
  $("cancel").classList.toggle("hidden", !on);
  $("progress-box").classList.toggle("hidden", false);
}

function showProgress(s) {
  const total = s.total || 0;
  const share = total ? Math.min(1, s.frames / total) : 0;
  $("bar").style.width = (100 * share).toFixed(1) + "%";
  const parts = [s.state === "queued" ? "waiting in the queue" : `${s.frames} / ${total} frames`];
  if (s.fps) parts.push(`${s.fps.toFixed(2)} frames/s`);
  if (s.eta_s != null && s.state === "running") parts.push(`ETA ${Math.ceil(s.eta_s)} s`);
  if (s.state === "done") parts.push(`done in ${s.elapsed_s.toFixed(1)} s`);
  $("progress-text").textContent = parts.join(" · ");
}

function showResult(s) {
  const url = `/api/jobs/${s.id}/result`;
  $("result").src = url;
  $("result").classList.remove("hidden");
  $("result-empty").classList.add("hidden");
  $("download").href = url + "?download=true";
  $("download").classList.remove("hidden");
  const notes = (s.messages || []).join("; ");
  $("result-info").textContent = `${s.frames} frames, ${s.audio ? "with" : "without"} audio` + (notes ? ` · ${notes}` : "");
}

async function poll() {
  const job = currentJob;
  const response = await fetch(`/api/jobs/${job}`);
  if (job !== currentJob) return;
  if (!response.ok) { showError(await errorText(response)); running(false); return; }
  const s = await response.json();
  showProgress(s);
  if (s.state === "done") { running(false); showResult(s); }
  else if (s.state === "failed" || s.state === "cancelled") { running(false); showError(s.error || "the job was " + s.state); }
  else pollTimer = setTimeout(poll, 300);
}

$("run").addEventListener("click", async () => {
  showError("");
  if (!files.source || !files.driving) { showError("choose a source photo and a driving video first (or click the examples)"); return; }
  if (currentJob) { fetch(`/api/jobs/${currentJob}`, {method: "DELETE"}); currentJob = null; }
  clearTimeout(pollTimer);
  running(true);
  showProgress({state: "queued", frames: 0, total: 0});
  try {
    const response = await fetch("/api/jobs", {method: "POST", body: formData()});
    if (!response.ok) { showError(await errorText(response)); running(false); return; }
    currentJob = (await response.json()).id;
    poll();
  } catch (e) { showError("request failed: " + e.message); running(false); }
});

$("cancel").addEventListener("click", async () => {
  if (!currentJob) return;
  await fetch(`/api/jobs/${currentJob}`, {method: "DELETE"});
  currentJob = null; clearTimeout(pollTimer); running(false);
  showError("cancelled");
});

loadHealth($("model"));
// Leaving the page deletes its job (running or finished): the server keeps no files for nobody.
window.addEventListener("pagehide", () => {
  if (currentJob) fetch(`/api/jobs/${currentJob}`, {method: "DELETE", keepalive: true});
});
