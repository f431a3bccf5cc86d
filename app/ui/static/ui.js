// mock-openai web UI: live statistics from /ui/events (SSE), the request list from /_mock/requests.
// Everything a client sent is set with textContent, never as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function ms(value) {
  if (value === null || value === undefined) return "–";
  return value < 10 ? value.toFixed(2) + " ms" : value < 1000 ? value.toFixed(0) + " ms" : (value / 1000).toFixed(2) + " s";
}

function number(value) {
  return value === null || value === undefined ? "–" : Number(value).toLocaleString("en-US");
}

function setText(id, text) {
  const node = document.getElementById(id);
  if (node) node.textContent = text;
}

// --- live statistics --------------------------------------------------------------------------------------

const listeners = [];

function connectLive() {
  const dot = document.getElementById("live");
  const source = new EventSource("/ui/events");
  source.addEventListener("open", () => dot && dot.classList.add("on"));
  source.addEventListener("error", () => dot && dot.classList.remove("on"));
  source.addEventListener("stats", (event) => {
    const stats = JSON.parse(event.data);
    for (const listen of listeners) listen(stats);
  });
}

function barChart(node, counts, classOf) {
  node.replaceChildren();
  const entries = Object.entries(counts);
  const width = 300, height = 160, base = 140;
  node.appendChild(svg("line", { x1: 0, y1: base, x2: width, y2: base, class: "axis" }));
  if (!entries.length) {
    node.appendChild(svg("text", { x: width / 2, y: 80, "text-anchor": "middle" }, "no requests yet"));
    return;
  }
  const most = Math.max(...entries.map(([, n]) => n));
  const slot = width / entries.length;
  const barWidth = Math.min(48, slot * 0.6);
  entries.forEach(([label, n], i) => {
    const h = Math.max(1, (n / most) * (base - 20));
    const x = i * slot + (slot - barWidth) / 2;
    const bar = svg("rect", { x, y: base - h, width: barWidth, height: h, class: "bar " + classOf(label), "data-label": label });
    bar.appendChild(svg("title", {}, `${label}: ${n}`));
    node.appendChild(bar);
    node.appendChild(svg("text", { x: x + barWidth / 2, y: base - h - 4, "text-anchor": "middle" }, n));
    node.appendChild(svg("text", { x: x + barWidth / 2, y: base + 14, "text-anchor": "middle" }, label));
  });
}

function timeChart(node, series) {
  node.replaceChildren();
  const width = 600, height = 160, base = 140;
  const most = Math.max(1, ...series);
  const step = width / Math.max(1, series.length - 1);
  const points = series.map((n, i) => `${(i * step).toFixed(1)},${(base - (n / most) * (base - 20)).toFixed(1)}`);
  node.appendChild(svg("line", { x1: 0, y1: base, x2: width, y2: base, class: "axis" }));
  node.appendChild(svg("polygon", { points: `0,${base} ${points.join(" ")} ${width},${base}`, class: "area" }));
  node.appendChild(svg("text", { x: 2, y: 12 }, `${most} / s`));
  node.appendChild(svg("text", { x: 2, y: base + 14 }, "−60 s"));
  node.appendChild(svg("text", { x: width - 2, y: base + 14, "text-anchor": "end" }, "now"));
}

function countsTable(id, counts) {
  const body = document.querySelector(`#${id} tbody`);
  if (!body) return;
  body.replaceChildren();
  const entries = Object.entries(counts);
  if (!entries.length) body.appendChild(el("tr")).appendChild(el("td", { class: "empty" }, "none yet"));
  for (const [label, n] of entries) {
    const row = body.appendChild(el("tr"));
    row.appendChild(el("td", {}, label));
    row.appendChild(el("td", {}, number(n)));
  }
}

function dashboard() {
  if (!document.getElementById("total")) return;
  listeners.push((stats) => {
    setText("total", number(stats.total_requests));
    setText("success", stats.success_rate === null ? "–" : (stats.success_rate * 100).toFixed(1) + " %");
    setText("rps", stats.requests_per_second.toFixed(1));
    setText("latency", `${ms(stats.latency_ms.p50)} / ${ms(stats.latency_ms.p95)}`);
    setText("ttft", `${ms(stats.ttft_ms.p50)} / ${ms(stats.ttft_ms.p95)}`);
    setText("tokens", `${number(stats.tokens.prompt)} / ${number(stats.tokens.completion)}`);
    setText("streams", number(stats.active_streams));
    barChart(document.getElementById("chart-method"), stats.by_method, () => "");
    barChart(document.getElementById("chart-status"), stats.by_status, (status) => "s" + String(status)[0] + "xx");
    timeChart(document.getElementById("chart-time"), stats.timeline.requests);
    countsTable("by-model", stats.by_model);
    countsTable("by-path", stats.by_path);
  });
}

// --- the request list -------------------------------------------------------------------------------------

function previewCell(cell, preview) {
  // The first words of what was asked and what came back, as text (never HTML), each on its own line.
  cell.className = "preview";
  cell.appendChild(el("span", { class: "asked" }, preview.asked || "–"));
  cell.appendChild(el("span", { class: "answered" }, preview.answered || "–"));
}

function requestList() {
  const form = document.getElementById("filters");
  if (!form) return;
  const body = document.querySelector("#requests tbody");
  const newer = document.getElementById("newer");
  const older = document.getElementById("older");
  const error = document.getElementById("list-error");
  const limit = 50;
  let cursors = [null]; // the cursor of each page seen, newest page first
  let journalTotal = null; // the whole journal's count, from the live statistics

  function query() {
    const params = new URLSearchParams({ limit: String(limit) });
    for (const name of ["method", "status", "path", "model", "api", "batch", "q"]) {
      const value = form.elements[name].value.trim();
      if (value) params.set(name, value);
    }
    const cursor = cursors[cursors.length - 1];
    if (cursor !== null) params.set("cursor", String(cursor));
    return params;
  }

  async function load() {
    const response = await fetch("/_mock/requests?" + query().toString(), { headers: { Accept: "application/json" } });
    const page = await response.json();
    if (!response.ok) {
      error.hidden = false;
      error.textContent = page.error ? page.error.message : `HTTP ${response.status}`;
      return;
    }
    error.hidden = true;
    render(page);
  }

  function render(page) {
    body.replaceChildren();
    if (!page.data.length) body.appendChild(el("tr")).appendChild(el("td", { colspan: 12, class: "empty" }, "No requests match."));
    for (const entry of page.data) {
      const row = el("tr", { "data-id": String(entry.id) });
      const tokens = entry.usage ? `${entry.usage.prompt_tokens} / ${entry.usage.completion_tokens}` : "–";
      const cells = [
        new Date(entry.time * 1000).toLocaleTimeString("en-GB", { hour12: false }) + "." + String(Math.floor((entry.time % 1) * 1000)).padStart(3, "0"),
        entry.request_id || "–", entry.method, entry.path, entry.status, entry.model || "–", (entry.api || "openai") + (entry.batch ? " · batch" : ""), null,
        entry.stream ? "yes" : "", ms(entry.latency_ms), tokens, entry.response.ending || "",
      ];
      cells.forEach((text, i) => {
        const cell = row.appendChild(el("td", {}, text));
        if (i === 1) cell.className = "request-id";
        if (i === 3) cell.className = "path";
        if (i === 4) cell.className = "status-cell s" + String(entry.status)[0] + "xx-text";
        if (i === 6) cell.className = "api";
        if (i === 7) previewCell(cell, entry.preview);
      });
      row.addEventListener("click", () => { window.location.href = `/ui/requests/${entry.id}`; });
      body.appendChild(row);
    }
    const pageNumber = cursors.length;
    setText("page-info", `page ${pageNumber} · ${number(page.total)} matching`);
    newer.disabled = pageNumber === 1;
    older.disabled = !page.has_more;
    older.dataset.next = page.next_cursor === null ? "" : String(page.next_cursor);
  }

  // A link to the list with filters (a batch's lines, from a request's page) starts with them set.
  for (const [name, value] of new URLSearchParams(window.location.search)) {
    if (form.elements[name] && form.elements[name].type !== "checkbox") form.elements[name].value = value;
  }
  form.addEventListener("submit", (event) => { event.preventDefault(); cursors = [null]; load(); });
  older.addEventListener("click", () => { cursors.push(older.dataset.next); load(); });
  newer.addEventListener("click", () => { cursors.pop(); load(); });
  listeners.push((stats) => {
    // Live: the newest page follows the journal; older pages hold still while they are read.
    const changed = stats.total_requests !== journalTotal;
    journalTotal = stats.total_requests;
    if (changed && form.elements.live.checked && cursors.length === 1) load();
  });
  load();
}

// --- pages ------------------------------------------------------------------------------------------------

function copyButtons() {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const text = document.getElementById(button.dataset.copy).textContent;
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch (_) {
        // No clipboard (a page over plain HTTP on another host): select the text for a manual copy.
        const range = document.createRange();
        range.selectNodeContents(document.getElementById(button.dataset.copy));
        window.getSelection().replaceChildren(range);
        button.textContent = "Selected: press Ctrl+C";
      }
    });
  }
}

function localTimes() {
  for (const node of document.querySelectorAll(".time[data-time]")) {
    node.textContent = new Date(Number(node.dataset.time) * 1000).toISOString();
  }
}

dashboard();
requestList();
localTimes();
copyButtons();
if (listeners.length) connectLive();
