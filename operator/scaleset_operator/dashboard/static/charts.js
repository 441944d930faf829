// Drawing in inline SVG for the dashboard page: the timeline of a run and the graphs of
// Prometheus series, from the documents the server sends. Loaded before dashboard.js,
// which calls them and owns everything else.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

function timelineSvg(tl) {
  const start = Date.parse(tl.start);
  const end = tl.end ? Date.parse(tl.end) : Date.now();
  const span = Math.max(end - start, 1000);
  const width = 900, height = 90, left = 10, right = 10;
  const x = (t) => left + ((Date.parse(t) - start) / span) * (width - left - right);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "timeline", role: "img" });
  root.append(svg("line", { x1: left, x2: width - right, y1: 40, y2: 40, class: "axis" }));
  if (tl.missedBatches > 0 && tl.batches.length === 0) {
    root.append(svg("text", { x: left, y: 30, class: "note" }, `${tl.missedBatches} batches ran before the dashboard started`));
  }
  let previousEnd = null;
  for (const b of tl.batches) {
    const x0 = x(b.start);
    const x1 = b.end ? x(b.end) : x(new Date(end).toISOString());
    if (previousEnd !== null && x0 - previousEnd > 2) {
      root.append(svg("rect", { x: previousEnd, y: 34, width: x0 - previousEnd, height: 12, class: "pause" }));
    }
    const cls = b.failed.length ? "batch failed" : (b.end ? "batch done" : "batch running");
    const rect = svg("rect", { x: x0, y: 28, width: Math.max(x1 - x0, 3), height: 24, class: cls, "data-batch": b.number });
    rect.append(svg("title", {}, `batch ${b.number}${b.zone ? ` in ${b.zone}` : ""}: ${b.ids.join(", ")}${b.failed.length ? `; failed ${b.failed.join(", ")}` : ""}`));
    root.append(rect);
    root.append(svg("text", { x: x0 + 2, y: 22, class: "label" }, String(b.number)));
    previousEnd = x1;
  }
  for (const r of tl.rollbacks) {
    const rx = x(r.at);
    const mark = svg("path", { d: `M${rx},58 l-6,12 h12 z`, class: "rollback-mark" });
    mark.append(svg("title", {}, `rollback of ${r.ids.join(", ")} at ${when(r.at)}`));
    root.append(mark);
  }
  if (tl.cancelledAt) root.append(svg("line", { x1: x(tl.cancelledAt), x2: x(tl.cancelledAt), y1: 20, y2: 60, class: "cancel-mark" }));
  root.append(svg("text", { x: left, y: 85, class: "note" }, `${when(tl.start)} · ${tl.startedBy} → ${tl.target}`));
  root.append(svg("text", { x: width - right, y: 85, class: "note end", "text-anchor": "end" }, tl.end ? `${tl.code} ${when(tl.end)}` : "running"));
  return root;
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"];

function chart(doc) {
  const width = 420, height = 180, pad = 30;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "graph", "data-panel": doc.key, role: "img" });
  root.append(svg("text", { x: pad, y: 14, class: "graph-title" }, doc.title));
  const all = doc.series.flatMap((s) => s.points);
  const top = Math.max(1, ...all.map((p) => p[1]));
  const x = (t) => pad + ((t - doc.start) / Math.max(doc.end - doc.start, 1)) * (width - 2 * pad);
  const y = (v) => height - pad - (v / top) * (height - 2 * pad);
  root.append(svg("line", { x1: pad, x2: width - pad, y1: height - pad, y2: height - pad, class: "axis" }));
  root.append(svg("text", { x: 2, y: y(top) + 4, class: "note" }, String(top)));
  doc.series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length];
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    if (d) root.append(svg("path", { d, class: "series", stroke: colour, "data-series": s.name }));
    if (s.points.length === 1) root.append(svg("circle", { cx: x(s.points[0][0]), cy: y(s.points[0][1]), r: 3, fill: colour }));
    root.append(svg("text", { x: width - 4, y: 14 + i * 12, class: "legend-text", fill: colour, "text-anchor": "end" }, s.name));
  });
  const clock = (t) => new Date(t * 1000).toISOString().slice(11, 16);
  root.append(svg("text", { x: pad, y: height - pad + 14, class: "note" }, clock(doc.start)));
  root.append(svg("text", { x: width - pad, y: height - pad + 14, class: "note", "text-anchor": "end" }, clock(doc.end)));
  if (!doc.series.length) root.append(svg("text", { x: width / 2, y: height / 2, class: "note", "text-anchor": "middle" }, "no data"));
  return root;
}
