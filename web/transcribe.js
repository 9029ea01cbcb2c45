// The transcribe view: an audio or video file (picked, dropped or pasted) or a recording from
// the microphone (MediaRecorder), sent to POST /v1/audio/transcriptions (or /translations) as
// OpenAI's multipart form with response_format verbose_json; upload progress, then the time
// elapsed; the segments with their timestamps; TXT, SRT and VTT made here from the segments in
// exactly the server's own formats (engine/speech_transcript.cpp), so nothing is transcribed
// twice for a download.
import { t } from "./i18n.js";
import { authHeaders, describeError } from "./api.js";
import { $, download, fillModelSelect, isSpeechModel, wireDropZone } from "./ui.js";

let audio = null; // {name, blob}
let transcript = null; // the verbose_json answer
let xhr = null;
let recorder = null;
let visible = false;

const isAudio = (f) => f.type.startsWith("audio/") || f.type.startsWith("video/") || /\.(wav|mp3|m4a|ogg|opus|flac|webm|mp4|mkv|mov|aac)$/i.test(f.name);

function useAudio(blob, name) {
  audio = { name, blob };
  const player = $("transcribe-audio");
  if (player.src) URL.revokeObjectURL(player.src);
  player.src = URL.createObjectURL(blob);
  $("transcribe-name").textContent = `${name} (${Math.round(blob.size / 1024)} KiB)`;
  $("transcribe-chosen").hidden = false;
}

// --- the server's transcript formats, from verbose_json segments ---

function cueTime(seconds, sep) {
  const ms = Math.round(Math.max(0, seconds) * 1000);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(Math.floor(ms / 3600000))}:${pad(Math.floor(ms / 60000) % 60)}:${pad(Math.floor(ms / 1000) % 60)}${sep}${pad(ms % 1000, 3)}`;
}

const trim = (s) => s.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, "");
const oneLine = (s) => trim(s).replace(/[\r\n]/g, " ");
const vttEscape = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function toCues(segments, srt) {
  let out = srt ? "" : "WEBVTT\n\n";
  let cue = 0;
  for (const s of segments) {
    const text = oneLine(s.text);
    if (!text) continue;
    if (srt) out += `${++cue}\n`;
    const sep = srt ? "," : ".";
    out += `${cueTime(s.start, sep)} --> ${cueTime(s.end, sep)}\n${srt ? text : vttEscape(text)}\n\n`;
  }
  return out;
}

function baseName() {
  return (audio ? audio.name : "transcript").replace(/\.[^.]+$/, "") || "transcript";
}

// --- the request ---

function setBusy(busy) {
  $("transcribe-start").disabled = busy;
  $("transcribe-cancel").disabled = !busy;
  $("transcribe-record").disabled = busy;
}

function showTranscript(result) {
  transcript = result;
  const body = $("transcribe-segments");
  body.replaceChildren();
  for (const s of result.segments || []) {
    const tr = document.createElement("tr");
    for (const text of [cueTime(s.start, "."), cueTime(s.end, "."), trim(s.text)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    body.append(tr);
  }
  $("transcribe-table").hidden = false;
  $("transcribe-downloads").hidden = false;
}

function start() {
  const status = $("transcribe-status");
  const progress = $("transcribe-progress");
  if (!audio) {
    status.textContent = t("transcribe.nofile");
    return;
  }
  const form = new FormData();
  form.append("file", audio.blob, audio.name);
  if ($("transcribe-model").value) form.append("model", $("transcribe-model").value);
  const translate = $("transcribe-translate").checked;
  const language = $("transcribe-language").value.trim();
  if (language && !translate) form.append("language", language);
  form.append("response_format", "verbose_json");

  xhr = new XMLHttpRequest();
  xhr.open("POST", translate ? "/v1/audio/translations" : "/v1/audio/transcriptions");
  for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
  const started = performance.now();
  let timer = null;
  const elapsed = () => ((performance.now() - started) / 1000).toFixed(0);
  progress.hidden = false;
  progress.value = 0;
  status.textContent = t("transcribe.uploading", { percent: 0 });
  xhr.upload.onprogress = (e) => {
    if (!e.lengthComputable) return;
    const percent = Math.round((100 * e.loaded) / e.total);
    progress.value = percent;
    status.textContent = t("transcribe.uploading", { percent });
  };
  xhr.upload.onload = () => {
    // Uploaded: the server decodes and transcribes window by window; no figure to show but time.
    progress.removeAttribute("value");
    status.textContent = t("transcribe.running", { seconds: elapsed() });
    timer = setInterval(() => (status.textContent = t("transcribe.running", { seconds: elapsed() })), 1000);
  };
  const finish = () => {
    clearInterval(timer);
    xhr = null;
    setBusy(false);
    progress.hidden = true;
  };
  xhr.onload = () => {
    const req = xhr;
    finish();
    let body = req.responseText;
    try {
      body = JSON.parse(body);
    } catch {
      /* shown as text */
    }
    if (req.status !== 200) {
      status.textContent = describeError(req.status, body);
      status.dataset.state = "error";
      if (req.status === 401) document.dispatchEvent(new CustomEvent("mmserve:unauthorized", { detail: status.textContent }));
      return;
    }
    showTranscript(body);
    status.dataset.state = "done";
    status.textContent = t("transcribe.done", { duration: Number(body.duration || 0).toFixed(1), seconds: elapsed(), language: body.language || "?" });
  };
  xhr.onerror = () => {
    finish();
    status.dataset.state = "error";
    status.textContent = t("err.network", { detail: "XMLHttpRequest" });
  };
  xhr.onabort = () => {
    finish();
    status.dataset.state = "stopped";
    status.textContent = t("common.stopped");
  };
  delete status.dataset.state;
  setBusy(true);
  xhr.send(form);
}

// --- the microphone ---

async function toggleRecording() {
  const button = $("transcribe-record");
  const label = $("transcribe-record-label");
  if (recorder) {
    recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    $("transcribe-status").textContent = t("transcribe.nomic", { detail: e.message || e.name });
    return;
  }
  const chunks = [];
  const type = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm"].find((m) => MediaRecorder.isTypeSupported(m)) || "";
  recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
  const started = performance.now();
  const seconds = () => ((performance.now() - started) / 1000).toFixed(1);
  const tick = setInterval(() => (label.textContent = t("transcribe.recording", { seconds: seconds() })), 200);
  recorder.ondataavailable = (e) => e.data.size && chunks.push(e.data);
  recorder.onstop = () => {
    clearInterval(tick);
    stream.getTracks().forEach((track) => track.stop());
    const mime = recorder.mimeType || "audio/webm";
    const ext = mime.includes("ogg") ? "ogg" : "webm";
    useAudio(new Blob(chunks, { type: mime }), `recording-${new Date().toISOString().replace(/[:.]/g, "-")}.${ext}`);
    $("transcribe-name").textContent = `${t("transcribe.recorded", { seconds: seconds() })}: ${audio.name}`;
    recorder = null;
    button.setAttribute("aria-pressed", "false");
    label.textContent = t("transcribe.record");
  };
  recorder.start(250);
  button.setAttribute("aria-pressed", "true");
  label.textContent = t("transcribe.recording", { seconds: "0.0" });
}

export function initTranscribe() {
  wireDropZone($("transcribe-drop"), $("transcribe-file"), isAudio, (f) => useAudio(f, f.name || "audio"), () => visible);
  $("transcribe-form").addEventListener("submit", (e) => {
    e.preventDefault();
    start();
  });
  $("transcribe-cancel").addEventListener("click", () => xhr && xhr.abort());
  $("transcribe-record").addEventListener("click", toggleRecording);
  if (!window.MediaRecorder || !navigator.mediaDevices) $("transcribe-record").hidden = true; // plain HTTP off localhost
  $("download-txt").addEventListener("click", () => transcript && download(`${baseName()}.txt`, `${transcript.text}\n`, "text/plain"));
  $("download-srt").addEventListener("click", () => transcript && download(`${baseName()}.srt`, toCues(transcript.segments || [], true), "application/x-subrip"));
  $("download-vtt").addEventListener("click", () => transcript && download(`${baseName()}.vtt`, toCues(transcript.segments || [], false), "text/vtt"));
  setBusy(false);
  return {
    setModels: (models) => fillModelSelect($("transcribe-model"), models, isSpeechModel, "mmserve.transcribe.model"),
    visible: (on) => (visible = on),
  };
}
