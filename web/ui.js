// Small helpers the views share: element lookup, the error banner, model pickers, number
// formatting and file downloads.
import { t } from "./i18n.js";
import { modelKind, modelTasks } from "./api.js";

export const $ = (id) => document.getElementById(id);

export function showBanner(message) {
  $("banner-text").textContent = message;
  $("banner").hidden = false;
}

export function hideBanner() {
  $("banner").hidden = true;
}

// Fills <select> `select` with the models that pass `accept`, keeping the choice stored
// under `storageKey` when it is still served.
export function fillModelSelect(select, models, accept, storageKey) {
  const wanted = select.value || localStorage.getItem(storageKey) || "";
  select.replaceChildren();
  const fitting = (models || []).filter(accept);
  for (const m of fitting) {
    const opt = document.createElement("option");
    opt.value = m.id;
    opt.textContent = m.meta && m.meta.loaded === false ? `${m.id} (…)` : m.id;
    select.append(opt);
  }
  if (!fitting.length) {
    const opt = document.createElement("option");
    opt.value = "";
    opt.textContent = models ? t("common.nomodel") : t("common.nolist"); // null: the list failed
    select.append(opt);
  }
  if (fitting.some((m) => m.id === wanted)) select.value = wanted;
  select.onchange = () => localStorage.setItem(storageKey, select.value);
}

export const isTextModel = (m) => modelKind(m) === "text" && modelTasks(m).includes("text-gen");
export const isVisionModel = (m) => modelTasks(m).includes("image-caption");
export const isSpeechModel = (m) => modelKind(m) === "speech";

export function formatBytes(n) {
  if (!Number.isFinite(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// Offers `text` as a file named `name` (a blob URL: nothing leaves the browser).
export function download(name, text, mime) {
  const url = URL.createObjectURL(new Blob([text], { type: mime }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// Wires a drop zone (drag and drop, and paste while `active()`) to `onFile(file)`.
export function wireDropZone(zone, input, accept, onFile, active) {
  input.addEventListener("change", () => input.files[0] && onFile(input.files[0]));
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    const file = [...(e.dataTransfer?.files || [])].find(accept);
    if (file) onFile(file);
  });
  document.addEventListener("paste", (e) => {
    if (!active()) return;
    const file = [...(e.clipboardData?.files || [])].find(accept);
    if (file) {
      e.preventDefault();
      onFile(file);
    }
  });
}
