// A small renderer for /api/openapi.json: no framework, no CDN (the pages' CSP allows this origin only).
// Text goes into the page through textContent only: nothing from the document is parsed as HTML.

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
};

const resolve = (doc, schema) => {
  let s = schema || {};
  for (let i = 0; s.$ref && i < 10; i++) s = s.$ref.split("/").slice(1).reduce((o, k) => (o || {})[k], doc) || {};
  if (Array.isArray(s.allOf)) {  // an extended shape (Person: a PublicProfile and `since`): one table of fields
    const parts = s.allOf.map((p) => resolve(doc, p)).concat([s]);
    s = { ...s, properties: Object.assign({}, ...parts.map((p) => p.properties || {})),
      required: [...new Set(parts.flatMap((p) => p.required || []))] };
  }
  return s;
};

const typeOf = (doc, schema) => {
  if (schema && schema.$ref) return schema.$ref.split("/").pop();  // a named shape: its name
  const s = resolve(doc, schema);
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (s.type === "array") return `array of ${typeOf(doc, s.items)}`;
  const t = Array.isArray(s.type) ? s.type.join(" | ") : s.type || (s.properties ? "object" : "any");
  return s.format ? `${t} (${s.format})` : t;
};

const fieldsTable = (doc, schema) => {
  const s = resolve(doc, schema);
  const props = Object.entries(s.properties || {});
  if (!props.length) return el("pre", {}, JSON.stringify(s, null, 2));
  const required = new Set(s.required || []);
  const rows = props.map(([name, p]) => {
    const r = resolve(doc, p);
    const notes = [r.description, r.pattern && `pattern ${r.pattern}`, r.maxLength && `≤ ${r.maxLength} chars`]
      .filter(Boolean).join("; ");
    return el("tr", {}, el("td", {}, el("code", {}, name)), el("td", {}, typeOf(doc, p)),
      el("td", {}, required.has(name) ? "required" : "optional"), el("td", { class: "muted" }, notes));
  });
  return el("table", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, ""),
    el("th", {}, "notes")), ...rows);
};

const operation = (doc, path, method, op) => {
  const body = el("div", { class: "body" });
  if (op.description) body.append(el("p", {}, op.description));
  const params = op.parameters || [];
  if (params.length) {
    body.append(el("h4", {}, "Parameters"), el("table", {},
      el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "")),
      ...params.map((p) => el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.in),
        el("td", {}, typeOf(doc, p.schema)), el("td", {}, p.required ? "required" : "optional")))));
  }
  const content = op.requestBody && op.requestBody.content;
  if (content) {
    for (const [type, media] of Object.entries(content)) {
      body.append(el("h4", {}, `Request body (${type})`), fieldsTable(doc, media.schema));
    }
  }
  body.append(el("h4", {}, "Responses"));
  for (const [status, resp] of Object.entries(op.responses || {})) {
    body.append(el("p", {}, el("code", {}, status), " ", resp.description || ""));
    const json = resp.content && resp.content["application/json"];
    const schema = json && resolve(doc, json.schema);
    if (schema && schema.properties) body.append(fieldsTable(doc, schema));
  }
  const lock = op.security && op.security.length === 0 ? "" : "🔒 bearer";
  const head = el("summary", {}, el("span", { class: `method ${method.toUpperCase()}` }, method.toUpperCase()),
    el("span", { class: "path" }, path), " ", el("span", { class: "muted" }, op.summary || ""),
    el("span", { class: "lock" }, lock));
  const card = el("details", { class: "op" }, head, body);
  card.dataset.search = `${method} ${path} ${op.summary || ""} ${(op.tags || []).join(" ")}`.toLowerCase();
  return card;
};

const render = (doc) => {
  const main = document.getElementById("operations");
  const nav = document.getElementById("tags");
  main.replaceChildren();
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(item)) {
      if (!["get", "post", "put", "patch", "delete"].includes(method)) continue;
      const tag = (op.tags && op.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(doc, path, method, op));
    }
  }
  for (const [tag, cards] of byTag) {
    const id = `tag-${tag.replace(/[^A-Za-z0-9_-]/g, "-")}`;
    nav.append(el("a", { href: `#${id}` }, tag));
    main.append(el("section", { id }, el("h2", {}, tag), ...cards));
  }
  document.title = `${(doc.info && doc.info.title) || "API"} reference`;
};

const filter = (text) => {
  const words = text.toLowerCase().split(/\s+/).filter(Boolean);
  for (const card of document.querySelectorAll("details.op")) {
    card.hidden = !words.every((w) => card.dataset.search.includes(w));
  }
};

const main = async () => {
  const resp = await fetch("/api/openapi.json");
  render(await resp.json());
  document.getElementById("filter").addEventListener("input", (e) => filter(e.target.value));
};

main().catch((err) => {
  document.getElementById("operations").replaceChildren(el("p", {}, `Could not load the API document: ${err}`));
});
