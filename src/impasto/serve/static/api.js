// Renders the OpenAPI schema of this server as a reference page (no CDN, no framework).
"use strict";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c != null) node.append(c instanceof Node ? c : String(c));
  return node;
}

// `code` spans in descriptions become <code>.
function rich(text) {
  const span = el("span");
  String(text || "").split(/(`[^`]+`)/).forEach((part) => {
    span.append(part.startsWith("`") && part.endsWith("`") ? el("code", {}, part.slice(1, -1)) : part);
  });
  return span;
}

function refName(ref) { return ref.split("/").pop(); }

function typeOf(schema) {
  if (!schema) return "";
  if (schema.$ref) return refName(schema.$ref);
  if (schema.anyOf) return schema.anyOf.map(typeOf).filter((t) => t !== "null").join(" | ") + " | null";
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.type === "array") return `${typeOf(schema.items)}[]`;
  if (schema.format === "binary") return "file";
  return schema.type || "any";
}

function limits(schema) {
  const bits = [];
  const s = schema.anyOf ? schema.anyOf.find((x) => x.type !== "null") || schema : schema;
  if (s.minimum != null) bits.push(`≥ ${s.minimum}`);
  if (s.exclusiveMaximum != null) bits.push(`< ${s.exclusiveMaximum}`);
  if (s.maximum != null) bits.push(`≤ ${s.maximum}`);
  if (schema.default !== undefined && schema.default !== null) bits.push(`default ${JSON.stringify(schema.default)}`);
  return bits.join(", ");
}

function fieldsTable(properties, required = []) {
  const body = el("tbody");
  for (const [name, spec] of Object.entries(properties)) {
    const item = spec.items && spec.items.format === "binary" ? "file[]" : typeOf(spec);
    body.append(el("tr", {},
      el("td", {}, el("code", {}, name), required.includes(name) ? el("span", { class: "req" }, "required") : null),
      el("td", {}, el("span", { class: "type" }, item)),
      el("td", {}, rich(spec.description), limits(spec) ? el("div", { class: "type" }, limits(spec)) : null)));
  }
  return el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "description"))), body);
}

async function main() {
  const api = await fetch("/api/openapi.json").then((r) => r.json());
  const schemas = (api.components && api.components.schemas) || {};
  document.getElementById("intro").append(
    el("h1", {}, `${api.info.title} ${api.info.version} — HTTP API`),
    el("p", {}, rich(api.info.summary)),
    el("p", {}, rich(api.info.description)));
  const toc = document.getElementById("toc");
  const list = document.getElementById("endpoints");
  for (const [path, ops] of Object.entries(api.paths)) {
    for (const [verb, op] of Object.entries(ops)) {
      const id = op.operationId;
      toc.append(el("a", { class: "pill pill-link", href: `#${id}` }, `${verb.toUpperCase()} ${path}`));
      const card = el("article", { class: "op", id },
        el("div", { class: "op-head" }, el("span", { class: `verb ${verb}` }, verb.toUpperCase()),
          el("span", { class: "path" }, path), el("span", { class: "summary" }, op.summary || "")),
        el("p", { class: "desc" }, rich(op.description)));
      if (op.parameters && op.parameters.length) {
        const props = {};
        const req = [];
        for (const p of op.parameters) {
          props[p.name] = { ...p.schema, description: `${p.description || ""} (${p.in})` };
          if (p.required) req.push(p.name);
        }
        card.append(el("span", { class: "label" }, "Parameters"), fieldsTable(props, req));
      }
      const content = op.requestBody && op.requestBody.content;
      if (content) {
        const [type, media] = Object.entries(content)[0];
        const schema = media.schema.$ref ? schemas[refName(media.schema.$ref)] : media.schema;
        card.append(el("span", { class: "label" }, `Body (${type})`), fieldsTable(schema.properties || {}, schema.required || []));
      }
      const rows = el("tbody");
      for (const [code, r] of Object.entries(op.responses || {})) {
        const kinds = Object.entries(r.content || {}).map(([t, m]) => (m.schema && m.schema.$ref ? `${t}: ${refName(m.schema.$ref)}` : m.schema && m.schema.items && m.schema.items.$ref ? `${t}: ${refName(m.schema.items.$ref)}[]` : t));
        rows.append(el("tr", {}, el("td", {}, el("code", {}, code)), el("td", {}, el("span", { class: "type" }, kinds.join(", "))), el("td", {}, rich(r.description))));
      }
      card.append(el("span", { class: "label" }, "Responses"),
        el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "status"), el("th", {}, "content"), el("th", {}, "meaning"))), rows));
      list.append(card);
    }
  }
  const box = document.getElementById("schemas");
  box.append(el("h2", { class: "section" }, "Schemas"));
  for (const [name, schema] of Object.entries(schemas)) {
    if (name.startsWith("Body_")) continue;
    box.append(el("div", { class: "schema", id: `schema-${name}` }, el("h3", {}, name), el("p", {}, rich(schema.description)),
      fieldsTable(schema.properties || {}, schema.required || [])));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  main().catch((e) => {
    document.getElementById("intro").append(el("p", {}, `Could not load the schema: ${e}`));
  });
});
