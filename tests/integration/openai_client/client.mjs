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

// `node client.mjs BASE_URL transcribe AUDIO`: audio.transcriptions.create, plain and with
// stream: true (a server with a speech model).
if (process.argv[3] === "transcribe") {
  const fs = await import("node:fs");
  const file = () => fs.createReadStream(process.argv[4]);
  const plain = await client.audio.transcriptions.create({ model: "whisper-1", file: file(), language: "en" });
  const stream = await client.audio.transcriptions.create({
    model: "whisper-1", file: file(), language: "en", stream: true,
  });
  const types = [];
  let deltas = "";
  let done = null;
  for await (const event of stream) {
    types.push(event.type);
    if (event.type === "transcript.text.delta") deltas += event.delta;
    if (event.type === "transcript.text.done") done = event;
  }
  out.transcribe = { plain: plain.text, deltas, done: done?.text, types, usage: done?.usage };
  console.log(JSON.stringify(out));
  process.exit(0);
}

// `node client.mjs BASE_URL formats`: structured output, tools and the Responses API (a
// server with a synthetic model of a real context length).
if (process.argv[3] === "formats") {
  const schema = {
    type: "object",
    properties: { name: { type: "string", maxLength: 10 }, age: { type: "integer", minimum: 0, maximum: 120 } },
    required: ["name", "age"],
    additionalProperties: false,
  };
  const structured = await client.chat.completions.create({
    messages: [{ role: "user", content: "A person." }],
    response_format: { type: "json_schema", json_schema: { name: "person", schema, strict: true } },
    temperature: 1,
    seed: 3,
    max_tokens: 400,
  });
  out.structured = { content: structured.choices[0].message.content, finish: structured.choices[0].finish_reason };

  const tools = [{
    type: "function",
    function: { name: "get_weather", description: "Weather in a city", parameters: {
      type: "object", properties: { city: { type: "string", maxLength: 10 } }, required: ["city"] } },
  }];
  const called = await client.chat.completions.create({
    messages: [{ role: "user", content: "Weather in Paris?" }],
    tools, tool_choice: "required", parallel_tool_calls: false, temperature: 1, seed: 4, max_tokens: 400,
    cache_prompt: false,
  });
  const message = called.choices[0].message;
  out.tools = { finish: called.choices[0].finish_reason, calls: message.tool_calls };

  // The tool's result goes back, and the conversation goes on.
  const followed = await client.chat.completions.create({
    messages: [{ role: "user", content: "Weather in Paris?" }, message,
               { role: "tool", tool_call_id: message.tool_calls[0].id, content: '{"temp": 21}' }],
    tools, max_tokens: 8,
  });
  out.followed = { finish: followed.choices[0].finish_reason };

  const toolStream = await client.chat.completions.create({
    messages: [{ role: "user", content: "Weather in Paris?" }],
    tools, tool_choice: "required", parallel_tool_calls: false, temperature: 1, seed: 4, max_tokens: 400,
    stream: true, cache_prompt: false,
  });
  const streamed = {};
  for await (const chunk of toolStream) {
    for (const d of chunk.choices[0]?.delta?.tool_calls ?? []) {
      streamed[d.index] ??= { name: "", arguments: "" };
      streamed[d.index].name += d.function?.name ?? "";
      streamed[d.index].arguments += d.function?.arguments ?? "";
    }
  }
  out.tool_stream = Object.values(streamed);

  const response = await client.responses.create({
    input: "Once upon a time", instructions: "Tell a story.", max_output_tokens: 12, temperature: 0,
  });
  out.response = { text: response.output_text, status: response.status, usage: response.usage };
  const responseStream = await client.responses.create({
    input: "Once upon a time", instructions: "Tell a story.", max_output_tokens: 12, temperature: 0, stream: true,
  });
  let deltas = "";
  const types = [];
  for await (const event of responseStream) {
    types.push(event.type);
    if (event.type === "response.output_text.delta") deltas += event.delta;
  }
  out.response_stream = { text: deltas, first: types[0], last: types[types.length - 1] };
  const responseCall = await client.responses.create({
    input: "Weather in Paris?", tools: [{ type: "function", ...tools[0].function }], tool_choice: "required",
    parallel_tool_calls: false, temperature: 1, seed: 4, max_output_tokens: 400,
  });
  out.response_call = responseCall.output.filter((i) => i.type === "function_call")
    .map((i) => ({ name: i.name, arguments: i.arguments }));
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
