// Validates Kubernetes objects offline, as an API server would before storing them, with no
// cluster: each object of the given YAML files (multi-document; "-" is stdin) is checked
//
//   1. against the JSON schema of its apiVersion/kind, with the validators that the npm package
//      kubernetes-models builds from Kubernetes' OpenAPI documents (and its sister packages
//      @kubernetes-models/prometheus-operator and @kubernetes-models/keda, built from those
//      projects' CRDs, for ServiceMonitor and ScaledObject): types, required fields, enums,
//      formats;
//   2. for unknown fields, which those schemas allow (as OpenAPI does) but the API server
//      refuses under kubectl's default --validate=strict: every key of the object must be a
//      property of its type. The property lists are read from the same packages' type
//      declarations (*.d.ts, generated from the same schemas), so both checks share one source.
//
//   3. with a subset of the API server's own validation beyond the schema, for the kinds the chart
//      renders (label syntax, a Deployment's selector matching its template, volume mounts naming
//      volumes, probes naming container ports, HPA target types, ...).
//
// A kind none of the packages knows fails, unless named with --allow-kind (then it is reported
// as "unchecked").
//
//   node tests/deploy/validate_k8s.mjs --modules DIR [--allow-kind KIND]... [--json] FILE...
//
// DIR is the node_modules folder that scripts/k8s_tools.sh installs (from
// tests/deploy/package-lock.json). Exit status: 0 all valid, 1 some invalid, 2 usage or setup.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const PACKAGES = [
  // [API group, package]: the core group is "".
  [(group) => !group.includes(".") || group.endsWith(".k8s.io"), "kubernetes-models"],
  [(group) => group === "monitoring.coreos.com", "@kubernetes-models/prometheus-operator"],
  [(group) => group === "keda.sh" || group === "eventing.keda.sh", "@kubernetes-models/keda"],
];

function usage(msg) {
  process.stderr.write(`validate_k8s: ${msg}\nusage: validate_k8s.mjs --modules DIR [--allow-kind KIND]... [--json] FILE...\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
let modules = process.env.MMSERVE_K8S_NODE_MODULES || "";
const allowKinds = new Set();
const files = [];
let json = false;
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--modules") modules = args[++i];
  else if (args[i] === "--allow-kind") allowKinds.add(args[++i]);
  else if (args[i] === "--json") json = true;
  else if (args[i].startsWith("--")) usage(`unknown option ${args[i]}`);
  else files.push(args[i]);
}
if (!modules) usage("--modules DIR (or MMSERVE_K8S_NODE_MODULES) is required");
if (!fs.existsSync(path.join(modules, "kubernetes-models", "package.json"))) usage(`no kubernetes-models in ${modules}`);
if (files.length === 0) usage("no input files");

const YAML = await import(pathToFileURL(path.join(modules, "yaml", "dist", "index.js")).href);

// ---- the type declarations: a small parser for the generated *.d.ts files -------------------

function tokenize(src) {
  src = src.replace(/\/\*[\s\S]*?\*\//g, " ").replace(/\/\/[^\n]*/g, " ");
  const tokens = [];
  const re = /\s*(?:("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|([A-Za-z_$][A-Za-z0-9_$]*)|(-?[0-9]+(?:\.[0-9]+)?)|(\S))/y;
  let m;
  while (re.lastIndex < src.length && (m = re.exec(src)) !== null) {
    if (m[1] !== undefined) tokens.push({ k: "str", v: m[1].slice(1, -1) });
    else if (m[2] !== undefined) tokens.push({ k: "id", v: m[2] });
    else if (m[3] !== undefined) tokens.push({ k: "num", v: m[3] });
    else if (m[4] !== undefined) tokens.push({ k: "p", v: m[4] });
    else break;
  }
  return tokens;
}

const PRIMITIVES = new Set(["string", "number", "boolean", "null", "undefined", "any", "unknown", "object", "true", "false", "never", "bigint"]);

class Parser {
  constructor(tokens) { this.t = tokens; this.i = 0; }
  peek(o = 0) { return this.t[this.i + o]; }
  is(v, o = 0) { const x = this.peek(o); return x && x.k === "p" && x.v === v; }
  isId(v, o = 0) { const x = this.peek(o); return x && x.k === "id" && x.v === v; }
  next() { return this.t[this.i++]; }
  expect(v) {
    const x = this.next();
    if (!x || x.v !== v) throw new Error(`expected ${v}, got ${x ? x.v : "end"}`);
    return x;
  }
  type() {
    if (this.is("|")) this.next();
    const members = [this.postfix()];
    while (this.is("|")) { this.next(); members.push(this.postfix()); }
    return members.length === 1 ? members[0] : { t: "union", members };
  }
  postfix() {
    let ty = this.primary();
    while (this.is("[")) {
      if (this.is("]", 1)) { this.next(); this.next(); ty = { t: "arr", item: ty }; }
      else { this.next(); this.type(); this.expect("]"); ty = { t: "prim" }; } // T["kind"]
    }
    return ty;
  }
  primary() {
    const x = this.next();
    if (!x) throw new Error("unexpected end of type");
    if (x.k === "str" || x.k === "num") return { t: "prim" };
    if (x.k === "p" && x.v === "{") return this.objectBody();
    if (x.k === "p" && x.v === "(") { const ty = this.type(); this.expect(")"); return ty; }
    if (x.k === "id") {
      if (x.v === "Array" && this.is("<")) { this.next(); const item = this.type(); this.expect(">"); return { t: "arr", item }; }
      if (x.v === "Record" && this.is("<")) { this.next(); this.type(); this.expect(","); const value = this.type(); this.expect(">"); return { t: "obj", props: new Map(), index: value }; }
      if (PRIMITIVES.has(x.v)) return { t: "prim" };
      let name = x.v;
      while (this.is(".")) { this.next(); name += "." + this.next().v; }
      if (this.is("<")) { let depth = 0; do { const y = this.next(); if (y.v === "<") depth++; if (y.v === ">") depth--; } while (depth > 0); }
      return { t: "ref", name };
    }
    throw new Error(`unexpected token ${x.v} in a type`);
  }
  // After "{": members until the matching "}".
  objectBody() {
    const props = new Map();
    let index = null;
    while (!this.is("}")) {
      if (this.isId("readonly")) this.next();
      if (this.is("[")) { // [key: string]: T;
        this.next(); this.next(); this.expect(":"); this.type(); this.expect("]"); this.expect(":");
        index = this.type();
      } else {
        const key = this.next();
        if (this.is("?")) this.next();
        if (this.is("(")) { this.skipBalanced("(", ")"); this.expect(":"); this.type(); } // a method
        else { this.expect(":"); props.set(key.v, this.type()); }
      }
      if (this.is(";") || this.is(",")) this.next();
    }
    this.expect("}");
    return { t: "obj", props, index };
  }
  skipBalanced(open, close) {
    let depth = 0;
    do { const y = this.next(); if (y.v === open) depth++; if (y.v === close) depth--; } while (depth > 0);
  }
}

const dtsCache = new Map();

// The declarations of one file: interfaces, type aliases, exported aliases, imports.
function loadDts(file) {
  if (dtsCache.has(file)) return dtsCache.get(file);
  const decl = { file, interfaces: new Map(), types: new Map(), exported: new Map(), imports: new Map() };
  dtsCache.set(file, decl);
  const p = new Parser(tokenize(fs.readFileSync(file, "utf8")));
  while (p.i < p.t.length) {
    if (p.isId("import")) {
      p.next();
      if (p.isId("type")) p.next();
      if (p.is("{")) {
        p.next();
        const names = [];
        while (!p.is("}")) { const n = p.next().v; if (p.isId("as")) { p.next(); names.push([p.next().v, n]); } else names.push([n, n]); if (p.is(",")) p.next(); }
        p.next();
        p.expect("from");
        const spec = p.next().v;
        for (const [local, remote] of names) decl.imports.set(local, { spec, remote });
      }
      continue;
    }
    if (p.isId("export") && p.isId("interface", 1)) {
      p.next(); p.next();
      const name = p.next().v;
      const bases = [];
      if (p.isId("extends")) {
        p.next();
        while (!p.is("{")) { const b = p.next(); if (b.k === "id") bases.push(b.v); }
      }
      p.expect("{");
      decl.interfaces.set(name, { body: p.objectBody(), bases });
      continue;
    }
    if (p.isId("export") && p.isId("type", 1) && p.is("{", 2)) { // export type { IFoo as IIoK8s..., ... }
      p.next(); p.next(); p.next();
      while (!p.is("}")) { const local = p.next().v; let as = local; if (p.isId("as")) { p.next(); as = p.next().v; } decl.exported.set(as, local); if (p.is(",")) p.next(); }
      p.next();
      continue;
    }
    if (p.isId("export") && p.isId("type", 1)) {
      p.next(); p.next();
      const name = p.next().v;
      if (p.is("<")) p.skipBalanced("<", ">");
      p.expect("=");
      decl.types.set(name, p.type());
      continue;
    }
    if (p.is("{")) { p.skipBalanced("{", "}"); continue; } // class bodies and the like
    p.next();
  }
  return decl;
}

function resolveSpec(fromFile, spec) {
  if (spec === "@kubernetes-models/base") return null; // TypeMeta, Model: apiVersion and kind only
  let base;
  if (spec.startsWith(".")) base = path.resolve(path.dirname(fromFile), spec);
  else base = path.join(modules, spec);
  base = base.replace(/\.js$/, "");
  for (const candidate of [base + ".d.ts", path.join(base, "index.d.ts")]) if (fs.existsSync(candidate)) return candidate;
  throw new Error(`cannot find the declarations of ${spec} (from ${fromFile})`);
}

// A named type, seen from a file: {t: "obj"|...} with interface bases merged.
const resolved = new Map();
function resolveName(decl, name) {
  const key = decl.file + "#" + name;
  if (resolved.has(key)) return resolved.get(key);
  const placeholder = { t: "obj", props: new Map(), index: null };
  resolved.set(key, placeholder); // recursive types (JSONSchemaProps) refer to themselves
  let out;
  if (decl.exported.has(name) && decl.exported.get(name) !== name) out = resolveName(decl, decl.exported.get(name));
  else if (decl.interfaces.has(name)) {
    const { body, bases } = decl.interfaces.get(name);
    const props = new Map();
    let index = null;
    for (const b of bases) {
      const bt = resolveName(decl, b);
      if (bt && bt.t === "obj") { for (const [k, v] of bt.props) props.set(k, v); index = index || bt.index; }
    }
    for (const [k, v] of body.props) props.set(k, { ty: v, decl });
    if (body.index) index = { ty: body.index, decl };
    out = { t: "obj", props, index, decl };
  } else if (decl.types.has(name)) out = bind(decl.types.get(name), decl);
  else if (decl.imports.has(name)) {
    const { spec, remote } = decl.imports.get(name);
    const file = resolveSpec(decl.file, spec);
    out = file === null ? { t: "prim" } : resolveName(loadDts(file), remote);
  } else throw new Error(`cannot resolve the type ${name} in ${decl.file}`);
  Object.assign(placeholder, out);
  return placeholder;
}

// Attaches the declaring file to a parsed type, so references resolve where they were written.
function bind(ty, decl) {
  switch (ty.t) {
    case "ref": return resolveName(decl, ty.name);
    case "arr": return { t: "arr", item: { ty: ty.item, decl } };
    case "union": return { t: "union", members: ty.members.map((m) => ({ ty: m, decl })) };
    case "obj": {
      const props = new Map();
      for (const [k, v] of ty.props) props.set(k, { ty: v, decl });
      return { t: "obj", props, index: ty.index && { ty: ty.index, decl }, decl };
    }
    default: return ty;
  }
}
const view = (slot) => (slot.ty && slot.decl ? bind(slot.ty, slot.decl) : slot);

function unknownFields(data, ty, where, errors) {
  if (data === null || typeof data !== "object") return;
  if (ty.t === "union") {
    const shapes = ty.members.map(view).filter((m) => (Array.isArray(data) ? m.t === "arr" : m.t === "obj"));
    if (shapes.length === 1) unknownFields(data, shapes[0], where, errors);
    return; // primitives, or several shapes: the schema check decides
  }
  if (ty.t === "arr" && Array.isArray(data)) {
    data.forEach((item, i) => unknownFields(item, view(ty.item), `${where}[${i}]`, errors));
    return;
  }
  if (ty.t === "obj" && !Array.isArray(data)) {
    for (const [k, v] of Object.entries(data)) {
      const at = where ? `${where}.${k}` : k;
      if (ty.props.has(k)) unknownFields(v, view(ty.props.get(k)), at, errors);
      else if (ty.index) unknownFields(v, view(ty.index), at, errors);
      else if (ty.props.size > 0) errors.push(`${at}: unknown field "${k}"`);
    }
  }
}

// ---- what the API server checks beyond the OpenAPI schema (a subset: the rules that apply to
// the kinds the chart renders; k8s.io/apimachinery validation and pkg/apis/*/validation) ------

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_KEY_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

function checkLabels(labels, at, errors) {
  for (const [k, v] of Object.entries(labels || {})) {
    const slash = k.lastIndexOf("/");
    const prefix = slash >= 0 ? k.slice(0, slash) : "";
    const name = slash >= 0 ? k.slice(slash + 1) : k;
    if (!(name.length <= 63 && LABEL_KEY_NAME.test(name)) || (slash >= 0 && !(prefix.length <= 253 && /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(prefix))))
      errors.push(`${at}: invalid label key "${k}"`);
    if (typeof v !== "string" || v.length > 63 || !LABEL_VALUE.test(v)) errors.push(`${at}.${k}: invalid label value ${JSON.stringify(v)}`);
  }
}

function checkDnsLabel(value, at, errors) {
  if (typeof value !== "string" || value.length > 63 || !DNS_LABEL.test(value)) errors.push(`${at}: ${JSON.stringify(value)} is not a DNS-1123 label`);
}

function checkPortName(value, at, errors) {
  if (value.length > 15 || !IANA_SVC_NAME.test(value) || value.includes("--") || !/[a-z]/.test(value)) errors.push(`${at}: ${JSON.stringify(value)} is not an IANA service name`);
}

function checkPodSpec(spec, at, errors) {
  const volumes = new Set();
  (spec.volumes || []).forEach((v, i) => {
    checkDnsLabel(v.name, `${at}.volumes[${i}].name`, errors);
    if (volumes.has(v.name)) errors.push(`${at}.volumes[${i}].name: duplicate "${v.name}"`);
    volumes.add(v.name);
  });
  const names = new Set();
  for (const field of ["initContainers", "containers"]) {
    (spec[field] || []).forEach((c, i) => {
      const cat = `${at}.${field}[${i}]`;
      checkDnsLabel(c.name, `${cat}.name`, errors);
      if (names.has(c.name)) errors.push(`${cat}.name: duplicate container name "${c.name}"`);
      names.add(c.name);
      const ports = new Set();
      (c.ports || []).forEach((p, j) => {
        if (p.name !== undefined) { checkPortName(p.name, `${cat}.ports[${j}].name`, errors); ports.add(p.name); }
      });
      const paths = new Set();
      (c.volumeMounts || []).forEach((m, j) => {
        if (!volumes.has(m.name)) errors.push(`${cat}.volumeMounts[${j}].name: no volume "${m.name}"`);
        if (paths.has(m.mountPath)) errors.push(`${cat}.volumeMounts[${j}].mountPath: "${m.mountPath}" mounted twice`);
        paths.add(m.mountPath);
      });
      (c.env || []).forEach((e, j) => { if (!ENV_NAME.test(e.name)) errors.push(`${cat}.env[${j}].name: invalid "${e.name}"`); });
      for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
        const handler = c[probe] && (c[probe].httpGet || c[probe].tcpSocket);
        if (handler && typeof handler.port === "string" && !ports.has(handler.port)) errors.push(`${cat}.${probe}: port "${handler.port}" is not a named port of the container`);
        if (c[probe] && field === "initContainers") errors.push(`${cat}.${probe}: init containers take no probes`);
      }
    });
  }
  if (!spec.containers || spec.containers.length === 0) errors.push(`${at}.containers: at least one container is required`);
}

function checkTarget(target, at, errors) {
  if (!target) return;
  if (!["Utilization", "Value", "AverageValue"].includes(target.type)) errors.push(`${at}.type: must be Utilization, Value or AverageValue`);
  const field = { Utilization: "averageUtilization", Value: "value", AverageValue: "averageValue" }[target.type];
  if (field && target[field] === undefined) errors.push(`${at}.${field}: required for type ${target.type}`);
}

function semantic(obj, errors) {
  checkLabels(obj.metadata.labels, "metadata.labels", errors);
  const spec = obj.spec || {};
  switch (obj.kind) {
    case "Deployment": {
      const tmplLabels = (spec.template && spec.template.metadata && spec.template.metadata.labels) || {};
      checkLabels(tmplLabels, "spec.template.metadata.labels", errors);
      const sel = (spec.selector && spec.selector.matchLabels) || {};
      if (Object.keys(sel).length === 0 && !(spec.selector && spec.selector.matchExpressions)) errors.push("spec.selector: empty selector");
      for (const [k, v] of Object.entries(sel)) if (tmplLabels[k] !== v) errors.push(`spec.template.metadata.labels: selector does not match template labels (${k})`);
      if (spec.template && spec.template.spec) {
        checkPodSpec(spec.template.spec, "spec.template.spec", errors);
        const rp = spec.template.spec.restartPolicy;
        if (rp !== undefined && rp !== "Always") errors.push("spec.template.spec.restartPolicy: a Deployment's pods restart Always");
      }
      break;
    }
    case "Pod": checkPodSpec(spec, "spec", errors); break;
    case "Service":
      checkDnsLabel(obj.metadata.name, "metadata.name", errors);
      (spec.ports || []).forEach((p, i) => { if (p.name !== undefined) checkDnsLabel(p.name, `spec.ports[${i}].name`, errors); });
      if ((spec.ports || []).length > 1 && spec.ports.some((p) => !p.name)) errors.push("spec.ports: every port needs a name when there are several");
      break;
    case "ConfigMap": case "Secret":
      for (const field of ["data", "stringData", "binaryData"]) for (const k of Object.keys(obj[field] || {})) if (k.length > 253 || !CONFIG_KEY.test(k)) errors.push(`${field}: invalid key "${k}"`);
      break;
    case "PodDisruptionBudget":
      if ((spec.minAvailable !== undefined) === (spec.maxUnavailable !== undefined)) errors.push("spec: exactly one of minAvailable and maxUnavailable");
      break;
    case "HorizontalPodAutoscaler":
      if (spec.minReplicas !== undefined && spec.minReplicas > spec.maxReplicas) errors.push("spec.minReplicas: above maxReplicas");
      (spec.metrics || []).forEach((m, i) => {
        const source = m[{ Pods: "pods", Object: "object", External: "external", Resource: "resource", ContainerResource: "containerResource" }[m.type]];
        if (!source) errors.push(`spec.metrics[${i}]: type ${m.type} without its source`);
        else checkTarget(source.target, `spec.metrics[${i}].${m.type.charAt(0).toLowerCase() + m.type.slice(1)}.target`, errors);
      });
      break;
  }
}

// ---- objects --------------------------------------------------------------------------------

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  for (const [matches, pkg] of PACKAGES) {
    if (!matches(group)) continue;
    const dir = path.join(modules, pkg, group || "", version);
    const js = path.join(dir, `${kind}.js`);
    if (!fs.existsSync(js)) continue;
    const mod = await import(pathToFileURL(js).href);
    if (typeof mod[kind] !== "function") continue;
    return { Model: mod[kind], dts: path.join(dir, `${kind}.d.ts`), pkg };
  }
  return null;
}

function packageVersion(pkg) {
  return JSON.parse(fs.readFileSync(path.join(modules, pkg, "package.json"), "utf8")).version;
}

const results = [];
let failed = false;
for (const file of files) {
  const text = fs.readFileSync(file === "-" ? 0 : file, "utf8");
  const docs = YAML.parseAllDocuments(text);
  for (const doc of docs) {
    const where = `${file}`;
    if (doc.errors.length) { results.push({ file: where, ok: false, errors: doc.errors.map((e) => e.message) }); failed = true; continue; }
    const obj = doc.toJS();
    if (obj === null || obj === undefined) continue; // an empty document (a template that rendered nothing)
    const id = { file: where, apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata && obj.metadata.name };
    const errors = [];
    if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") errors.push("apiVersion and kind are required");
    if (!obj.metadata || typeof obj.metadata.name !== "string" || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(obj.metadata.name) || obj.metadata.name.length > 253) errors.push("metadata.name must be a DNS subdomain name");
    if (errors.length) { results.push({ ...id, ok: false, errors }); failed = true; continue; }
    const model = await modelFor(obj.apiVersion, obj.kind);
    if (!model) {
      if (allowKinds.has(obj.kind)) { results.push({ ...id, ok: true, schema: "unchecked (allowed by name)" }); continue; }
      results.push({ ...id, ok: false, errors: [`no schema for ${obj.apiVersion} ${obj.kind}`] });
      failed = true;
      continue;
    }
    try {
      new model.Model(obj).validate();
    } catch (e) {
      errors.push(...String(e.message || e).split("\n").filter(Boolean));
    }
    try {
      const decl = loadDts(model.dts);
      unknownFields(obj, resolveName(decl, `I${obj.kind}`), "", errors);
    } catch (e) {
      process.stderr.write(`validate_k8s: reading the declarations of ${obj.kind}: ${e.stack || e}\n`);
      process.exit(2);
    }
    semantic(obj, errors);
    results.push({ ...id, ok: errors.length === 0, schema: `${model.pkg}@${packageVersion(model.pkg)}`, errors });
    if (errors.length) failed = true;
  }
}

if (json) process.stdout.write(JSON.stringify(results, null, 1) + "\n");
else {
  for (const r of results) {
    const name = `${r.kind || "?"}/${r.name || "?"}`;
    if (r.ok) process.stdout.write(`ok      ${name} (${r.schema})\n`);
    else process.stdout.write(`INVALID ${name} in ${r.file}\n${(r.errors || []).map((e) => `  - ${e}`).join("\n")}\n`);
  }
}
process.exit(failed ? 1 : 0);
