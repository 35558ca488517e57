// The console's pages, as one single-page app routed by the URL's hash: #/pipes, #/pipe/NAME,
// #/create, #/instances. Everything goes to this origin's /console/api/ endpoints; state changes
// carry the session's CSRF token. Text from the server is set as text, never as HTML.
import { chartSvg, drawLines, legend } from "./chart.js";

const POLL_MS = 2000;
let session = null;
let timer = null;

// ---- helpers ----

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function field(id, labelText, input) {
  input.id = id;
  return el("div", {}, el("label", { for: id, text: labelText }), input);
}

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (method !== "GET" && session) headers["X-CSRF-Token"] = session.CsrfToken;
  const resp = await fetch(`/console/api/${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  const text = await resp.text();
  const json = text ? JSON.parse(text) : {};
  if (resp.status === 401) { location.reload(); }
  if (!resp.ok) throw new ApiError(resp.status, json);
  return json;
}

// The API's answer as the user should read it: the message and each field's reason.
function problem(e) {
  const fields = (e.body && e.body.fieldList) || [];
  const more = fields.map((f) => `${f.name}: ${f.message}`).filter((l) => !e.message.includes(l));
  return [e.message, ...more].join("\n");
}

function errorBox(id) {
  return el("p", { id, class: "error", role: "alert", "aria-live": "polite" });
}

function fmtRate(v) { return v === undefined || v === null ? "" : v.toFixed(v < 10 ? 2 : 0); }

function setPage(title, ...children) {
  document.title = `${title} · Sluice console`;
  const main = document.getElementById("page");
  main.replaceChildren(el("h1", { text: title }), ...children);
}

function poll(fn) {
  clearInterval(timer);
  fn();
  timer = setInterval(fn, POLL_MS);
}

// ---- Pipes ----

const STATES = ["RUNNING", "STOPPED", "CREATING", "UPDATING", "STARTING", "STOPPING", "DELETING",
  "CREATE_FAILED", "UPDATE_FAILED", "START_FAILED", "STOP_FAILED", "DELETE_FAILED"];

function pipesPage() {
  const name = el("input", { type: "search", placeholder: "part of a name" });
  const state = el("select", {}, el("option", { value: "", text: "any" }),
    ...STATES.map((s) => el("option", { value: s, text: s })));
  const body = el("tbody");
  const status = el("p", { class: "muted", id: "pipes-status", "aria-live": "polite" });
  const head = ["Name", "State", "Desired", "Topic", "Target", "Records/s (1 min)", "Lag", "Reason"];
  const table = el("table", { id: "pipes" },
    el("thead", {}, el("tr", {}, ...head.map((h, i) => el("th", { scope: "col", class: i === 5 || i === 6 ? "num" : null, text: h })))),
    body);
  let last = [];
  const render = () => {
    const n = name.value.trim().toLowerCase();
    const rows = last.filter((p) => (!n || p.Name.toLowerCase().includes(n)) && (!state.value || p.CurrentState === state.value));
    body.replaceChildren(...rows.map(pipeRow));
    status.textContent = `${rows.length} of ${last.length} pipes · updated ${new Date().toLocaleTimeString()}`;
    document.getElementById("page").dataset.updated = String(Date.now());
  };
  name.addEventListener("input", render);
  state.addEventListener("change", render);
  setPage("Pipes", el("div", { class: "filters" }, field("filter-name", "Name", name),
    field("filter-state", "State", state)), status, table);
  poll(async () => {
    const started = performance.now();
    try { last = (await api("GET", "pipes")).Pipes; render(); }
    catch (e) { status.textContent = problem(e); }
    // How long one update (fetch and render) took, for the page-speed measurement.
    document.getElementById("page").dataset.updateMs = (performance.now() - started).toFixed(1);
  });
}

function pipeRow(p) {
  const cell = (text, cls) => el("td", { class: cls, text: text ?? "" });
  return el("tr", { "data-pipe": p.Name, "data-state": p.CurrentState },
    el("td", {}, el("a", { href: `#/pipe/${encodeURIComponent(p.Name)}`, text: p.Name })),
    cell(p.CurrentState, `state-${p.CurrentState}`), cell(p.DesiredState), cell(p.Topic),
    cell(p.Target), cell(fmtRate(p.RecordsPerSecond), "num rate"),
    cell(p.Lag === null ? "" : String(p.Lag), "num lag"), cell(p.StateReason, "reason"));
}

// ---- Pipe ----

function pipePage(name) {
  const state = el("p", { id: "pipe-state", "aria-live": "polite" });
  const reason = el("p", { id: "pipe-reason", class: "reason" });
  const actionError = errorBox("action-error");
  const act = (label, path, method, confirmText, cls) => el("button", {
    type: "button", class: cls, text: label, onclick: async () => {
      if (confirmText && !confirm(confirmText)) return;
      actionError.textContent = "";
      try {
        await api(method, `v1/pipes/${encodeURIComponent(name)}${path}`);
        if (method === "DELETE") location.hash = "#/pipes";
      } catch (e) { actionError.textContent = problem(e); }
    },
  });
  const actions = el("div", { class: "actions" },
    act("Start", "/start", "POST", null, "primary"), act("Stop", "/stop", "POST", `Stop pipe ${name}?`),
    act("Delete", "", "DELETE", `Delete pipe ${name}? This cannot be undone.`, "danger"));
  const rates = chartSvg("chart-rates", "Records per second");
  const lags = chartSvg("chart-lag", "Consumer lag per partition");
  const lagLegend = el("div");
  const charts = el("div", { class: "charts" },
    el("div", { class: "chart" }, el("h2", { text: "Records/s" }), rates,
      legend(["delivered", "filtered out", "failed", "dead-lettered"])),
    el("div", { class: "chart" }, el("h2", { text: "Consumer lag" }), lags, lagLegend));
  const definition = el("pre", { id: "definition" });
  const edit = el("div", { id: "edit" });
  const errors = el("div", { id: "last-errors" });
  setPage(`Pipe ${name}`, state, reason, actions, actionError, charts,
    el("h2", { id: "last-errors-title", text: "Last execution errors" }), errors,
    el("h2", { text: "Edit" }), edit, el("h2", { text: "Definition" }), definition);
  let editing = false;
  poll(async () => {
    let got;
    try { got = await api("GET", `pipes/${encodeURIComponent(name)}`); }
    catch (e) { state.textContent = problem(e); return; }
    const p = got.Pipe;
    state.replaceChildren("State: ", el("span", { class: `state-${p.CurrentState}`, id: "current-state", text: p.CurrentState }),
      ` (desired ${p.DesiredState})`);
    reason.textContent = p.StateReason ? `Reason: ${p.StateReason}` : "";
    definition.textContent = JSON.stringify(p, null, 2);
    drawCharts(got.Series, rates, lags, lagLegend);
    errors.replaceChildren(lastErrors(got.ExecutionLogs, got.LastErrors));
    if (!editing) { editing = true; edit.replaceChildren(editForm(p)); }
  });
}

// The last execution errors this instance's execution log kept for the pipe, newest first.
function lastErrors(logsOn, list) {
  if (!list.length) {
    const text = logsOn ? "No execution errors recently (on this instance)." : "No execution errors (execution logs are off).";
    return el("p", { class: "muted", id: "last-errors-empty", "data-logs": String(logsOn), text });
  }
  const head = ["Time", "Step", "Execution", "HTTP status", "Error"];
  return el("table", { id: "last-errors-table", "aria-labelledby": "last-errors-title" },
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...list.map((e) => el("tr", { "data-step": e.messageType },
      el("td", { text: new Date(e.timestamp).toLocaleString() }), el("td", { text: e.messageType }),
      el("td", { class: "mono", text: e.executionId }),
      el("td", { class: "num status", text: e.error && e.error.httpStatusCode ? String(e.error.httpStatusCode) : "" }),
      el("td", { class: "error message", text: e.error ? e.error.message : "" })))));
}

function drawCharts(series, rates, lags, lagLegend) {
  const pick = (k) => series.map((pt) => [pt.t, pt[k]]);
  drawLines(rates, [
    { name: "delivered", points: pick("delivered") }, { name: "filtered", points: pick("filtered") },
    { name: "failed", points: pick("failed") }, { name: "dead_lettered", points: pick("dead_lettered") },
  ], { unit: "/s" });
  const partitions = [...new Set(series.flatMap((pt) => pt.lag.map(([p]) => p)))].sort();
  drawLines(lags, partitions.map((part) => ({
    name: part,
    points: series.flatMap((pt) => pt.lag.filter(([p]) => p === part).map(([, v]) => [pt.t, v])),
  })));
  lagLegend.replaceChildren(legend(partitions));
}

function kafkaBlock(p) {
  const sp = p.SourceParameters || {};
  const key = sp.ManagedStreamingKafkaParameters ? "ManagedStreamingKafkaParameters" : "SelfManagedKafkaParameters";
  return [key, { ...(sp[key] || {}) }];
}

function editForm(p) {
  const [key, block] = kafkaBlock(p);
  const sp = p.SourceParameters || {};
  const tp = p.TargetParameters || {};
  const batch = el("input", { type: "number", value: block.BatchSize ?? "" });
  const windowSecs = el("input", { type: "number", value: block.MaximumBatchingWindowInSeconds ?? "" });
  const filters = el("textarea", { rows: 3, placeholder: "one event pattern per line" });
  filters.value = ((sp.FilterCriteria || {}).Filters || []).map((f) => f.Pattern).join("\n");
  const template = el("textarea", { rows: 3 });
  template.value = tp.InputTemplate || "";
  const err = errorBox("edit-error");
  const done = el("p", { class: "ok", "aria-live": "polite" });
  const save = async (ev) => {
    ev.preventDefault();
    err.textContent = ""; done.textContent = "";
    const kafka = { ...block };
    if (batch.value) kafka.BatchSize = Number(batch.value); else delete kafka.BatchSize;
    if (windowSecs.value) kafka.MaximumBatchingWindowInSeconds = Number(windowSecs.value);
    else delete kafka.MaximumBatchingWindowInSeconds;
    const patterns = filters.value.split("\n").map((s) => s.trim()).filter(Boolean);
    const targetParams = { ...tp };
    if (template.value) targetParams.InputTemplate = template.value; else delete targetParams.InputTemplate;
    const body = {
      RoleArn: p.RoleArn,
      SourceParameters: { [key]: kafka, FilterCriteria: { Filters: patterns.map((Pattern) => ({ Pattern })) } },
      TargetParameters: targetParams,
    };
    try { await api("PUT", `v1/pipes/${encodeURIComponent(p.Name)}`, body); done.textContent = "Saved; the pipe restarts with it."; }
    catch (e) { err.textContent = problem(e); }
  };
  return el("form", { onsubmit: save, id: "edit-form" },
    el("div", { class: "grid" }, field("edit-batch", "BatchSize", batch),
      field("edit-window", "MaximumBatchingWindowInSeconds", windowSecs)),
    field("edit-filters", "Filters (one pattern per line)", filters),
    field("edit-template", "Target InputTemplate", template),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", text: "Save" })), err, done);
}

// ---- Create ----

const SAMPLE = JSON.stringify({
  eventSource: "SelfManagedKafka", topic: "orders", partition: 0, offset: 0, timestamp: Date.now(),
  timestampType: "CREATE_TIME", key: btoa("k1"), value: btoa(JSON.stringify({ kind: "order", id: "A1" })), headers: [],
}, null, 1);

function createPage() {
  clearInterval(timer);
  const name = el("input", { required: true, pattern: "[\\.\\-_A-Za-z0-9]+", maxlength: 64 });
  const servers = el("input", { class: "wide", placeholder: "host1:9092,host2:9092" });
  const msk = el("input", { class: "wide", placeholder: "arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/ID" });
  const topic = el("input", { required: true });
  const position = el("select", {}, el("option", { value: "LATEST", text: "LATEST" }), el("option", { value: "TRIM_HORIZON", text: "TRIM_HORIZON" }));
  const credKind = el("select", {}, ...["", "SaslScram512Auth", "SaslScram256Auth", "BasicAuth", "ClientCertificateTlsAuth"]
    .map((k) => el("option", { value: k, text: k || "none" })));
  const credArn = el("input", { class: "wide", placeholder: "arn:aws:secretsmanager:... (a reference, never the secret)" });
  const role = el("input", { class: "wide", value: "arn:aws:iam::123456789012:role/sluice" });
  const pattern = el("textarea", { rows: 3, placeholder: '{"value": {"kind": ["order"]}}' });
  const event = el("textarea", { rows: 8 });
  event.value = SAMPLE;
  const patternResult = el("p", { id: "pattern-result", "aria-live": "polite" });
  const target = el("input", { class: "wide", required: true, placeholder: "https://... or an ARN" });
  const template = el("textarea", { rows: 3, placeholder: '{"id": <$.value.id>}' });
  const preview = el("pre", { id: "template-preview", "aria-live": "polite" });
  const err = errorBox("create-error");
  const testPattern = async () => {
    patternResult.className = "";
    try {
      const r = await api("POST", "try/pattern", { Pattern: pattern.value, Event: event.value });
      patternResult.textContent = r.Result ? "Matches: this event passes the filter." : "No match: this event is filtered out.";
      patternResult.dataset.result = String(r.Result);
    } catch (e) { patternResult.textContent = problem(e); patternResult.className = "error"; patternResult.dataset.result = "error"; }
  };
  let previewTimer = null;
  const previewTemplate = () => {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(async () => {
      if (!template.value) { preview.textContent = "(no template: the target receives the record as it is)"; return; }
      try {
        const r = await api("POST", "try/template", { Template: template.value, Event: event.value, PipeName: name.value });
        preview.textContent = r.Output; preview.className = "";
      } catch (e) { preview.textContent = problem(e); preview.className = "error"; }
    }, 250);
  };
  template.addEventListener("input", previewTemplate);
  event.addEventListener("input", previewTemplate);
  const submit = async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    const body = createBody({ servers, msk, topic, position, credKind, credArn, role, pattern, target, template });
    try {
      await api("POST", `v1/pipes/${encodeURIComponent(name.value)}`, body);
      location.hash = "#/pipes";
    } catch (e) { err.textContent = problem(e); }
  };
  setPage("Create pipe", el("form", { onsubmit: submit, id: "create-form" },
    field("create-name", "Name", name),
    el("fieldset", {}, el("legend", { text: "Source" }),
      field("create-servers", "Bootstrap servers (self-managed Kafka)", servers),
      field("create-msk", "or MSK cluster ARN", msk),
      el("div", { class: "grid" }, field("create-topic", "Topic", topic), field("create-position", "Starting position", position)),
      el("div", { class: "grid" }, field("create-cred-kind", "Credentials", credKind), field("create-cred-arn", "Secret ARN", credArn))),
    el("fieldset", {}, el("legend", { text: "Filter" }),
      field("create-pattern", "Event pattern (empty: every record passes)", pattern),
      field("create-event", "Test against this event (a record as the target receives it, or any JSON)", event),
      el("button", { type: "button", id: "test-pattern", onclick: testPattern, text: "Test pattern" }), patternResult),
    el("fieldset", {}, el("legend", { text: "Target" }),
      field("create-target", "Target (URL or ARN)", target),
      field("create-role", "Role ARN", role),
      field("create-template", "Input template (preview on the event above)", template), preview),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", text: "Create pipe" })), err));
  previewTemplate();
}

function createBody(f) {
  const kafka = { TopicName: f.topic.value, StartingPosition: f.position.value };
  if (f.credKind.value) kafka.Credentials = { [f.credKind.value]: f.credArn.value };
  const msk = f.msk.value.trim();
  const sp = msk ? { ManagedStreamingKafkaParameters: kafka } : { SelfManagedKafkaParameters: kafka };
  if (f.pattern.value.trim()) sp.FilterCriteria = { Filters: [{ Pattern: f.pattern.value }] };
  const body = { Source: msk || `smk://${f.servers.value.trim()}`, Target: f.target.value.trim(), RoleArn: f.role.value.trim(), SourceParameters: sp };
  if (f.template.value) body.TargetParameters = { InputTemplate: f.template.value };
  return body;
}

// ---- Instances ----

function instancesPage() {
  const body = el("tbody");
  const note = el("p", { class: "muted", text: "Instances sharing this store, by their heartbeat in the last 15 s, with the pipes each runs and the partitions it owns." });
  const head = ["Instance", "Last heartbeat", "Pipes it runs (owned partitions)"];
  setPage("Instances", note, el("table", { id: "instances" },
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col", text: h })))), body));
  poll(async () => {
    const got = await api("GET", "instances");
    body.replaceChildren(...got.Instances.map(instanceRow));
  });
}

function instanceRow(i) {
  const beat = i.LastHeartbeatMs === null ? "" :
    `${new Date(i.LastHeartbeatMs).toLocaleTimeString()} (${(i.HeartbeatAgeMs / 1000).toFixed(1)} s ago)`;
  const pipes = el("ul", { class: "plain" }, ...i.Pipes.map((p) => el("li", { "data-pipe": p.Pipe },
    `${p.Pipe} (${p.Phase}): `, el("span", { class: "partitions", text: p.Partitions.length ? p.Partitions.join(", ") : "no partition" }))));
  return el("tr", { "data-instance": i.Instance },
    el("td", { text: i.This ? `${i.Instance} (this one)` : i.Instance }),
    el("td", { class: "heartbeat", text: beat }), el("td", {}, pipes));
}

// ---- shell ----

async function showInstancesLink() {
  try {
    const got = await api("GET", "instances");
    document.getElementById("nav-instances").hidden = got.Instances.length < 2;
  } catch { /* shown again on the next page */ }
}

function route() {
  const hash = decodeURIComponent(location.hash.slice(1) || "/pipes");
  const [, page, ...rest] = hash.split("/");
  if (page === "pipe" && rest.length) pipePage(rest.join("/"));
  else if (page === "create") createPage();
  else if (page === "instances") instancesPage();
  else pipesPage();
  document.getElementById("page").focus();
}

async function main() {
  session = await api("GET", "session");
  document.getElementById("dev-banner").hidden = !session.DevMode;
  document.getElementById("who").textContent = session.DevMode ? "dev mode" : `signed in as ${session.AccessKeyId}`;
  document.getElementById("signout").addEventListener("click", async () => {
    await api("POST", "../signout").catch(() => {});
    location.reload();
  });
  window.addEventListener("hashchange", route);
  showInstancesLink();
  route();
}

main();
