// zen dashboard: reads the JSON API beside it (api/*) and draws with plain DOM and SVG.
// No dependencies; text from threads is only ever set as textContent.
"use strict";

const API = "api/";
const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
  "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const OTHER = "#8a8f96";
const state = { unit: "day", dim: "model", mperiod: "this_month", calls: null, thread: null };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c));
  return node;
}
function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : String(c));
  return node;
}

// Money as `zend status` prints it: cents from $1 up, else two significant digits.
function usd(amount) {
  if (!Number.isFinite(amount)) return "$?";
  const sign = amount < 0 ? "-" : "";
  const a = Math.abs(amount);
  if (a === 0) return "$0.00";
  if (a >= 1) return sign + "$" + a.toFixed(2);
  const decimals = a >= 0.01 ? 4 : Math.min(Math.floor(-Math.log10(a)) + 2, 12);
  let [whole, frac] = a.toFixed(decimals).split(".");
  frac = (frac || "").replace(/0+$/, "");
  if (frac.length < 2) frac = frac.padEnd(2, "0");
  return sign + "$" + whole + "." + frac;
}
function cost(u) {
  if (!u || u.calls === 0) return "$0.00";
  if (u.calls === u.unpriced_calls) return "unknown";
  return usd(u.cost_usd) + (u.unpriced_calls ? " +" + u.unpriced_calls + " unpriced" : "");
}
function tokens(n) {
  if (n < 1000) return String(n);
  if (n < 1e6) return (n / 1e3).toFixed(1) + "k";
  return (n / 1e6).toFixed(2) + "M";
}
function secs(ms) { return ms == null ? "–" : (ms / 1000).toFixed(1) + "s"; }
function age(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  return Math.floor(s / 3600) + "h " + Math.floor(s % 3600 / 60) + "m";
}
function when(iso) { return iso ? iso.replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC") : "–"; }
function base(path) { const parts = (path || "").split("/").filter(Boolean); return parts.length ? parts[parts.length - 1] : path || "(none)"; }

async function get(path) {
  const response = await fetch(API + path, { credentials: "same-origin", cache: "no-store" });
  if (response.status === 401) { location.reload(); throw new Error("logged out"); }
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}

function renderTotals(t) {
  for (const key of ["today", "this_month", "all_time"]) {
    const total = t[key].total;
    const c = document.getElementById(key + "-cost");
    c.textContent = cost(total);
    c.dataset.usd = total.cost_usd;
    c.dataset.calls = total.calls;
    document.getElementById(key + "-detail").textContent =
      `${total.calls} calls · ${total.errors} errors · ${tokens(total.input_tokens)} in / ${tokens(total.output_tokens)} out`;
  }
  renderModels(t);
}

function renderModels(t) {
  const body = document.querySelector("#model-table tbody");
  const rows = Object.entries(t[state.mperiod].by_model).sort((a, b) => b[1].cost_usd - a[1].cost_usd);
  body.replaceChildren(...(rows.length ? rows.map(([name, u]) => el("tr", { "data-model": name },
    el("td", {}, name), el("td", {}, u.calls), el("td", {}, u.errors), el("td", {}, tokens(u.input_tokens)),
    el("td", {}, tokens(u.output_tokens)), el("td", {}, tokens(u.cached_tokens)), el("td", { class: "cost" }, cost(u)),
    el("td", {}, secs(u.p50_latency_ms)), el("td", {}, secs(u.p90_latency_ms)), el("td", {}, secs(u.p99_latency_ms))))
    : [el("tr", {}, el("td", { colspan: 10, class: "muted" }, "No calls in this period."))]));
}

function renderBudgets(b) {
  document.getElementById("limits-file").textContent = b.file;
  const box = document.getElementById("budgets");
  if (!b.budgets.length) {
    box.replaceChildren(el("p", { class: "muted" }, "No budgets set. Set budgets.daily_usd or budgets.monthly_usd in ", el("code", {}, b.file), "."));
    return;
  }
  box.replaceChildren(...b.budgets.map(x => {
    const fill = el("div");
    fill.style.width = Math.min(100, x.fraction * 100).toFixed(1) + "%";
    const bar = el("div", { class: "bar" + (x.fraction >= 1 ? " over" : x.fraction >= b.warn_at ? " warn" : "") }, fill);
    const out = x.runs_out_at ? "runs out " + when(x.runs_out_at) : "lasts until the reset at this rate";
    return el("div", { class: "budget", "data-budget": x.label },
      el("div", {}, el("strong", {}, x.label), " ", el("span", { class: "muted" }, `${usd(x.spent_usd)} of ${usd(x.cap_usd)} (${Math.round(x.fraction * 100)}%)`)),
      bar,
      el("div", { class: "muted" }, `resets ${when(x.resets_at)} · ${out}`));
  }));
}

function renderChart(series) {
  const key = "by_" + state.dim;
  const periods = series.periods;
  // The names with the most spend over the whole range get colours; the rest are "other".
  const sums = new Map();
  for (const p of periods) for (const [name, u] of Object.entries(p[key])) sums.set(name, (sums.get(name) || 0) + u.cost_usd);
  const names = [...sums.entries()].filter(e => e[1] > 0).sort((a, b) => b[1] - a[1]).map(e => e[0]);
  const shown = names.slice(0, PALETTE.length - 1);
  const color = new Map(shown.map((n, i) => [n, PALETTE[i]]));
  const stacks = periods.map(p => {
    const parts = shown.map(n => [n, p[key][n] ? p[key][n].cost_usd : 0]);
    const named = parts.reduce((s, x) => s + x[1], 0);
    const rest = Math.max(0, p.total.cost_usd - named);
    if (rest > 1e-12) parts.push([state.dim === "project" ? "other / no directory" : "other", rest]);
    return { label: p.period, total: p.total.cost_usd, calls: p.total.calls, parts };
  });
  const max = Math.max(1e-9, ...stacks.map(s => s.total));
  const W = 900, H = 260, left = 56, bottom = 34, top = 10;
  const step = (W - left - 8) / Math.max(1, stacks.length);
  const bw = Math.max(2, step * 0.72);
  const y = v => top + (H - top - bottom) * (1 - v / max);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "spend by " + state.dim });
  for (let i = 0; i <= 4; i++) {
    const v = max * i / 4;
    chart.append(svg("line", { class: "grid", x1: left, x2: W - 4, y1: y(v), y2: y(v) }),
      svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, usd(v)));
  }
  const every = Math.ceil(stacks.length / 10);
  stacks.forEach((s, i) => {
    const x = left + i * step + (step - bw) / 2;
    const g = svg("g", { class: "stack", "data-period": s.label, "data-usd": s.total });
    let acc = 0;
    for (const [name, v] of s.parts) {
      if (v <= 0) continue;
      const r = svg("rect", { x, width: bw, y: y(acc + v), height: Math.max(0.5, y(acc) - y(acc + v)), fill: color.get(name) || OTHER, "data-name": name, "data-usd": v });
      r.append(svg("title", {}, `${s.label} · ${name}: ${usd(v)}`));
      g.append(r);
      acc += v;
    }
    const hit = svg("rect", { x, width: bw, y: top, height: H - top - bottom, fill: "transparent" });
    hit.append(svg("title", {}, `${s.label}: ${usd(s.total)}, ${s.calls} calls`));
    g.append(hit);
    if (i % every === 0 || i === stacks.length - 1) {
      const text = state.unit === "month" ? s.label : s.label.slice(5);
      g.append(svg("text", { x: x + bw / 2, y: H - bottom + 16, "text-anchor": "middle" }, text));
    }
    chart.append(g);
  });
  document.getElementById("chart").replaceChildren(chart);
  const legend = [...shown.map(n => [n, color.get(n)])];
  if (stacks.some(s => s.parts.length > shown.length)) legend.push([state.dim === "project" ? "other / no directory" : "other", OTHER]);
  document.getElementById("legend").replaceChildren(...(legend.length ? legend.map(([n, c]) => {
    const item = el("span", { title: n }, state.dim === "project" ? base(n) : n);
    item.style.setProperty("--c", c);
    return item;
  }) : [el("span", { class: "muted" }, "No spend in this range.")]));
}

function renderLive(live) {
  const inflight = document.getElementById("live-inflight");
  inflight.textContent = `${live.in_flight_calls} in flight`;
  inflight.dataset.inflight = live.in_flight_calls;
  document.getElementById("live-sessions-count").textContent = `${live.sessions.length} live sessions · zend ${live.daemon_version}`;
  const body = document.querySelector("#session-table tbody");
  body.replaceChildren(...(live.sessions.length ? live.sessions.map(s => el("tr", {},
    el("td", {}, s.id), el("td", {}, (s.client || "(initializing)") + (s.client_version ? " " + s.client_version : "")),
    el("td", { title: s.project || "" }, s.project ? base(s.project) : s.transport),
    el("td", {}, age(s.age_ms)), el("td", {}, s.in_flight_calls)))
    : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No live sessions."))]));
  document.getElementById("status").textContent = `live · ${live.calls_all_time} calls recorded · ${when(live.as_of)}`;
}

async function loadThreads() {
  const form = new FormData(document.getElementById("thread-search"));
  const query = new URLSearchParams();
  for (const [k, v] of form) if (String(v).trim()) query.set(k, String(v).trim());
  query.set("limit", "100");
  const threads = await get("threads?" + query);
  const list = document.getElementById("thread-list");
  list.replaceChildren(...(threads.length ? threads.map(t => {
    const item = el("li", { "data-id": t.id },
      el("span", { class: "title" }, t.title || "(untitled)"),
      el("span", { class: "muted" }, `${t.tools.join(", ")} · ${t.models.join(", ") || "no model"} · ${t.turn_count} turns · ${when(t.updated)}`));
    if (t.id === state.thread) item.classList.add("on");
    item.addEventListener("click", () => showThread(t.id));
    return item;
  }) : [el("li", { class: "muted" }, "No threads match.")]));
}

async function showThread(id) {
  state.thread = id;
  for (const li of document.querySelectorAll("#thread-list li")) li.classList.toggle("on", li.dataset.id === id);
  const t = await get("threads/" + encodeURIComponent(id));
  const copy = el("button", { type: "button" }, "Copy");
  copy.addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(t.id); copy.textContent = "Copied"; }
    catch { copy.textContent = "Select and copy the id"; }
  });
  const view = document.getElementById("thread-view");
  view.className = "";
  view.replaceChildren(
    el("h3", {}, t.title || "(untitled)"),
    el("p", { class: "muted" }, `${t.client || "unknown client"} · ${t.cwd || "no directory"} · created ${when(t.created)} · expires ${when(t.expires)}`),
    el("div", { class: "continue" }, "Continue:", el("code", { class: "cid" }, t.id), copy,
      el("span", { class: "muted" }, "pass it as continuation_id to any zen tool, from any client, or run ",
        el("code", {}, "zend ask --continue " + t.id + " …"))),
    ...t.turns.map((turn, i) => el("div", { class: "turn" },
      el("header", {}, `#${i + 1} ${turn.role} · ${turn.tool}${turn.model ? " · " + turn.model : ""} · ${when(turn.time)} · ~${tokens(turn.tokens)} tokens`
        + (turn.files && turn.files.length ? ` · files: ${turn.files.join(", ")}` : "")),
      el("pre", {}, turn.text))));
}

async function refreshAll() {
  const [totals, budgets, series] = await Promise.all([get("totals"), get("budgets"), get(`series?unit=${state.unit}`)]);
  state.totals = totals;
  renderTotals(totals);
  renderBudgets(budgets);
  renderChart(series);
}

async function poll() {
  try {
    const live = await get("live");
    renderLive(live);
    if (state.calls !== live.calls_all_time) {
      const first = state.calls === null;
      state.calls = live.calls_all_time;
      await refreshAll();
      await loadThreads();
      // A link to one thread: #thread=<continuation id>.
      const linked = first && location.hash.match(/^#thread=([0-9a-fA-F-]+)$/);
      if (linked) await showThread(linked[1]);
    }
    document.body.dataset.ready = "1";
  } catch (e) {
    document.getElementById("status").textContent = "zend is not answering (" + e.message + "); retrying";
  }
  setTimeout(poll, 2000);
}

function segmented(id, key, then) {
  const box = document.getElementById(id);
  box.addEventListener("click", e => {
    const b = e.target.closest("button");
    if (!b) return;
    state[key] = b.dataset.v;
    for (const x of box.querySelectorAll("button")) x.classList.toggle("on", x === b);
    then();
  });
}

segmented("unit", "unit", async () => renderChart(await get(`series?unit=${state.unit}`)));
segmented("dim", "dim", async () => renderChart(await get(`series?unit=${state.unit}`)));
segmented("mperiod", "mperiod", () => state.totals && renderModels(state.totals));
document.getElementById("thread-search").addEventListener("submit", e => { e.preventDefault(); loadThreads(); });
poll();
