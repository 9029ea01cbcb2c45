// The chat view: conversations kept in this browser (localStorage), answers streamed from
// POST /v1/chat/completions and rendered as Markdown while they arrive, a stop button that
// aborts the request (the server frees the sequence when the connection closes), sampling
// settings and a system prompt. A delta's `reasoning_content` (reasoning models, as
// llama-server sends it) is shown apart, folded.
import { t } from "./i18n.js";
import { streamJson } from "./api.js";
import { renderMarkdown } from "./markdown.js";
import { $, fillModelSelect, isTextModel } from "./ui.js";

const CHATS_KEY = "mmserve.chats";
const CURRENT_KEY = "mmserve.chat.current";
const SETTINGS_KEY = "mmserve.chat.settings";
const MAX_CHATS = 50;

function loadChats() {
  try {
    const chats = JSON.parse(localStorage.getItem(CHATS_KEY) || "[]");
    return Array.isArray(chats) ? chats : [];
  } catch {
    return [];
  }
}

let chats = loadChats();
let current = null; // the conversation shown
let controller = null; // the running request's AbortController

function saveChats() {
  chats.sort((a, b) => b.updated - a.updated);
  chats = chats.slice(0, MAX_CHATS);
  try {
    localStorage.setItem(CHATS_KEY, JSON.stringify(chats));
  } catch {
    /* storage full: the conversation stays in memory */
  }
  if (current) localStorage.setItem(CURRENT_KEY, current.id);
}

function newChat() {
  current = { id: `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`, title: "", messages: [], updated: Date.now() };
  renderHistory();
  renderLog();
}

function renderHistory() {
  const list = $("chat-history");
  list.replaceChildren();
  for (const chat of chats) {
    const li = document.createElement("li");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "history-item";
    open.textContent = chat.title || t("chat.untitled");
    if (current && chat.id === current.id) open.setAttribute("aria-current", "true");
    open.addEventListener("click", () => {
      if (controller) return;
      current = chat;
      localStorage.setItem(CURRENT_KEY, chat.id);
      renderHistory();
      renderLog();
    });
    const del = document.createElement("button");
    del.type = "button";
    del.className = "icon-button";
    del.textContent = "×";
    del.setAttribute("aria-label", `${t("chat.delete")}: ${chat.title || t("chat.untitled")}`);
    del.addEventListener("click", () => {
      if (controller && current === chat) return;
      chats = chats.filter((c) => c !== chat);
      saveChats();
      if (current === chat) newChat();
      else renderHistory();
    });
    li.append(open, del);
    list.append(li);
  }
}

// One message's element (re-rendered in place while it streams).
function messageElement(msg) {
  const el = document.createElement("article");
  el.className = `msg msg-${msg.role}`;
  const who = document.createElement("h3");
  who.className = "msg-who";
  who.textContent = msg.role === "user" ? t("chat.you") : t("chat.assistant");
  el.append(who);
  fillMessage(el, msg);
  return el;
}

function fillMessage(el, msg) {
  el.querySelectorAll(".msg-body, .reasoning, .stats, .msg-error").forEach((n) => n.remove());
  if (msg.reasoning) {
    const details = document.createElement("details");
    details.className = "reasoning";
    details.open = Boolean(msg.reasoningOpen);
    details.addEventListener("toggle", () => (msg.reasoningOpen = details.open));
    const summary = document.createElement("summary");
    summary.textContent = t("chat.reasoning");
    const body = document.createElement("div");
    body.className = "markdown";
    body.innerHTML = renderMarkdown(msg.reasoning);
    details.append(summary, body);
    el.append(details);
  }
  const body = document.createElement("div");
  body.className = "msg-body markdown";
  if (msg.role === "user") body.textContent = msg.content;
  else body.innerHTML = renderMarkdown(msg.content);
  el.append(body);
  addCopyButtons(body);
  if (msg.error) {
    const err = document.createElement("p");
    err.className = "msg-error";
    err.setAttribute("role", "alert");
    err.textContent = msg.error;
    el.append(err);
  }
  const notes = [];
  if (msg.stats) notes.push(t("chat.stats", msg.stats));
  if (msg.finish) notes.push(t("chat.finish", { reason: msg.finish }));
  if (msg.stopped) notes.push(t("common.stopped"));
  if (notes.length) {
    const p = document.createElement("p");
    p.className = "stats";
    p.textContent = notes.join(" · ");
    el.append(p);
  }
  el.classList.toggle("streaming", Boolean(msg.streaming));
}

export function addCopyButtons(root) {
  for (const block of root.querySelectorAll(".code-block")) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy-button";
    button.textContent = t("chat.copy");
    button.addEventListener("click", async () => {
      const code = block.querySelector("code").textContent;
      try {
        await navigator.clipboard.writeText(code);
        button.textContent = t("chat.copied");
      } catch {
        getSelection().selectAllChildren(block.querySelector("code")); // not a secure context
      }
    });
    block.prepend(button);
  }
}

function renderLog() {
  const log = $("chat-log");
  log.replaceChildren();
  if (!current.messages.length) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = t("chat.empty");
    log.append(p);
  }
  for (const msg of current.messages) log.append(messageElement(msg));
  log.scrollTop = log.scrollHeight;
}

function settings() {
  return {
    model: $("chat-model").value,
    system: $("chat-system").value,
    temperature: $("chat-temperature").value,
    top_p: $("chat-top-p").value,
    max_tokens: $("chat-max-tokens").value,
    seed: $("chat-seed").value,
  };
}

function restoreSettings() {
  let s = {};
  try {
    s = JSON.parse(localStorage.getItem(SETTINGS_KEY) || "{}");
  } catch {
    /* defaults */
  }
  for (const [id, key] of [["chat-system", "system"], ["chat-temperature", "temperature"], ["chat-top-p", "top_p"], ["chat-max-tokens", "max_tokens"], ["chat-seed", "seed"]]) {
    if (typeof s[key] === "string") $(id).value = s[key];
  }
  const show = () => {
    $("chat-temperature-value").textContent = $("chat-temperature").value;
    $("chat-top-p-value").textContent = $("chat-top-p").value;
  };
  for (const id of ["chat-system", "chat-temperature", "chat-top-p", "chat-max-tokens", "chat-seed"]) {
    $(id).addEventListener("input", () => {
      show();
      localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings()));
    });
  }
  show();
}

// The request body: only fields the server implements (it refuses unknown ones).
function requestBody(s, history) {
  const messages = [];
  if (s.system.trim()) messages.push({ role: "system", content: s.system });
  for (const m of history) messages.push({ role: m.role, content: m.content });
  const body = { messages, stream: true, stream_options: { include_usage: true }, temperature: Number(s.temperature), top_p: Number(s.top_p) };
  if (s.model) body.model = s.model;
  if (s.max_tokens) body.max_tokens = Number(s.max_tokens);
  if (s.seed !== "") body.seed = Number(s.seed);
  return body;
}

function setBusy(busy) {
  $("chat-send").disabled = busy;
  $("chat-stop").disabled = !busy;
  $("chat-log").setAttribute("aria-busy", String(busy));
}

async function send(text) {
  if (controller || !text.trim()) return;
  const history = current.messages.filter((m) => !m.error || m.content);
  const user = { role: "user", content: text };
  const reply = { role: "assistant", content: "", reasoning: "", streaming: true };
  current.messages.push(user, reply);
  if (!current.title) current.title = text.trim().slice(0, 48);
  current.updated = Date.now();
  if (!chats.includes(current)) chats.unshift(current);
  saveChats();
  renderHistory();
  renderLog();
  const el = $("chat-log").lastElementChild;

  let pending = false;
  const repaint = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      const log = $("chat-log");
      const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
      fillMessage(el, reply);
      if (atBottom) log.scrollTop = log.scrollHeight;
    });
  };

  controller = new AbortController();
  setBusy(true);
  let first = 0;
  let usage = null;
  const started = performance.now();
  try {
    await streamJson(
      "/v1/chat/completions",
      requestBody(settings(), [...history, user]),
      (event) => {
        if (event.usage) usage = event.usage;
        const choice = event.choices && event.choices[0];
        if (!choice) return;
        const delta = choice.delta || {};
        if (delta.reasoning_content) reply.reasoning += delta.reasoning_content;
        if (delta.content) reply.content += delta.content;
        if ((delta.content || delta.reasoning_content) && !first) first = performance.now();
        if (choice.finish_reason) reply.finish = choice.finish_reason;
        repaint();
      },
      controller.signal,
    );
  } catch (e) {
    if (e.name === "AbortError") reply.stopped = true;
    else reply.error = e.message;
  } finally {
    const ended = performance.now();
    if (usage && usage.completion_tokens) {
      const seconds = (ended - (first || started)) / 1000;
      const decoded = Math.max(usage.completion_tokens - 1, 1); // the first token's time is the prompt's
      reply.stats = { tokens: usage.completion_tokens, rate: seconds > 0 ? (decoded / seconds).toFixed(1) : "–" };
    }
    reply.streaming = false;
    controller = null;
    setBusy(false);
    current.updated = Date.now();
    saveChats();
    fillMessage(el, reply);
    $("chat-input").focus();
  }
}

export function initChat() {
  restoreSettings();
  // A phone: the conversation gets the screen, history and settings open on demand.
  const phone = matchMedia("(max-width: 720px)");
  const fold = () => {
    $("chat-settings").open = !phone.matches;
    $("chat-history-block").open = !phone.matches;
  };
  phone.addEventListener("change", fold);
  fold();
  const wanted = localStorage.getItem(CURRENT_KEY);
  current = chats.find((c) => c.id === wanted) || null;
  if (current) {
    renderHistory();
    renderLog();
  } else {
    newChat();
  }
  $("chat-new").addEventListener("click", () => {
    if (!controller) newChat();
    $("chat-input").focus();
  });
  $("chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("chat-input");
    const text = input.value;
    if (!text.trim() || controller) return;
    input.value = "";
    send(text);
  });
  $("chat-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("chat-form").requestSubmit();
    }
  });
  $("chat-stop").addEventListener("click", () => controller && controller.abort());
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && controller && !$("view-chat").hidden) controller.abort();
  });
  setBusy(false);
  return {
    setModels: (models) => fillModelSelect($("chat-model"), models, isTextModel, "mmserve.chat.model"),
  };
}
