// The status view: the server's state and each loaded model's queue from GET /health, and
// throughput and memory from GET /metrics (Prometheus text), refreshed every 2 s while the
// view is shown and the tab visible. Tokens/s is the generated-tokens counter's rise over the
// last 10 s of scrapes. Neither endpoint is written to the audit log, so watching costs no rows.
import { t } from "./i18n.js";
import { getJson, listModels, request } from "./api.js";
import { $, formatBytes } from "./ui.js";

const PERIOD_MS = 2000;
let timer = null;
let visible = false;
let paused = false;
let inflight = false;
// Scrapes of the generated-tokens counter over the last WINDOW_MS: the server counts a request's
// tokens when it completes, so a rate over one 2 s period would jump between 0 and a spike.
const WINDOW_MS = 10000;
const history = []; // {time, generated}

// Prometheus text exposition to [{name, labels, value}] (comments and malformed lines skipped).
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const l of m[3].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, (x, c) => (c === "n" ? "\n" : c));
    samples.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return samples;
}

const sum = (samples, name, filter = () => true) => samples.filter((s) => s.name === name && filter(s.labels)).reduce((a, s) => a + s.value, 0);
const has = (samples, name) => samples.some((s) => s.name === name);

function card(label, value, id) {
  const div = document.createElement("div");
  div.className = "card";
  if (id) div.dataset.metric = id;
  const v = document.createElement("div");
  v.className = "card-value";
  v.textContent = value;
  const l = document.createElement("div");
  l.className = "card-label";
  l.textContent = label;
  div.append(v, l);
  return div;
}

async function refresh() {
  const note = $("status-note");
  let health;
  try {
    health = await getJson("/health");
  } catch (e) {
    $("status-cards").replaceChildren(card(t("status.state"), "–"));
    note.textContent = e.message;
    return;
  }
  let samples = [];
  note.textContent = "";
  try {
    samples = parseMetrics(await (await request("/metrics")).text());
  } catch (e) {
    note.textContent = t("status.metrics_denied", { detail: e.message });
  }
  const now = performance.now();
  const generated = sum(samples, "mmserve_generated_tokens_total");
  let rate = "–";
  if (has(samples, "mmserve_generated_tokens_total")) {
    history.push({ time: now, generated });
    while (history.length > 2 && now - history[1].time >= WINDOW_MS) history.shift();
    const first = history[0];
    if (now > first.time) rate = Math.max(0, ((generated - first.generated) * 1000) / (now - first.time)).toFixed(1);
  }

  const models = Object.entries(health.models || {});
  const running = models.reduce((a, [, m]) => a + (m.running || 0), 0);
  const waiting = models.reduce((a, [, m]) => a + (m.waiting ?? m.queued ?? m.outstanding ?? 0), 0);
  const requests = sum(samples, "mmserve_requests_total");
  const cards = [
    card(t("status.state"), health.state || health.status, "state"),
    card(t("status.running"), String(running), "running"),
    card(t("status.waiting"), String(waiting), "waiting"),
    card(t("status.tokens"), rate, "tokens"),
    card(t("status.memory"), has(samples, "process_resident_memory_bytes") ? formatBytes(sum(samples, "process_resident_memory_bytes")) : "–", "memory"),
    card(t("status.requests"), has(samples, "mmserve_requests_total") ? String(requests) : "–", "requests"),
    card(t("status.audio"), has(samples, "mmserve_audio_seconds_total") ? `${sum(samples, "mmserve_audio_seconds_total").toFixed(1)} s` : "–", "audio"),
  ];
  if (has(samples, "mmserve_gpu_memory_used_bytes")) {
    const used = sum(samples, "mmserve_gpu_memory_used_bytes");
    const total = sum(samples, "mmserve_gpu_memory_total_bytes");
    cards.push(card(t("status.gpu"), `${formatBytes(used)} / ${formatBytes(total)}`, "gpu"));
  }
  $("status-cards").replaceChildren(...cards);

  // Every served model (the page's one /v1/models listing: it is audited, so not polled), loaded
  // or not; the live figures of the loaded ones from /health.
  let listed = [];
  try {
    listed = await listModels();
  } catch {
    /* no key yet: the loaded models only */
  }
  const names = [...new Set([...listed.map((m) => m.id), ...models.map(([name]) => name)])];
  const rows = names.map((name) => {
    const tr = document.createElement("tr");
    const m = (health.models || {})[name];
    const meta = (listed.find((l) => l.id === name) || {}).meta || {};
    const memory = sum(samples, "mmserve_model_memory_bytes", (l) => l.model === name) || (m ? meta.memory_bytes : 0);
    const queued = m ? (m.waiting ?? m.queued ?? m.outstanding ?? 0) : "–";
    const cells = [
      name,
      (m && m.kind) || meta.kind || "",
      m ? t("status.yes") : t("status.no"),
      m ? `${m.running ?? 0} / ${queued} / ${m.queue_capacity ?? "–"}` : "–",
      m && typeof m.kv_cache_usage === "number" ? `${(100 * m.kv_cache_usage).toFixed(0)}%` : "–",
      memory ? formatBytes(memory) : "–",
    ];
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = c;
      tr.append(td);
    }
    return tr;
  });
  $("status-models").replaceChildren(...rows);
  $("status-updated").textContent = `${t("status.refresh")} · ${t("status.updated", { time: new Date().toLocaleTimeString() })}`;
}

function schedule() {
  clearTimeout(timer);
  timer = null;
  if (!visible || paused || document.visibilityState !== "visible" || inflight) return;
  inflight = true; // one refresh at a time: its end schedules the next
  refresh().finally(() => {
    inflight = false;
    if (visible && !paused) timer = setTimeout(schedule, PERIOD_MS);
  });
}

export function initStatus() {
  const pause = $("status-pause");
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? t("status.resume") : t("status.pause");
    schedule();
  });
  document.addEventListener("visibilitychange", schedule);
  return {
    visible: (on) => {
      visible = on;
      schedule();
    },
  };
}
