// The describe view: an image (picked, dropped or pasted) and a question, sent to a vision
// model as an OpenAI chat message with an image_url part (a data URL: the image goes in the
// request, never by URL), the answer streamed and rendered as Markdown.
import { t } from "./i18n.js";
import { streamJson } from "./api.js";
import { renderMarkdown } from "./markdown.js";
import { addCopyButtons } from "./chat.js";
import { $, fillModelSelect, isVisionModel, wireDropZone } from "./ui.js";

let image = null; // {name, dataUrl, objectUrl}
let controller = null;
let visible = false;

const isImage = (f) => f.type.startsWith("image/");

function readDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function useImage(file) {
  if (image) URL.revokeObjectURL(image.objectUrl);
  image = { name: file.name || "pasted image", dataUrl: await readDataUrl(file), objectUrl: URL.createObjectURL(file) };
  $("describe-img").src = image.objectUrl;
  $("describe-img").alt = image.name;
  $("describe-name").textContent = `${image.name} (${Math.round(file.size / 1024)} KiB)`;
  $("describe-preview").hidden = false;
}

function clearImage() {
  if (image) URL.revokeObjectURL(image.objectUrl);
  image = null;
  $("describe-file").value = "";
  $("describe-preview").hidden = true;
}

function setBusy(busy) {
  $("describe-send").disabled = busy;
  $("describe-stop").disabled = !busy;
  $("describe-answer").setAttribute("aria-busy", String(busy));
}

async function ask() {
  if (controller) return;
  const answer = $("describe-answer");
  const stats = $("describe-stats");
  stats.textContent = "";
  if (!image) {
    answer.textContent = t("describe.noimage");
    return;
  }
  const question = $("describe-question").value.trim() || t("describe.default");
  const body = {
    messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: image.dataUrl } }, { type: "text", text: question }] }],
    stream: true,
    stream_options: { include_usage: true },
    temperature: Number($("describe-temperature").value || 0),
  };
  if ($("describe-model").value) body.model = $("describe-model").value;
  if ($("describe-max-tokens").value) body.max_tokens = Number($("describe-max-tokens").value);

  let text = "";
  let finish = "";
  let usage = null;
  let pending = false;
  const repaint = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      answer.innerHTML = renderMarkdown(text);
    });
  };
  answer.replaceChildren();
  answer.classList.add("streaming");
  controller = new AbortController();
  setBusy(true);
  const started = performance.now();
  const notes = [];
  try {
    await streamJson(
      "/v1/chat/completions",
      body,
      (event) => {
        if (event.usage) usage = event.usage;
        const choice = event.choices && event.choices[0];
        if (!choice) return;
        if (choice.delta && choice.delta.content) text += choice.delta.content;
        if (choice.finish_reason) finish = choice.finish_reason;
        repaint();
      },
      controller.signal,
    );
  } catch (e) {
    if (e.name === "AbortError") notes.push(t("common.stopped"));
    else notes.push(e.message);
  } finally {
    controller = null;
    setBusy(false);
    answer.classList.remove("streaming");
    answer.innerHTML = renderMarkdown(text);
    addCopyButtons(answer);
    const seconds = (performance.now() - started) / 1000;
    if (usage) notes.unshift(t("chat.stats", { tokens: usage.completion_tokens, rate: (usage.completion_tokens / seconds).toFixed(1) }));
    if (finish) notes.push(t("chat.finish", { reason: finish }));
    stats.textContent = notes.join(" · ");
    answer.dataset.done = "1";
  }
}

export function initDescribe() {
  $("describe-question").value = t("describe.default");
  wireDropZone($("describe-drop"), $("describe-file"), isImage, useImage, () => visible);
  $("describe-clear").addEventListener("click", clearImage);
  $("describe-form").addEventListener("submit", (e) => {
    e.preventDefault();
    delete $("describe-answer").dataset.done;
    ask();
  });
  $("describe-question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("describe-form").requestSubmit();
    }
  });
  $("describe-stop").addEventListener("click", () => controller && controller.abort());
  setBusy(false);
  return {
    setModels: (models) => fillModelSelect($("describe-model"), models, isVisionModel, "mmserve.describe.model"),
    visible: (on) => (visible = on),
  };
}
