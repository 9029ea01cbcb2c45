// Drives mmserve's built-in page in Debian's chromium (headless) through playwright-core,
// against a real server: the key prompt, chat (streams and stops), describe, transcribe (a file
// and the microphone), status; desktop and phone widths; the Chinese interface. Prints one JSON
// object of what it saw for test_web_ui.py to check against the API itself; any failed
// expectation here throws (exit 1) with what was expected.
//
//   node drive.mjs '{"url": ..., "key": ..., "image": ..., "audio": ..., "out": DIR, "chromium": PATH}'
import { chromium } from "playwright-core";
import path from "node:path";
import fs from "node:fs";

const cfg = JSON.parse(process.argv[2]);
const result = { steps: [] };
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

function expect(cond, what) {
  if (!cond) throw new Error(`expected: ${what}`);
}

const shot = async (page, name) => {
  const file = path.join(cfg.out, `${name}.png`);
  await page.screenshot({ path: file });
  (result.screenshots ||= []).push(file);
};

const text = (page, sel) => page.locator(sel).innerText();

async function selectTab(page, name) {
  await page.click(`#tab-${name}`);
  await page.waitForSelector(`#view-${name}:not([hidden])`);
}

async function setKeyThroughDialog(page, key) {
  await page.click("#key-button");
  await page.fill("#key-input", key);
  await page.click("#key-save");
}

const browser = await chromium.launch({
  executablePath: cfg.chromium,
  headless: true,
  // root in a container has no user namespaces for the sandbox; the fake devices give a
  // microphone (a beep) without a prompt.
  args: ["--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
});
// cfg.keys: {full, speech} keys of a --db server (`mmserve keys create`): the full key chats;
// the speech-only key is refused the chat with the server's 403 message.
async function databaseKeys() {
  const context = await browser.newContext({ viewport: DESKTOP, locale: "en-US" });
  const page = await context.newPage();
  await page.goto(cfg.url);
  await page.waitForSelector("#banner:not([hidden])");
  await setKeyThroughDialog(page, cfg.keys.speech);
  await page.waitForFunction(() => document.querySelector("#chat-model option")?.value);
  await page.fill("#chat-max-tokens", "4");
  await page.fill("#chat-input", "Hi");
  await page.press("#chat-input", "Enter");
  await page.waitForSelector(".msg-assistant .msg-error");
  result.scoped_error = await text(page, ".msg-assistant .msg-error");
  await setKeyThroughDialog(page, cfg.keys.full);
  await page.click("#chat-new");
  await page.fill("#chat-input", "Hi");
  await page.press("#chat-input", "Enter");
  await page.waitForFunction(() => /finish: length/.test(document.querySelector(".msg-assistant:last-child .stats")?.textContent || ""));
  result.full_key_note = await page.locator(".msg-assistant >> nth=-1 >> .stats").innerText();
  result.steps.push("db-keys");
  await context.close();
}

try {
  if (cfg.keys) {
    await databaseKeys();
    console.log(JSON.stringify(result));
    process.exit(0);
  }
  const context = await browser.newContext({ viewport: DESKTOP, locale: "en-US", acceptDownloads: true, permissions: ["microphone"] });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  page.on("pageerror", (e) => consoleErrors.push(String(e)));

  // --- no key, then a wrong key: a clear message; then the right key ---
  await page.goto(cfg.url);
  await page.waitForSelector("body[data-ready='1']");
  await page.waitForSelector("#banner:not([hidden])");
  result.no_key_message = await text(page, "#banner-text");
  expect(/refused the API key/.test(result.no_key_message), `a key message, got ${result.no_key_message}`);
  const refused = page.waitForResponse((r) => r.url().endsWith("/v1/models") && r.status() === 401 && r.request().headers()["authorization"] === "Bearer wrong-key");
  await setKeyThroughDialog(page, "wrong-key");
  await refused;
  await page.waitForFunction(() => !document.getElementById("banner").hidden && /refused/.test(document.getElementById("banner-text").textContent));
  result.wrong_key_message = await text(page, "#banner-text");
  await shot(page, "key-error-desktop");
  await setKeyThroughDialog(page, cfg.key);
  await page.waitForFunction(() => document.querySelector("#chat-model option")?.value);
  expect(await page.locator("#banner").isHidden(), `the banner gone once the key is right: ${await page.locator("#banner-text").innerText()}`);
  result.chat_models = await page.locator("#chat-model option").evaluateAll((os) => os.map((o) => o.value));
  result.steps.push("key");

  // --- keyboard: arrows move between tabs ---
  await page.focus("#tab-chat");
  await page.keyboard.press("ArrowRight");
  expect((await page.getAttribute("#tab-describe", "aria-selected")) === "true", "ArrowRight selects Describe");
  await page.keyboard.press("ArrowLeft");
  expect((await page.getAttribute("#tab-chat", "aria-selected")) === "true", "ArrowLeft back to Chat");
  result.steps.push("keyboard");

  // --- chat: a long answer streams, Stop stops it ---
  await page.fill("#chat-max-tokens", "3000");
  await page.fill("#chat-system", "You are a helpful assistant.");
  await page.fill("#chat-input", "Tell me a long story.");
  await page.press("#chat-input", "Enter");
  const body = ".msg-assistant >> nth=-1 >> .msg-body";
  await page.waitForFunction(() => document.querySelector(".msg-assistant:last-child .msg-body")?.textContent.length >= 20);
  expect(await page.isEnabled("#chat-stop"), "Stop enabled while streaming");
  const before = (await page.locator(body).innerText()).length;
  await page.waitForFunction((n) => document.querySelector(".msg-assistant:last-child .msg-body").textContent.length > n, before);
  result.streamed_growth = true;
  await page.click("#chat-stop");
  await page.waitForSelector("#chat-stop:disabled");
  const stoppedLength = (await page.locator(body).innerText()).length;
  await page.waitForTimeout(1500);
  const laterLength = (await page.locator(body).innerText()).length;
  expect(laterLength === stoppedLength, `no text after Stop (${stoppedLength} then ${laterLength})`);
  result.stopped_note = await page.locator(".msg-assistant >> nth=-1 >> .stats").innerText();
  expect(/stopped/.test(result.stopped_note), `a 'stopped' note, got ${result.stopped_note}`);
  result.stopped_chars = stoppedLength;
  // the server freed the sequence: nothing running a moment later
  result.running_after_stop = await page.evaluate(async () => {
    for (let i = 0; i < 50; i++) {
      const h = await (await fetch("/health")).json();
      const running = Object.values(h.models || {}).reduce((a, m) => a + (m.running || 0), 0);
      if (running === 0) return 0;
      await new Promise((r) => setTimeout(r, 100));
    }
    return -1;
  });
  // a short answer to the end: its finish reason and tokens/s
  await page.fill("#chat-max-tokens", "12");
  await page.fill("#chat-input", "And a short one?");
  await page.click("#chat-send");
  await page.waitForFunction(() => /finish: length/.test(document.querySelector(".msg-assistant:last-child .stats")?.textContent || ""));
  result.finished_note = await page.locator(".msg-assistant >> nth=-1 >> .stats").innerText();
  result.steps.push("chat");
  await shot(page, "chat-desktop");

  // conversations survive a reload (localStorage)
  await page.reload();
  await page.waitForSelector("body[data-ready='1']");
  result.messages_after_reload = await page.locator("#chat-log .msg").count();
  result.history_items = await page.locator("#chat-history li").count();
  expect(result.messages_after_reload === 4, `4 messages after reload, got ${result.messages_after_reload}`);

  // --- reasoning and Markdown: the API's reasoning_content field is not served yet, so this
  // step answers the page's request itself (page.route) to check the rendering ---
  await page.route("**/v1/chat/completions", (route) => {
    const events = [
      { choices: [{ index: 0, delta: { role: "assistant", reasoning_content: "The user wants code. " } }] },
      { choices: [{ index: 0, delta: { reasoning_content: "A loop will do." } }] },
      { choices: [{ index: 0, delta: { content: "Here is **Python**:\n\n```python\nfor i in range(3):\n    print(i)\n```\n" } }] },
      { choices: [{ index: 0, delta: { content: "- <script>window.__pwned = 1</script> stays text\n- `inline`" }, finish_reason: "stop" }] },
    ];
    route.fulfill({ status: 200, contentType: "text/event-stream", body: events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join("") + "data: [DONE]\n\n" });
  });
  await page.click("#chat-new");
  await page.fill("#chat-input", "Write a loop.");
  await page.press("#chat-input", "Enter");
  await page.waitForFunction(() => /finish: stop/.test(document.querySelector(".msg-assistant:last-child .stats")?.textContent || ""));
  const last = page.locator(".msg-assistant >> nth=-1");
  result.reasoning_folded = !(await last.locator("details.reasoning").evaluate((d) => d.open));
  result.reasoning_text = await last.locator("details.reasoning .markdown").textContent();
  result.code_block = await last.locator(".code-block code.language-python").textContent();
  result.script_elements = await last.locator("script").count();
  result.pwned = await page.evaluate(() => window.__pwned === 1);
  result.strong = await last.locator(".msg-body strong").textContent();
  await last.locator("details.reasoning summary").click();
  await shot(page, "chat-reasoning-desktop");
  await page.unroute("**/v1/chat/completions");
  result.steps.push("reasoning");

  // --- describe: an image and a question, streamed ---
  await selectTab(page, "describe");
  await page.setInputFiles("#describe-file", cfg.image);
  await page.waitForSelector("#describe-preview:not([hidden])");
  await page.fill("#describe-question", "What is in this picture?");
  await page.fill("#describe-temperature", "0");
  await page.fill("#describe-max-tokens", "16");
  // what the page sent and what came back, for the test to replay against the API
  const describeResponse = page.waitForResponse((r) => r.url().endsWith("/v1/chat/completions") && r.request().method() === "POST", { timeout: 120000 });
  await page.click("#describe-send");
  await page.waitForSelector("#describe-answer[data-done='1']", { timeout: 120000 });
  const described = await describeResponse;
  result.describe_request = described.request().postDataJSON();
  result.describe_sse = await described.text();
  result.describe_answer = await page.locator("#describe-answer").textContent();
  result.describe_stats = await text(page, "#describe-stats");
  result.describe_model = await page.inputValue("#describe-model");
  result.steps.push("describe");
  await shot(page, "describe-desktop");

  // --- transcribe: a file, progress, the transcript and its downloads ---
  await selectTab(page, "transcribe");
  await page.evaluate(() => {
    window.__statusLog = [];
    new MutationObserver(() => window.__statusLog.push(document.getElementById("transcribe-status").textContent)).observe(document.getElementById("transcribe-status"), { childList: true, characterData: true, subtree: true });
  });
  await page.setInputFiles("#transcribe-file", cfg.audio);
  await page.click("#transcribe-start");
  await page.waitForSelector("#transcribe-status[data-state]", { timeout: 180000 });
  result.transcribe_state = await page.getAttribute("#transcribe-status", "data-state");
  result.transcribe_status = await text(page, "#transcribe-status");
  expect(result.transcribe_state === "done", `a transcript, got ${result.transcribe_status}`);
  result.transcribe_progress = await page.evaluate(() => window.__statusLog);
  result.segment_rows = await page.locator("#transcribe-segments tr").evaluateAll((rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  for (const [id, name] of [["#download-srt", "srt"], ["#download-vtt", "vtt"], ["#download-txt", "txt"]]) {
    const [download] = await Promise.all([page.waitForEvent("download"), page.click(id)]);
    const file = path.join(cfg.out, `download.${name}`);
    await download.saveAs(file);
    result[`download_${name}`] = file;
    result[`download_${name}_name`] = download.suggestedFilename();
  }
  result.steps.push("transcribe");
  await shot(page, "transcribe-desktop");

  // --- the microphone (chromium's fake device: a beep) ---
  await page.click("#transcribe-record");
  await page.waitForFunction(() => document.getElementById("transcribe-record").getAttribute("aria-pressed") === "true");
  await page.waitForTimeout(2500);
  await page.click("#transcribe-record");
  await page.waitForFunction(() => /recording-/.test(document.getElementById("transcribe-name").textContent));
  result.recording_name = await text(page, "#transcribe-name");
  await page.evaluate(() => document.getElementById("transcribe-status").removeAttribute("data-state"));
  await page.click("#transcribe-start");
  await page.waitForSelector("#transcribe-status[data-state]", { timeout: 180000 });
  result.recording_state = await page.getAttribute("#transcribe-status", "data-state");
  result.recording_status = await text(page, "#transcribe-status");
  result.steps.push("microphone");

  // --- status: models, queue, tokens/s, memory, live while a long answer streams ---
  await selectTab(page, "status");
  await page.waitForFunction(() => document.querySelectorAll("#status-models tr").length >= 2);
  const firstUpdate = await text(page, "#status-updated");
  await page.waitForFunction((t) => document.getElementById("status-updated").textContent !== t, firstUpdate, { timeout: 10000 });
  await page.evaluate((key) => {
    window.__load = new AbortController();
    fetch("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}` },
      body: JSON.stringify({ messages: [{ role: "user", content: "Go on." }], max_tokens: 3000, stream: true }),
      signal: window.__load.signal,
    }).then(async (r) => {
      window.__loadState = `HTTP ${r.status}`;
      const reader = r.body.getReader();
      while (!(await reader.read()).done);
      window.__loadState += " ended";
    }).catch((e) => (window.__loadState = String(e)));
  }, cfg.key);
  const cards = () => page.locator("#status-cards .card").evaluateAll((cs) => Object.fromEntries(cs.map((c) => [c.dataset.metric, c.querySelector(".card-value").textContent])));
  const waitCards = async (what, fn, arg) => {
    try {
      await page.waitForFunction(fn, arg, { timeout: 20000 });
    } catch (e) {
      throw new Error(`${what}; last seen ${JSON.stringify(await cards())}, ${await page.evaluate(() => window.__loadState)} (${e.message})`);
    }
    return cards();
  };
  // (functions, not strings: the page's Content-Security-Policy forbids evaluating strings)
  const cardIs = ([name, op, value]) => {
    const v = document.querySelector(`[data-metric="${name}"] .card-value`)?.textContent;
    return op === "eq" ? v === value : Number(v) > value;
  };
  result.status_running = await waitCards("one running request while a stream runs", cardIs, ["running", "eq", "1"]);
  await page.evaluate(() => window.__load.abort());
  // the server counts a request's tokens when it ends: one that ends now shows in tokens/s
  await page.evaluate((key) => fetch("/v1/chat/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}` },
    body: JSON.stringify({ messages: [{ role: "user", content: "Once more." }], max_tokens: 64 }),
  }), cfg.key);
  result.status_live = await waitCards("tokens/s above 0 after a request ended", cardIs, ["tokens", "gt", 0]);
  await shot(page, "status-desktop");
  result.status_cards = await page.locator("#status-cards .card").evaluateAll((cs) => Object.fromEntries(cs.map((c) => [c.dataset.metric, c.querySelector(".card-value").textContent])));
  result.status_models = await page.locator("#status-models tr").evaluateAll((rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  result.steps.push("status");

  // --- phone width: every view ---
  await selectTab(page, "chat");
  await page.locator(".history-item", { hasText: "Tell me a long story." }).click(); // the real conversation
  await page.setViewportSize(PHONE);
  for (const view of ["chat", "describe", "transcribe", "status"]) {
    await selectTab(page, view);
    await page.waitForTimeout(300);
    result[`${view}_phone_overflow`] = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await shot(page, `${view}-phone`);
  }
  result.steps.push("phone");
  result.console_errors = consoleErrors;
  await context.close();

  // --- Chinese: the browser's language ---
  const zh = await browser.newContext({ viewport: DESKTOP, locale: "zh-CN" });
  const zpage = await zh.newPage();
  await zpage.goto(cfg.url);
  await zpage.waitForSelector("#banner:not([hidden])");
  result.zh_tabs = await zpage.locator('[role="tab"]').allInnerTexts();
  result.zh_key_message = await text(zpage, "#banner-text");
  result.zh_lang = await zpage.getAttribute("html", "lang");
  await zpage.evaluate((key) => localStorage.setItem("mmserve.apiKey", key), cfg.key);
  await zpage.goto(`${cfg.url}/#status`);
  await zpage.reload();
  await zpage.waitForFunction(() => document.querySelectorAll("#status-models tr").length >= 2);
  await shot(zpage, "status-zh-desktop");
  await zh.close();
  result.steps.push("zh");
} finally {
  await browser.close();
}
fs.writeFileSync(path.join(cfg.out, "result.json"), JSON.stringify(result, null, 1));
console.log(JSON.stringify(result));
