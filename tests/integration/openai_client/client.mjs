// Drives mmserve with OpenAI's official client, exactly as an application would, and prints
// what it got as JSON for the pytest wrapper to check. Usage: node client.mjs BASE_URL
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "unused", maxRetries: 0 });
const out = {};

// `node client.mjs BASE_URL embeddings MODEL`: client.embeddings.create only (a server with an
// embedding model). The client asks for base64 by default and decodes it itself.
if (process.argv[3] === "embeddings") {
  const model = process.argv[4];
  const one = await client.embeddings.create({ model, input: "hello world" });
  const many = await client.embeddings.create({ model, input: ["the cat sat", "hello world"], encoding_format: "float" });
  const short = await client.embeddings.create({ model, input: "hello world", dimensions: 16 });
  const vec = (r) => r.data.map((d) => ({ index: d.index, object: d.object, embedding: Array.from(d.embedding) }));
  out.one = { object: one.object, model: one.model, data: vec(one), usage: one.usage };
  out.many = { data: vec(many), usage: many.usage };
  out.short = { data: vec(short) };
  try {
    await client.embeddings.create({ model, input: "" });
    out.error = null;
  } catch (e) {
    out.error = { status: e.status, param: e.param, type: e.type };
  }
  console.log(JSON.stringify(out));
  process.exit(0);
}

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

const chat = await client.chat.completions.create({
  model: out.models[0],
  messages: [{ role: "system", content: "Tell stories." }, { role: "user", content: "Once upon a time" }],
  max_completion_tokens: 16,
  temperature: 0,
  seed: 7,
});
out.chat = { text: chat.choices[0].message.content, finish: chat.choices[0].finish_reason, usage: chat.usage };

const stream = await client.chat.completions.create({
  model: out.models[0],
  messages: [{ role: "system", content: "Tell stories." }, { role: "user", content: "Once upon a time" }],
  max_tokens: 16,
  temperature: 0,
  seed: 7,
  stream: true,
  stream_options: { include_usage: true },
});
let streamed = "";
let streamUsage = null;
let streamFinish = null;
for await (const chunk of stream) {
  if (chunk.usage) streamUsage = chunk.usage;
  for (const choice of chunk.choices) {
    streamed += choice.delta?.content ?? "";
    if (choice.finish_reason) streamFinish = choice.finish_reason;
  }
}
out.chat_stream = { text: streamed, finish: streamFinish, usage: streamUsage };

const completion = await client.completions.create({
  model: out.models[0],
  prompt: "Once upon a time",
  max_tokens: 24,
  temperature: 0,
});
out.completion = { text: completion.choices[0].text, finish: completion.choices[0].finish_reason };

try {
  await client.chat.completions.create({ model: out.models[0], messages: [], max_tokens: 4 });
  out.error = null;
} catch (e) {
  out.error = { status: e.status, param: e.param, type: e.type, message: e.message };
}

console.log(JSON.stringify(out));
