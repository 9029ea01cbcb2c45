// The page's entry: translation, the tabs (arrow keys move between them, as WAI-ARIA's tabs
// pattern), the API-key dialog, the error banner, and each view's module.
import { t, translate } from "./i18n.js";
import { getKey, setKey, listModels } from "./api.js";
import { initChat } from "./chat.js";
import { initDescribe } from "./describe.js";
import { initTranscribe } from "./transcribe.js";
import { initStatus } from "./status.js";
import { $, showBanner, hideBanner } from "./ui.js";


const views = {};

function selectTab(name, focus = false) {
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const on = tab.dataset.view === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    if (on && focus) tab.focus();
    $(`view-${tab.dataset.view}`).hidden = !on;
  }
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  for (const [view, api] of Object.entries(views)) api.visible?.(view === name);
}

function initTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  for (const tab of tabs) {
    tab.addEventListener("click", () => selectTab(tab.dataset.view));
    tab.addEventListener("keydown", (e) => {
      const i = tabs.indexOf(tab);
      let next = null;
      if (e.key === "ArrowRight") next = tabs[(i + 1) % tabs.length];
      else if (e.key === "ArrowLeft") next = tabs[(i - 1 + tabs.length) % tabs.length];
      else if (e.key === "Home") next = tabs[0];
      else if (e.key === "End") next = tabs[tabs.length - 1];
      if (next) {
        e.preventDefault();
        selectTab(next.dataset.view, true);
      }
    });
  }
}

function refreshKeyState() {
  $("key-state").textContent = getKey() ? `(${t("key.set")})` : `(${t("key.none")})`;
}

function initKeyDialog() {
  const dialog = $("key-dialog");
  $("key-button").addEventListener("click", () => {
    $("key-input").value = getKey();
    dialog.showModal();
    $("key-input").focus();
  });
  $("key-form").addEventListener("submit", () => {
    setKey($("key-input").value.trim());
  });
  $("key-clear").addEventListener("click", () => {
    $("key-input").value = "";
    setKey("");
    dialog.close();
  });
  $("key-close").addEventListener("click", () => dialog.close());
  document.addEventListener("mmserve:key", async () => {
    refreshKeyState();
    hideBanner();
    await loadModels(true);
  });
  document.addEventListener("mmserve:unauthorized", (e) => showBanner(e.detail));
  $("banner-close").addEventListener("click", hideBanner);
  refreshKeyState();
}

// Fills every view's model picker from /v1/models; an error (a missing key, most often) goes
// to the banner.
let loads = 0;
async function loadModels(reload = false) {
  const load = ++loads; // a key changed while an older load ran: only the newest one counts
  try {
    const models = await listModels(reload);
    if (load !== loads) return;
    hideBanner();
    for (const api of Object.values(views)) api.setModels?.(models);
  } catch (e) {
    if (load !== loads) return;
    showBanner(e.message);
    for (const api of Object.values(views)) api.setModels?.(null);
  }
}

function main() {
  translate();
  initTabs();
  initKeyDialog();
  views.chat = initChat();
  views.describe = initDescribe();
  views.transcribe = initTranscribe();
  views.status = initStatus();
  const start = location.hash.slice(1);
  selectTab(views[start] ? start : "chat");
  window.addEventListener("hashchange", () => views[location.hash.slice(1)] && selectTab(location.hash.slice(1)));
  loadModels();
  document.body.dataset.ready = "1"; // for the browser test: the modules ran
}

main();
