// The dashboard page: one EventSource for live documents, fetch() for actions and graphs,
// inline SVG for the timeline and graphs. No framework and nothing from another origin, so
// the page works offline and its Content-Security-Policy can forbid everything else.
"use strict";

const STATES = [
  ["target", "on the target"],
  ["in-flight", "in flight"],
  ["failed", "failed"],
  ["rolled-back", "rolled back"],
  ["pending", "pending"],
  ["protected", "protected"],
];
const PROGRESS = [
  ["successfulInstanceCount", "successful", "target"],
  ["failedInstanceCount", "failed", "failed"],
  ["inProgressInstanceCount", "in progress", "in-flight"],
  ["pendingInstanceCount", "pending", "pending"],
];

const state = {
  token: "",
  selected: "",
  source: null,
  overview: null,
  detail: null,
  panels: [],
  graphsAt: 0,
};

function params() {
  return new URLSearchParams(location.hash.replace(/^#/, ""));
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== null) node.append(child);
  return node;
}

function when(stamp) {
  if (!stamp) return "";
  const d = new Date(stamp);
  return isNaN(d) ? stamp : d.toISOString().replace("T", " ").replace(/\.\d+Z$|Z$/, "Z");
}

function say(text, kind = "info") {
  const box = document.getElementById("message");
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = !text;
}

// --- the event stream ---------------------------------------------------------------------

function connect() {
  if (state.source) state.source.close();
  const query = new URLSearchParams({ token: state.token });
  if (state.selected) query.set("scaleset", state.selected);
  const source = new EventSource("/api/stream?" + query.toString());
  state.source = source;
  const conn = document.getElementById("connection");
  source.onopen = () => { conn.textContent = "live"; conn.dataset.state = "live"; };
  source.onerror = () => {
    // EventSource reconnects by itself; say so rather than show stale data as live.
    conn.textContent = "reconnecting…";
    conn.dataset.state = "reconnecting";
  };
  source.addEventListener("overview", (e) => { state.overview = JSON.parse(e.data); drawOverview(); });
  source.addEventListener("detail", (e) => { state.detail = JSON.parse(e.data); drawDetail(); });
}

function select(key) {
  state.selected = key;
  state.detail = null;
  state.graphsAt = 0;
  const p = params();
  p.set("token", state.token);
  if (key) p.set("scaleset", key); else p.delete("scaleset");
  history.replaceState(null, "", "#" + p.toString());
  document.getElementById("detail").hidden = !key;
  connect();
  drawOverview();
}

// --- overview -------------------------------------------------------------------------------

function nextText(s) {
  if (s.waiting) return s.waiting;
  if (s.nextEligible) return `eligible ${when(s.nextEligible)}`;
  if (s.pendingUpgrade) return `${s.pendingUpgrade.version} seen ${when(s.pendingUpgrade.detectedAt)}`;
  return "";
}

function drawOverview() {
  const doc = state.overview;
  if (!doc) return;
  const body = document.querySelector("#scalesets tbody");
  body.replaceChildren(...doc.scalesets.map((s) => el("tr", {
    "data-key": s.key,
    class: s.key === state.selected ? "selected" : null,
    onclick: () => select(s.key),
  },
  el("td", { text: s.namespace }),
  el("td", { text: s.name }),
  el("td", { class: "state", "data-state": s.upgradeState || "none", text: s.error ? `unreadable: ${s.error}` : (s.upgradeState || "none yet") }),
  el("td", { text: s.imageVersion || "" }),
  el("td", { text: `${s.ready}/${s.capacity ?? "?"}` }),
  el("td", { text: String(s.latestModel) }),
  el("td", { text: nextText(s) }),
  )));
  document.getElementById("no-scalesets").hidden = doc.scalesets.length > 0;
  const errors = Object.entries(doc.errors || {});
  const box = document.getElementById("watch-errors");
  box.hidden = errors.length === 0;
  box.textContent = errors.map(([kind, text]) => `Cannot watch ${kind}: ${text}`).join("\n");
}

// --- the live view of one scale set -------------------------------------------------------

function drawDetail() {
  const d = state.detail;
  if (!d) return;
  if (d.missing) {
    document.getElementById("detail-title").textContent = `${d.missing} (gone)`;
    return;
  }
  const ru = d.rollingUpgrade || {};
  document.getElementById("detail-title").textContent = `${d.namespace}/${d.name}`;
  const badge = document.getElementById("upgrade-state");
  badge.textContent = ru.code || "no upgrade yet";
  badge.dataset.state = ru.code || "none";
  // The model moves to the target when a run starts: show where it came from instead.
  document.getElementById("versions").textContent = ru.code === "RollingForward" && ru.target
    ? `${ru.previous || "?"} → ${ru.target}`
    : `image ${d.imageVersion || "?"}`;
  document.getElementById("start").disabled = ru.code === "RollingForward";
  document.getElementById("cancel").disabled = ru.code !== "RollingForward";
  const runError = document.getElementById("run-error");
  runError.hidden = !ru.error;
  runError.textContent = ru.error || "";
  drawProgress(d);
  drawTiles(d);
  drawTimeline(d.timeline);
  drawHistory(d.history);
  drawCatalog(d.catalog);
  noteHandled(d.handledRequests || []);
  if (state.panels.length && !state.graphsAt) drawGraphs();
}

function drawProgress(d) {
  const p = d.progress || {};
  const total = PROGRESS.reduce((n, [field]) => n + (p[field] || 0), 0);
  const bar = document.getElementById("progress-bar");
  bar.replaceChildren(...PROGRESS.filter(([field]) => p[field]).map(([field, label, colour]) => {
    const part = el("div", { class: `part s-${colour}`, title: `${p[field]} ${label}` });
    part.style.width = `${(100 * p[field]) / Math.max(total, 1)}%`;
    return part;
  }));
  document.getElementById("progress-text").textContent = d.progress
    ? PROGRESS.map(([field, label]) => `${p[field] || 0} ${label}`).join(", ")
    : "No rolling upgrade has run yet.";
  const batch = d.batch;
  let text = "";
  if (batch) {
    text = `Batch ${batch.number}${batch.zone ? ` (${batch.zone})` : ""}: instances ${batch.ids.join(", ")}, started ${when(batch.startedAt)}`;
  } else if ((d.rollingUpgrade || {}).code === "RollingForward") {
    text = `Between batches: ${d.batchesDone} done` + (d.waiting ? `; ${d.waiting}` : "");
  } else if (d.batchesDone) {
    text = `${d.batchesDone} ${d.batchesDone === 1 ? "batch" : "batches"} in the last run`;
  }
  document.getElementById("batch").textContent = text;
}

function drawTiles(d) {
  const legend = document.getElementById("legend");
  legend.replaceChildren(...STATES.map(([key, label]) => el("span", { class: "legend-item" },
    el("span", { class: `swatch s-${key}` }),
    el("span", { "data-count": key, text: `${label}: ${d.counts[key] || 0}` }))));
  const zones = document.getElementById("zones");
  zones.replaceChildren(...d.zones.map((z) => el("div", { class: "zone", "data-zone": z.zone },
    el("h4", { text: `${z.zone} (${z.tiles.length})` }),
    el("div", { class: "tiles" }, ...z.tiles.map((t) => el("div", {
      class: `tile s-${t.state}`,
      "data-id": t.id,
      "data-state": t.state,
      title: `${t.pod}: ${t.detail}${t.version ? ` (version ${t.version})` : ""}`,
    }, el("span", { class: "tile-id", text: String(t.id) }), el("span", { class: "tile-version", text: t.version || "" })))))));
}

function drawTimeline(tl) {
  const box = document.getElementById("timeline");
  box.replaceChildren(tl ? timelineSvg(tl) : el("p", { text: "No run observed yet." }));
}

function drawHistory(rows) {
  const body = document.querySelector("#history tbody");
  body.replaceChildren(...rows.map((h) => el("tr", { "data-code": h.code },
    el("td", { text: when(h.start) }), el("td", { text: when(h.end) }),
    el("td", { class: "state", "data-state": h.code, text: h.code || "" }),
    el("td", { text: h.startedBy || "" }), el("td", { text: h.target || "" }),
    el("td", { text: String(h.successful) }), el("td", { text: String(h.failed) }),
    el("td", { text: String(h.rolledBack) }), el("td", { class: "error-text", text: h.error || "" }))));
}

function drawCatalog(rows) {
  const body = document.querySelector("#catalog tbody");
  body.replaceChildren(...rows.map((v) => {
    const notes = [];
    if (v.current) notes.push("current");
    if (v.target) notes.push("target");
    if (v.quarantined) notes.push("quarantined");
    if (v.excludedFromLatest) notes.push("excluded from latest");
    if (!v.inRegion) notes.push("not in this region");
    const clear = v.quarantined
      ? el("button", { type: "button", class: "clear", "data-version": v.version, onclick: () => act("clear-quarantine", [v.version]) }, "Clear quarantine")
      : null;
    return el("tr", { "data-version": v.version, class: v.quarantined ? "quarantined" : null },
      el("td", { text: v.version }), el("td", { text: v.image }),
      el("td", { text: when(v.published) }), el("td", { text: notes.join(", ") }),
      el("td", {}, clear));
  }));
}

// --- actions ------------------------------------------------------------------------------

const pending = new Map();

function confirmDialog(text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    const yes = document.getElementById("confirm-yes");
    const no = document.getElementById("confirm-no");
    const done = (answer) => {
      yes.onclick = null; no.onclick = null; dialog.oncancel = null;
      dialog.close();
      resolve(answer);
    };
    yes.onclick = () => done(true);
    no.onclick = () => done(false);
    dialog.oncancel = () => done(false);
    dialog.showModal();
  });
}

const QUESTIONS = {
  start: (key) => `Start a rolling OS upgrade of ${key} to its latest image version now? A manually started upgrade is not rolled back automatically.`,
  cancel: (key) => `Cancel the rolling upgrade of ${key}? The batch in flight finishes; nothing is rolled back.`,
  "clear-quarantine": (key, versions) => `Let ${versions.join(", ")} be picked as "latest" again for ${key}? An automatic upgrade to it may follow.`,
};

async function act(action, versions = []) {
  const key = state.selected;
  if (!key || !(await confirmDialog(QUESTIONS[action](key, versions)))) return;
  const [namespace, name] = key.split("/");
  say(`Sending ${action}…`);
  let answer, body;
  try {
    answer = await fetch(`/api/scalesets/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/actions/${action}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Dashboard-Token": state.token },
      body: JSON.stringify({ versions }),
    });
    body = await answer.json();
  } catch (err) {
    say(`${action} failed: ${err}`, "error");
    return;
  }
  if (!answer.ok) {
    say(`${action} refused (${answer.status}): ${body.error || answer.statusText}`, "error");
    return;
  }
  pending.set(body.request, action);
  say(`${body.message}; waiting for the operator (request ${body.request.slice(0, 8)})`);
}

function noteHandled(handled) {
  for (const [id, action] of pending) {
    if (handled.includes(id)) {
      pending.delete(id);
      say(`The operator carried out ${action}.`, "ok");
    }
  }
}

// --- graphs (with --prometheus) -----------------------------------------------------------

const GRAPH_SECONDS = 5;
function graphSeconds() {
  // From shortly before the latest run, so that a run of seconds is not a dot in an hour.
  const tl = state.detail && state.detail.timeline;
  if (!tl) return 900;
  const since = (Date.now() - Date.parse(tl.start)) / 1000 + 20;
  return Math.min(Math.max(Math.ceil(since), 60), 3600);
}

async function drawGraphs() {
  if (!state.selected) return;
  state.graphsAt = Date.now();
  const [namespace, name] = state.selected.split("/");
  const box = document.getElementById("graphs");
  const charts = await Promise.all(state.panels.map(async (panel) => {
    try {
      const answer = await fetch(`/api/scalesets/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/graphs/${panel.key}?seconds=${graphSeconds()}`, {
        headers: { "X-Dashboard-Token": state.token },
      });
      const doc = await answer.json();
      return answer.ok ? chart(doc) : el("p", { class: "error", text: `${panel.title}: ${doc.error}` });
    } catch (err) {
      return el("p", { class: "error", text: `${panel.title}: ${err}` });
    }
  }));
  box.replaceChildren(...charts);
}

// --- start ----------------------------------------------------------------------------------

async function main() {
  const p = params();
  state.token = p.get("token") || sessionStorage.getItem("dashboard-token") || "";
  if (!state.token) {
    say("Open the URL that `kubectl scaleset dashboard` printed: it carries the access token.", "error");
    return;
  }
  sessionStorage.setItem("dashboard-token", state.token);
  document.getElementById("start").addEventListener("click", () => act("start"));
  document.getElementById("cancel").addEventListener("click", () => act("cancel"));
  try {
    const answer = await fetch("/api/config", { headers: { "X-Dashboard-Token": state.token } });
    const config = await answer.json();
    if (!answer.ok) { say(config.error || "refused", "error"); return; }
    state.panels = config.panels || [];
    document.getElementById("graphs-panel").hidden = state.panels.length === 0;
    // Prometheus keeps moving after the scale set settles: graphs redraw on their own clock.
    if (state.panels.length) setInterval(drawGraphs, GRAPH_SECONDS * 1000);
  } catch (err) {
    say(`The dashboard server does not answer: ${err}`, "error");
  }
  select(p.get("scaleset") || "");
}

document.addEventListener("DOMContentLoaded", main);
