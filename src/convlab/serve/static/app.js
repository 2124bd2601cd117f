// convlab playground: a thin view over convlab's JSON API (/api/summary, /api/explain, /api/solve, /api/zoo).
// Every value from the server is written with textContent (never as HTML).
"use strict";

const $ = (id) => document.getElementById(id);
const DEBOUNCE_MS = 40;
const state = { seq: 0, controller: null, timer: null, keyAt: null, last: null, format: "text", selected: null,
  view: "volumes" };

function el(tag, attrs = {}, text = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== null) e.textContent = text;
  return e;
}

const fmtInt = (n) => Number(n).toLocaleString("en-US");
function si(n) {
  if (n === 0) return "0";
  const units = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [v, u] of units) if (Math.abs(n) >= v) return (n / v).toPrecision(4).replace(/\.?0+$/, "") + " " + u;
  return String(n);
}
const shapeText = (s) => (s.length > 1 ? s.slice(1) : s).join("×");
function rfText(rf) {
  if (rf === null || rf === undefined) return "";
  if (typeof rf === "string") return rf;
  const [h, w] = rf.size, [jh, jw] = rf.jump;
  return (h === w ? `${h}` : `${h}×${w}`) + `  (jump ${jh === jw ? jh : jh + "×" + jw})`;
}

// ---------------------------------------------------------------- the underline under the bad token

function offsetOf(text, line, column) {
  let off = 0;
  const lines = text.split("\n");
  for (let i = 0; i < line - 1 && i < lines.length; i++) off += lines[i].length + 1;
  return Math.min(text.length, off + Math.max(0, column - 1));
}

function paintBackdrop(err) {
  const text = $("spec").value, bd = $("backdrop");
  bd.textContent = "";
  if (!err || !err.line) { bd.textContent = text + "\n"; return; }
  const start = offsetOf(text, err.line, err.column);
  const end = Math.min(text.length, start + Math.max(1, err.width || 1));
  bd.append(document.createTextNode(text.slice(0, start)));
  const mark = el("mark", { id: "error-mark", "data-line": err.line, "data-column": err.column }, text.slice(start, end) || " ");
  bd.append(mark, document.createTextNode(text.slice(end) + "\n"));
}

function syncScroll() { $("backdrop").scrollTop = $("spec").scrollTop; }

// ---------------------------------------------------------------- rendering

function cells(r) {
  return [r.name, r.type, shapeText(r.output_shape), fmtInt(r.trainable_params), fmtInt(r.non_trainable_params),
    si(r.macs), rfText(r.receptive_field)];
}

function renderSummary(s) {
  const tbody = $("table").querySelector("tbody");
  const explainable = new Set(s.explainable || []);
  const old = tbody.rows;
  const same = old.length === s.rows.length && s.rows.every((r, i) => old[i].dataset.name === r.name &&
    old[i].dataset.type === r.type && old[i].classList.contains("explainable") === explainable.has(r.name) &&
    old[i].classList.contains("container") === !r.leaf);
  if (same) {  // a keystroke usually changes a few numbers: touch only the cells that differ
    s.rows.forEach((r, i) => {
      const tds = old[i].cells, texts = cells(r);
      texts.forEach((t, j) => { if (tds[j].textContent !== t) tds[j].textContent = t; });
      tds[5].title = fmtInt(r.macs);
    });
  } else {
    const frag = document.createDocumentFragment();
    for (const r of s.rows) {
      const tr = el("tr", { "data-name": r.name, "data-type": r.type });
      if (!r.leaf) tr.classList.add("container");
      if (explainable.has(r.name)) {
        tr.classList.add("explainable");
        tr.addEventListener("click", () => explain(r.name, tr));
      }
      cells(r).forEach((t, j) => tr.append(el("td", j >= 2 ? { class: "num" } : {}, t)));
      tr.cells[0].style.paddingLeft = `${8 + 14 * (r.depth || 0)}px`;
      tr.cells[5].title = fmtInt(r.macs);
      frag.append(tr);
    }
    tbody.replaceChildren(frag);
  }
  const totals = $("totals");
  totals.textContent = "";
  totals.append(el("pre", { id: "totals-text" }, [...(s.zoo ? [s.model] : []), ...s.totals_text].join("\n")));
  $("python").textContent = s.python;
  if (state.selected && explainable.has(state.selected)) {
    const tr = tbody.querySelector(`tr[data-name="${CSS.escape(state.selected)}"]`);
    if (tr) explain(state.selected, tr);
  } else if (state.selected) {
    $("explain").hidden = true;
    state.selected = null;
  }
}

function showError(body) {
  $("error").hidden = false;
  $("error-kind").textContent = body.kind || "error";
  $("error-message").textContent = body.message || "";
  $("view").classList.toggle("stale", state.last !== null);
  paintBackdrop(body);
}

function clearError() {
  $("error").hidden = true;
  $("view").classList.remove("stale");
  paintBackdrop(null);
}

// ---------------------------------------------------------------- requests

function params() {
  const p = { spec: $("spec").value };
  const input = $("input").value.trim();
  if (input) p.input = input;
  if (state.format !== "text") p.format = state.format;
  return p;
}

async function getJSON(route, p, signal) {
  const r = await fetch(`/api/${route}?` + new URLSearchParams(p), { signal });
  return r.json();
}

// ---------------------------------------------------------------- the picture (convlab draw)

function pictureParams(p) {
  const q = { ...p, view: state.view };
  if ($("depth").value) q.depth = $("depth").value;
  return q;
}

function fetchPicture(p, signal) {
  return getJSON("draw", pictureParams(p), signal).catch((e) =>
    e.name === "AbortError" ? null : { ok: false, message: "the playground's server does not answer" });
}

function renderPicture(body, my) {
  const img = $("picture"), err = $("picture-error"), save = $("picture-save");
  if (body.ok) {
    const url = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(body.svg);
    img.src = url;  // an <img>: the SVG is a picture here, nothing in it can run
    img.dataset.view = body.view;
    img.dataset.nodes = body.nodes === undefined ? "" : String(body.nodes);
    img.hidden = false;
    err.hidden = true;
    save.href = url;
    save.download = `${(body.model || "model").replace(/[^A-Za-z0-9_.-]+/g, "-").slice(0, 60)}-${body.view}.svg`;
    save.hidden = false;
    $("picture-status").textContent = body.view === "graph" ? `${body.nodes} boxes, ${body.edges} edges` : "";
  } else {
    err.textContent = body.message || "could not draw this model";
    err.hidden = false;
    $("picture-status").textContent = "";
  }
  document.body.dataset.pictureSeq = String(my);
  document.body.dataset.picture = body.ok ? "ok" : "error";
  if (state.keyAt !== null) document.body.dataset.pictureLatency = (performance.now() - state.keyAt).toFixed(1);
}

function selectTab(view) {
  state.view = view;
  for (const t of document.querySelectorAll(".tab")) t.setAttribute("aria-selected", String(t.dataset.view === view));
}

async function update() {
  state.timer = null;
  const my = ++state.seq;
  if (state.controller) state.controller.abort();
  state.controller = new AbortController();
  const p = params();
  const picture = fetchPicture(p, state.controller.signal);  // in parallel: the table does not wait for it
  let body;
  try {
    body = await getJSON("summary", p, state.controller.signal);
  } catch (e) {
    if (e.name === "AbortError") return;
    body = { ok: false, kind: "connection", message: "the playground's server does not answer (is `convlab serve` still running?)" };
  }
  if (my !== state.seq) return;
  if (body.ok) {
    state.last = body;
    renderSummary(body);
    clearError();
    const q = new URLSearchParams({ spec: p.spec });
    if (p.input) q.set("input", p.input);
    if (p.format) q.set("format", p.format);
    if (state.view !== "volumes") q.set("view", state.view);
    if ($("depth").value) q.set("depth", $("depth").value);
    history.replaceState(null, "", "?" + q.toString());
  } else {
    showError(body);
  }
  const ms = state.keyAt === null ? null : performance.now() - state.keyAt;
  document.body.dataset.seq = String(my);
  if (state.timer === null) delete document.body.dataset.pending;
  document.body.dataset.state = body.ok ? "ok" : "error";
  if (ms !== null) {
    document.body.dataset.latency = ms.toFixed(1);
    $("status").textContent = `updated ${ms.toFixed(0)} ms after the last keystroke (${DEBOUNCE_MS} ms of it waiting for you to pause)`;
  }
  if (body.ok) {  // on an error the last good picture stays, dimmed with the table
    const pic = await picture;
    if (pic && my === state.seq) renderPicture(pic, my);
  }
}

function schedule() {
  state.keyAt = performance.now();
  paintBackdrop(null);
  clearTimeout(state.timer);
  state.timer = setTimeout(update, DEBOUNCE_MS);
  document.body.dataset.pending = "1";
}

async function explain(name, tr) {
  state.selected = name;
  for (const row of document.querySelectorAll("tr.selected")) row.classList.remove("selected");
  tr.classList.add("selected");
  const body = await getJSON("explain", { ...params(), layer: name });
  const box = $("explain");
  box.hidden = false;
  if (!body.ok) {
    $("explain-title").textContent = name;
    $("explain-text").textContent = body.message;
    return;
  }
  const st = body.settings;
  const pad = Array.isArray(st.padding) ? st.padding.join("×") : st.padding;
  $("explain-title").textContent =
    `${body.layer}: ${body.type}, kernel ${st.kernel.join("×")}, stride ${st.stride.join("×")}, padding ${pad}` +
    ` on ${body.input.join("×")}`;
  $("explain-text").textContent = body.text;
  $("solve-in").value = body.input[0];
  $("solve-out").value = Array.isArray(body.output) ? body.output[0] : body.output;
  $("solutions").textContent = "";
}

async function solve(ev) {
  ev.preventDefault();
  const body = await getJSON("solve", { in: $("solve-in").value, out: $("solve-out").value });
  const list = $("solutions");
  list.textContent = "";
  if (!body.ok) { list.append(el("li", { class: "inexact" }, body.message)); return; }
  if (!body.count) list.append(el("li", { class: "inexact" }, `no kernel 1–7, stride 1–4, dilation 1–3 maps ${body.in} to ${body.out}`));
  for (const s of body.solutions) {
    const note = s.exact ? (s.same_style ? "reads every row, centred padding" : "reads every row")
      : `leaves ${s.dropped} row(s) unread`;
    list.append(el("li", { class: s.exact ? "" : "inexact" }, `${s.text}  — ${note}`));
  }
  if (body.count > body.solutions.length) list.append(el("li", { class: "inexact" }, `… ${body.count - body.solutions.length} more`));
}

// ---------------------------------------------------------------- set-up

async function loadZoo() {
  try {
    const body = await getJSON("zoo", {});
    for (const name of body.models || []) $("zoo").append(el("option", { value: name }, name));
  } catch (e) { /* the list is a convenience; typing a name works without it */ }
}

function setFormat(name) {
  state.format = /\.json$/i.test(name) ? "json" : /\.ya?ml$/i.test(name) ? "yaml" : "text";
  $("format").textContent = state.format === "text" ? "" : `read as ${state.format.toUpperCase()}`;
}

function init() {
  const q = new URLSearchParams(location.search);
  $("spec").value = q.get("spec") ?? "conv(6,5,p=2) bn relu maxpool(2)\nconv(16,5) bn relu maxpool(2)\nflatten fc(120) relu fc(84) relu fc(10)";
  $("input").value = q.get("input") ?? (q.has("spec") ? "" : "1,28,28");
  if (q.get("format") === "yaml" || q.get("format") === "json") setFormat("x." + q.get("format"));
  if (q.get("view") === "graph") selectTab("graph");
  if (["1", "2"].includes(q.get("depth"))) $("depth").value = q.get("depth");
  $("spec").addEventListener("input", schedule);
  $("spec").addEventListener("scroll", syncScroll);
  $("input").addEventListener("input", schedule);
  $("zoo").addEventListener("change", () => {
    if (!$("zoo").value) return;
    $("spec").value = $("zoo").value; $("input").value = ""; setFormat(""); $("zoo").value = ""; schedule();
  });
  $("solve-form").addEventListener("submit", solve);
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => { selectTab(tab.dataset.view); schedule(); });
  }
  $("depth").addEventListener("change", schedule);
  $("copy").addEventListener("click", async () => {
    const line = $("python").textContent;
    try { await navigator.clipboard.writeText(line); $("copy").textContent = "copied"; }
    catch (e) { getSelection().selectAllChildren($("python")); $("copy").textContent = "press Ctrl-C"; }
    setTimeout(() => { $("copy").textContent = "copy as Python"; }, 1500);
  });
  const box = $("spec");
  box.addEventListener("dragover", (e) => e.preventDefault());
  box.addEventListener("drop", (e) => {
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (!file) return;
    e.preventDefault();
    file.text().then((text) => { box.value = text; setFormat(file.name); schedule(); });
  });
  paintBackdrop(null);
  loadZoo();
  update();
}

document.addEventListener("DOMContentLoaded", init);
