// A small Markdown renderer for model answers: fenced and inline code, headings, emphasis,
// lists, quotes, rules, links and paragraphs. Safety first: every piece of the source is
// HTML-escaped before any markup is added, and links keep only http(s) and mailto targets, so
// a model (or a prompt injected into it) can never put markup or script into the page.
// Pure functions: the page and the tests (Node) import the same module.

export function escapeHtml(s) {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

// Inline markup of one escaped line: code spans first (their content is left alone), then
// links, bold, italics, strikethrough.
function inline(escaped) {
  const codes = [];
  let s = escaped.replace(/`([^`]+)`/g, (m, code) => {
    codes.push(code);
    return `\u0000${codes.length - 1}\u0000`;
  });
  s = s.replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, (m, text, url) => {
    // `url` is already escaped (no quotes or angle brackets can remain in it).
    if (!/^(https?:\/\/|mailto:)/i.test(url)) return m;
    return `<a href="${url}" target="_blank" rel="noopener noreferrer">${text}</a>`;
  });
  s = s.replace(/\*\*(.+?)\*\*/g, "<strong>$1</strong>").replace(/__(.+?)__/g, "<strong>$1</strong>");
  s = s.replace(/(^|[^*])\*([^*\s][^*]*?)\*/g, "$1<em>$2</em>");
  s = s.replace(/(^|[^\w])_([^_\s][^_]*?)_(?!\w)/g, "$1<em>$2</em>");
  s = s.replace(/~~(.+?)~~/g, "<del>$1</del>");
  return s.replace(/\u0000(\d+)\u0000/g, (m, i) => `<code>${codes[Number(i)]}</code>`);
}

// Markdown `source` to HTML. An unterminated code fence (an answer still streaming) renders
// as a code block up to the end.
export function renderMarkdown(source) {
  const lines = escapeHtml(String(source).replace(/\u0000/g, "")).replace(/\r\n?/g, "\n").split("\n");
  const out = [];
  let paragraph = [];
  let list = null; // {tag: "ul"|"ol", items: []}
  let quote = [];

  const flushParagraph = () => {
    if (paragraph.length) out.push(`<p>${paragraph.map(inline).join("<br>")}</p>`);
    paragraph = [];
  };
  const flushList = () => {
    if (list) out.push(`<${list.tag}>${list.items.map((i) => `<li>${inline(i)}</li>`).join("")}</${list.tag}>`);
    list = null;
  };
  const flushQuote = () => {
    if (quote.length) out.push(`<blockquote>${renderMarkdown(unescapeForNesting(quote.join("\n")))}</blockquote>`);
    quote = [];
  };
  const flushAll = () => {
    flushParagraph();
    flushList();
    flushQuote();
  };

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = line.match(/^\s*(```|~~~)\s*([\w+#.-]*)\s*$/);
    if (fence) {
      flushAll();
      const code = [];
      let j = i + 1;
      while (j < lines.length && !lines[j].trim().startsWith(fence[1])) code.push(lines[j++]);
      const cls = fence[2] ? ` class="language-${fence[2]}"` : "";
      const label = fence[2] ? `<span class="code-lang">${fence[2]}</span>` : "";
      out.push(`<div class="code-block">${label}<pre><code${cls}>${code.join("\n")}</code></pre></div>`);
      i = j; // the closing fence (or past the end)
      continue;
    }
    if (/^\s*$/.test(line)) {
      flushAll();
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    if (heading) {
      flushAll();
      const level = Math.min(heading[1].length + 2, 6); // h3..h6: answers sit under the page's headings
      out.push(`<h${level}>${inline(heading[2])}</h${level}>`);
      continue;
    }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      flushAll();
      out.push("<hr>");
      continue;
    }
    const q = line.match(/^\s*&gt;\s?(.*)$/);
    if (q) {
      flushParagraph();
      flushList();
      quote.push(q[1]);
      continue;
    }
    flushQuote();
    const bullet = line.match(/^\s*[-*+]\s+(.*)$/);
    const numbered = line.match(/^\s*\d+[.)]\s+(.*)$/);
    if (bullet || numbered) {
      flushParagraph();
      const tag = bullet ? "ul" : "ol";
      if (list && list.tag !== tag) flushList();
      if (!list) list = { tag, items: [] };
      list.items.push((bullet || numbered)[1]);
      continue;
    }
    if (list && /^\s{2,}\S/.test(line)) {
      list.items[list.items.length - 1] += " " + line.trim();
      continue;
    }
    flushList();
    paragraph.push(line);
  }
  flushAll();
  return out.join("\n");
}

// A quote's inner lines go through renderMarkdown again, which escapes: undo the first escape
// so that nothing is escaped twice (the text is escaped again at once).
function unescapeForNesting(s) {
  return s.replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&gt;/g, ">").replace(/&lt;/g, "<").replace(/&amp;/g, "&");
}
