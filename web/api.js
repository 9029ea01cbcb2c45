// Talking to the server the page came from: the API key (kept in this browser's localStorage
// only), requests carrying it, server-sent-event streams, and errors in the server's
// {"error": {"message", "type", "param", "code"}} shape turned into one readable line.
import { t } from "./i18n.js";

const KEY_STORAGE = "mmserve.apiKey";

export function getKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
  document.dispatchEvent(new CustomEvent("mmserve:key"));
}

export function authHeaders(extra = {}) {
  const key = getKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : { ...extra };
}

// An error the page shows: `status` is the HTTP status (0: no answer at all).
export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// The readable line for an HTTP error answer.
export function describeError(status, body) {
  const err = body && body.error ? body.error : null;
  let detail = err && err.message ? err.message : typeof body === "string" && body ? body.slice(0, 300) : `HTTP ${status}`;
  if (err && err.param) detail += ` [${err.param}]`;
  if (status === 401) return t("err.unauthorized", { detail });
  if (status === 403) return t("err.forbidden", { detail });
  if (status === 429) return t("err.ratelimit", { detail });
  return t("err.http", { status, detail });
}

async function errorFrom(resp) {
  const text = await resp.text();
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON: shown as text */
  }
  const e = new ApiError(resp.status, describeError(resp.status, body), body);
  return e;
}

// fetch() with the key; throws ApiError for a network failure or a non-2xx answer.
export async function request(path, options = {}) {
  let resp;
  const sentKey = getKey();
  try {
    resp = await fetch(path, { ...options, headers: authHeaders(options.headers || {}) });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, t("err.network", { detail: e.message }));
  }
  if (!resp.ok) {
    const e = await errorFrom(resp);
    // A refused key is the page's concern, not one view's: the banner says so (unless the key
    // changed meanwhile).
    if (resp.status === 401 && sentKey === getKey()) document.dispatchEvent(new CustomEvent("mmserve:unauthorized", { detail: e.message }));
    throw e;
  }
  return resp;
}

export async function getJson(path, options = {}) {
  return (await request(path, options)).json();
}

// POSTs `body` as JSON with stream: true and calls onEvent(object) for each `data:` event
// until [DONE]. An {"error": ...} event (a stream that failed midway) throws ApiError.
// `signal` aborts it (an AbortError is thrown).
export async function streamJson(path, body, onEvent, signal) {
  const resp = await request(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl).replace(/\r$/, "");
      buffer = buffer.slice(nl + 1);
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") return;
      const event = JSON.parse(data);
      if (event.error) throw new ApiError(200, t("err.stream", { detail: event.error.message || "?" }), event);
      onEvent(event);
    }
  }
}

// The served models (GET /v1/models), cached for the page's life; reload: true refreshes.
let modelsCache = null;
export async function listModels(reload = false) {
  if (!modelsCache || reload) {
    modelsCache = getJson("/v1/models").then((r) => r.data || []);
    modelsCache.catch(() => (modelsCache = null));
  }
  return modelsCache;
}

export function modelKind(m) {
  return (m.meta && m.meta.kind) || "text";
}

export function modelTasks(m) {
  return (m.meta && m.meta.tasks) || [];
}
