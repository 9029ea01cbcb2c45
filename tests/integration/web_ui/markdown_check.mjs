// The page's Markdown renderer (web/markdown.js, pure functions) checked in Node: markup in
// model output stays text, links keep only safe schemes, the common constructs render.
//   node markdown_check.mjs PATH/markdown.mjs   (a copy named .mjs: web/ has no package.json)
// Exit 1 on a failure.
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";

const { renderMarkdown, escapeHtml } = await import(pathToFileURL(process.argv[2]).href);

const md = (s) => renderMarkdown(s);
assert.equal(escapeHtml(`<a href="x">'&'</a>`), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
// markup from the model is text, everywhere
for (const evil of ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "**<b>bold</b>**", "`<i>`", "```\n</code></pre><script>x</script>\n```", "> <iframe>"]) {
  const html = md(evil);
  assert.ok(!/<(script|img|iframe|b|i)[\s>]/i.test(html), `${evil} -> ${html}`);
}
// links: http(s) and mailto only; no attribute breakout
assert.equal(md("[a](https://example.com/x?a=1&b=2)"), '<p><a href="https://example.com/x?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">a</a></p>');
assert.equal(md("[a](javascript:alert(1))"), "<p>[a](javascript:alert(1))</p>");
assert.ok(!md('[a](https://x.com/"onmouseover="alert(1))').includes('"onmouseover'));
// constructs
assert.equal(md("# Title"), "<h3>Title</h3>");
assert.equal(md("**b** and *i* and `c` and ~~s~~"), "<p><strong>b</strong> and <em>i</em> and <code>c</code> and <del>s</del></p>");
assert.equal(md("- a\n- b"), "<ul><li>a</li><li>b</li></ul>");
assert.equal(md("1. a\n2. b"), "<ol><li>a</li><li>b</li></ol>");
assert.equal(md("```js\nlet a = 1 < 2;\n```"), '<div class="code-block"><span class="code-lang">js</span><pre><code class="language-js">let a = 1 &lt; 2;</code></pre></div>');
// a fence still streaming renders as code up to the end
assert.equal(md("text\n```py\nprint(1)"), '<p>text</p>\n<div class="code-block"><span class="code-lang">py</span><pre><code class="language-py">print(1)</code></pre></div>');
assert.equal(md("a\nb\n\nc"), "<p>a<br>b</p>\n<p>c</p>");
assert.equal(md("> quoted & <x>"), "<blockquote><p>quoted &amp; &lt;x&gt;</p></blockquote>");
assert.equal(md("snake_case_name stays"), "<p>snake_case_name stays</p>");
assert.equal(md("***"), "<hr>");
assert.equal(md("x\u0000 0\u0000 y"), "<p>x 0 y</p>");
console.log("ok");
