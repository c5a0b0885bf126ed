// The trader's screen: 2-minute candles with the six levels, and for each level in the approach zone
// the answer (P(BREAK/REJECT/CHOP) with intervals, smoothed P(BREAK), effective sample size, base rate)
// and its nearest past setups. Data comes from the server as server-sent events (/api/replay).
"use strict";

const LW = LightweightCharts;
const OUTCOMES = ["BREAK", "REJECT", "CHOP"];
const params = new URLSearchParams(location.search);
const el = (id) => document.getElementById(id);

let chart, candles, levelSeries = {}, smoothSeries = {}, styles = {}, source = null, markers = null;
let counts = { bars: 0, answers: 0 };
// The product shown (?product=, else the server's default) and its price format: the tick sets the decimals.
let product = null, priceFormat = { type: "price", precision: 2, minMove: 0.01 };

function formatFor(tick) {
  const decimals = Math.max(0, Math.min(8, Math.ceil(-Math.log10(tick) - 1e-9)));
  return { type: "price", precision: decimals, minMove: tick };
}

function setStatus(text, state) {
  const s = el("status");
  s.textContent = text;
  s.dataset.state = state;
}

function pct(p) { return p == null ? "-" : (100 * p).toFixed(0) + "%"; }

function buildCharts() {
  el("chart").innerHTML = "";
  // One chart, two panes sharing the time axis: candles and levels above, smoothed P(BREAK) below.
  chart = LW.createChart(el("chart"), { autoSize: true, layout: { background: { color: "#ffffff" }, textColor: "#333" }, timeScale: { timeVisible: true, secondsVisible: false } });
  candles = chart.addSeries(LW.CandlestickSeries, { upColor: "#ffffff", downColor: "#222222", borderColor: "#222222", wickColor: "#222222", priceFormat });
  markers = LW.createSeriesMarkers(candles, []);
  levelSeries = {};
  smoothSeries = {};
  counts = { bars: 0, answers: 0 };
  el("chart").dataset.bars = "0";
  el("answers").dataset.count = "0";
  el("problems").innerHTML = "";
}

function levelLine(kind) {
  if (!levelSeries[kind]) {
    const style = styles[kind] || { color: "#888", style: 0 };
    levelSeries[kind] = chart.addSeries(LW.LineSeries, { color: style.color, lineWidth: 1, lineStyle: style.style, title: kind, priceLineVisible: false, lastValueVisible: true, crosshairMarkerVisible: false, priceFormat });
  }
  return levelSeries[kind];
}

function smoothLine(kind) {
  if (!smoothSeries[kind]) {
    const style = styles[kind] || { color: "#888" };
    smoothSeries[kind] = chart.addSeries(LW.LineSeries, { color: style.color, lineWidth: 2, title: `P(BREAK) ${kind}`, priceLineVisible: false, priceFormat: { type: "custom", formatter: (p) => pct(p) } }, 1);
    chart.panes()[1].setHeight(170);
  }
  return smoothSeries[kind];
}

function renderAnswers(bar) {
  const box = el("answers");
  if (!bar.answers.length) {
    box.innerHTML = '<p class="muted">No level in the approach zone.</p>';
    return;
  }
  box.innerHTML = "";
  for (const a of bar.answers) {
    const card = document.createElement("div");
    card.className = "level";
    card.style.setProperty("--level", (styles[a.level_kind] || {}).color || "#888");
    const rows = OUTCOMES.map((o) => {
      const differs = a.lo[o] > a.base[o] || a.hi[o] < a.base[o];
      return `<tr class="${differs ? "differs" : ""}"><td>${o}</td><td>${pct(a.p[o])}</td><td>${pct(a.lo[o])}-${pct(a.hi[o])}</td><td>${pct(a.smooth[o])}</td><td>${pct(a.base[o])}</td></tr>`;
    }).join("");
    card.innerHTML =
      `<h3>${a.level_kind} ${a.direction === "UP" ? "from below" : "from above"}, ${a.distance_atr.toFixed(2)} ATR</h3>` +
      `<table class="probs"><tr><th></th><th>P</th><th>interval</th><th>smoothed</th><th>base</th></tr>${rows}</table>` +
      `<div class="muted">n_eff ${a.n_eff.toFixed(1)} of ${a.n_neighbours} neighbours; ${a.answer_source}; schema ${a.vector_version}</div>` +
      `<ul class="neighbours">${a.neighbours.map((n) => `<li data-date="${n.date}" data-time="${n.time}">${n.date} ${n.time} sim ${n.similarity.toFixed(3)} <span class="outcome-${n.outcome}">${n.outcome}</span></li>`).join("")}</ul>`;
    box.appendChild(card);
    counts.answers += 1;
  }
  box.dataset.count = String(counts.answers);
  for (const li of box.querySelectorAll(".neighbours li")) {
    li.addEventListener("click", () => { location.href = `/?product=${encodeURIComponent(product)}&date=${li.dataset.date}&at=${li.dataset.time}&speed=0`; });
  }
}

function onBar(bar) {
  candles.update({ time: bar.t, ...bar.candle });
  for (const lv of bar.levels) levelLine(lv.level_kind).update({ time: bar.t, value: lv.level_price });
  const inZone = new Set(bar.answers.map((a) => a.level_kind));
  for (const a of bar.answers) smoothLine(a.level_kind).update({ time: bar.t, value: a.smooth.BREAK });
  // A level that left the zone: a gap in its line, so separate approaches are not joined.
  for (const kind of Object.keys(smoothSeries)) if (!inZone.has(kind)) smoothSeries[kind].update({ time: bar.t });
  renderAnswers(bar);
  counts.bars += 1;
  el("chart").dataset.bars = String(counts.bars);
  el("clock").textContent = `${bar.time_ny} New York` + (bar.gap_minutes ? ` (no bar for ${bar.gap_minutes} min before)` : "");
  if (bar.gap_minutes) problem(`gap: ${bar.gap_minutes} minute(s) without a bar before ${bar.time_ny}; nothing was filled in`, "gap");
  if (params.get("at") === bar.time_ny) {
    markers.setMarkers([{ time: bar.t, position: "aboveBar", color: "#0055aa", shape: "arrowDown", text: `setup at ${bar.time_ny}` }]);
    el("chart").dataset.marked = bar.time_ny;
    el("chart").dataset.markedT = String(bar.t);
  }
}

function problem(message, kind = "problem") {
  const p = document.createElement("div");
  p.className = kind;
  p.textContent = message;
  el("problems").appendChild(p);
}

function play() {
  if (source) source.close();
  buildCharts();
  const day = el("session").value;
  const speed = el("speed").value;
  const until = el("until").value.trim();
  setStatus(`connecting to ${day}...`, "connecting");
  const p = `product=${encodeURIComponent(product)}`;
  source = day === "live"
    ? new EventSource(`/api/live?${p}`)
    : new EventSource(`/api/replay?${p}&date=${day}&speed=${speed}` + (until ? `&until=${encodeURIComponent(until)}` : ""));
  source.addEventListener("status", (e) => {
    const { state, message } = JSON.parse(e.data);
    setStatus(message, state === "live" ? "live" : "problem");
    if (state !== "live") problem(message);
  });
  source.addEventListener("session", (e) => {
    const meta = JSON.parse(e.data);
    styles = meta.levels;
    el("provenance").textContent =
      `Answers from the index as of ${meta.index_as_of} (${meta.index_sessions} earlier sessions, last ${meta.index_last_session || "none"}), ` +
      `vector schemas ${meta.vector_schemas.join(", ") || "none"}; ${meta.answer_source}` + (meta.model_trained_through ? `, model trained through ${meta.model_trained_through}` : "");
    el("reliability").textContent = `How far to trust it: ${meta.reliability}`;
    if (!meta.index_as_of) el("provenance").textContent = "No index as of this session: no answers are shown.";
    setStatus(meta.source === "live" ? `live session ${meta.date}: connecting...` : `replaying ${meta.date} (${speed === "0" ? "as fast as possible" : speed + "x"})`, "playing");
  });
  source.addEventListener("bar", (e) => onBar(JSON.parse(e.data)));
  source.addEventListener("problem", (e) => {
    const { message } = JSON.parse(e.data);
    problem(message);
    setStatus("problem: see below", "problem");
  });
  source.addEventListener("end", () => {
    source.close();
    setStatus(`replay of ${day} finished`, "ended");
    if (params.get("at")) focusAt(params.get("at"));
  });
  source.onerror = () => {
    if (el("status").dataset.state === "ended") return;
    source.close();
    setStatus("connection to the server lost: press Play to start again", "problem");
  };
}

function focusAt(hhmm) {
  // The past setup and the three hours that followed it.
  const t = Number(el("chart").dataset.markedT);
  if (t) chart.timeScale().setVisibleRange({ from: t - 3600, to: t + 3 * 3600 });
}

async function init() {
  const known = await (await fetch("/api/products")).json();
  const picker = el("product");
  for (const item of known.products) {
    const option = document.createElement("option");
    option.value = item.symbol;
    option.textContent = `${item.symbol} (${item.price_unit})`;
    picker.appendChild(option);
  }
  const asked = (params.get("product") || "").toUpperCase();
  product = known.products.some((item) => item.symbol === asked) ? asked : known.default;
  picker.value = product;
  const spec = known.products.find((item) => item.symbol === product);
  priceFormat = formatFor(spec.tick_size);
  document.title = `Spymaster: ${product} levels`;
  // Another product is another page: its sessions, index and levels (the URL says which).
  picker.addEventListener("change", () => {
    const next = new URLSearchParams({ product: picker.value });
    location.search = next.toString();
  });
  const response = await fetch(`/api/sessions?product=${encodeURIComponent(product)}`);
  const { sessions, latest, live } = await response.json();
  const select = el("session");
  if (live && live.open) {
    const option = document.createElement("option");
    option.value = "live";
    option.textContent = `live: ${live.date}`;
    select.appendChild(option);
  }
  for (const d of sessions) {
    const option = document.createElement("option");
    option.value = d;
    option.textContent = d;
    select.appendChild(option);
  }
  if (!sessions.length && !(live && live.open)) {
    setStatus("no session in the lake: run `spymaster backfill` first", "problem");
    return;
  }
  // Opening the page shows the live session when one is trading, else the latest session of the lake.
  select.value = params.get("date") && sessions.includes(params.get("date")) ? params.get("date") : (live && live.open ? "live" : latest);
  if (params.get("speed") !== null) el("speed").value = params.get("speed");
  if (params.get("until") !== null) el("until").value = params.get("until");
  el("play").addEventListener("click", play);
  buildCharts();
  if (!params.get("manual")) play();
}

init();
