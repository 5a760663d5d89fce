// descentlab playground: this page only draws. Every number — paths, losses, gradient norms, basins,
// phase maps, Hessian eigenvalues, verdicts — comes from the Python library through the server (or,
// in snapshot mode, from races the library recorded beside this page). No optimizer math here.
"use strict";

const COLORS = ["#E69F00", "#56B4E9", "#009E73", "#D55E00", "#CC79A7", "#0072B2", "#F0E442", "#882255"];
const DASHES = [[], [6, 4], [2, 3], [8, 3, 2, 3]];
const SNAPSHOT = window.DESCENTLAB_SNAPSHOT || null;
const TOKEN = new URLSearchParams(location.search).get("token");
const $ = (id) => document.getElementById(id);

const state = { landscape: "two-minima", formula: "", start: null, seed: 0, noise: 0, steps: 200,
                opts: ["sgd(lr=0.05)", "sgd(lr=0.05, momentum=0.9)", "adam(lr=0.1)"] };
let meta = null, grid = null, race = null, shown = 0, playing = false, lastTick = 0, overlay = null;
let controller = null;

// ---------------------------------------------------------------- the URL hash holds the state
function writeHash() {
  const p = new URLSearchParams();
  p.set("landscape", state.landscape);
  if (state.formula) p.set("formula", state.formula);
  if (state.start) p.set("start", state.start.join(","));
  p.set("seed", state.seed); p.set("noise", state.noise); p.set("steps", state.steps);
  for (const o of state.opts) p.append("opt", o);
  history.replaceState(null, "", "#" + p.toString());
}
function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  if (p.has("landscape")) state.landscape = p.get("landscape");
  state.formula = p.get("formula") || "";
  if (p.has("start")) { const s = p.get("start").split(",").map(Number); if (s.length === 2 && s.every(isFinite)) state.start = s; }
  for (const k of ["seed", "noise", "steps"]) if (p.has(k) && isFinite(Number(p.get(k)))) state[k] = Number(p.get(k));
  const opts = p.getAll("opt");
  if (opts.length) state.opts = opts.slice(0, 8);
}

// ---------------------------------------------------------------- talking to the server
async function api(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (TOKEN) headers["X-Descentlab-Token"] = TOKEN;
  const response = await fetch(path, body === undefined ? { headers } : { method: "POST", headers, body: JSON.stringify(body) });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}
function status(text, bad) { const s = $("status"); s.textContent = text; s.className = "status" + (bad ? " bad" : ""); }

async function* sse(path, body, signal) {
  const headers = { "Content-Type": "application/json" };
  if (TOKEN) headers["X-Descentlab-Token"] = TOKEN;
  const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body), signal });
  if (!response.ok) { const data = await response.json(); throw new Error(data.error || response.statusText); }
  const reader = response.body.getReader(), decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      yield [event, JSON.parse(data)];
    }
  }
}

// ---------------------------------------------------------------- drawing the landscape
const land = $("land"), lctx = land.getContext("2d");
const toPx = (x, y) => [(x - grid.x[0]) / (grid.x[1] - grid.x[0]) * land.width,
                        (1 - (y - grid.y[0]) / (grid.y[1] - grid.y[0])) * land.height];
const toData = (px, py) => [grid.x[0] + px / land.width * (grid.x[1] - grid.x[0]),
                            grid.y[0] + (1 - py / land.height) * (grid.y[1] - grid.y[0])];
let background = null;

function shade(t) {  // light for high values, deep blue for low: the page's own colour scale
  const a = [247, 251, 255], b = [8, 48, 107];
  return a.map((v, i) => Math.round(v + (b[i] - v) * (1 - t)));
}
function renderBackground() {
  const n = grid.resolution, flat = grid.z.flat().filter(Number.isFinite).sort((p, q) => p - q);
  const lo = flat[0], levels = [];
  for (let i = 0; i <= 24; i++) levels.push(flat[Math.min(flat.length - 1, Math.floor(Math.pow(i / 24, 1.6) * (flat.length - 1)))] - lo);
  const img = lctx.createImageData(n, n);
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) {
    const z = grid.z[r][c] - lo; let band = 0;
    while (band < 24 && z > levels[band]) band++;
    const rgb = Number.isFinite(z) ? shade(band / 24) : [255, 255, 255];
    const at = ((n - 1 - r) * n + c) * 4;
    img.data.set([...rgb, 255], at);
  }
  const off = document.createElement("canvas"); off.width = n; off.height = n;
  off.getContext("2d").putImageData(img, 0, 0);
  background = off;
}
function line(ctx, pts, color, width, dash) {
  if (pts.length < 2) return;
  ctx.setLineDash(dash || []);
  for (const [w, c] of [[width + 3, "#fff"], [width, color]]) {  // a white halo under every path
    ctx.beginPath(); ctx.lineWidth = w; ctx.strokeStyle = c;
    pts.forEach(([x, y], i) => { const [px, py] = toPx(x, y); i ? ctx.lineTo(px, py) : ctx.moveTo(px, py); });
    ctx.stroke();
  }
  ctx.setLineDash([]);
}
function dot(x, y, color, r) {
  const [px, py] = toPx(x, y);
  lctx.beginPath(); lctx.arc(px, py, r, 0, 2 * Math.PI); lctx.fillStyle = color; lctx.fill();
  lctx.lineWidth = 1.5; lctx.strokeStyle = "#000"; lctx.stroke();
}
function draw() {
  if (!grid) return;
  lctx.imageSmoothingEnabled = true;
  lctx.drawImage(background, 0, 0, land.width, land.height);
  if (overlay) lctx.drawImage(overlay, 0, 0, land.width, land.height);
  const best = Math.min(...grid.minimum_values);
  grid.minima.forEach((m, i) => {
    const [px, py] = toPx(m[0], m[1]);
    lctx.font = grid.minimum_values[i] <= best + 1e-9 ? "22px sans-serif" : "14px sans-serif";
    lctx.fillStyle = grid.minimum_values[i] <= best + 1e-9 ? "gold" : "#fff"; lctx.strokeStyle = "#000";
    const mark = grid.minimum_values[i] <= best + 1e-9 ? "★" : "◆";
    lctx.textAlign = "center"; lctx.textBaseline = "middle";
    lctx.strokeText(mark, px, py); lctx.fillText(mark, px, py);
  });
  const start = state.start || grid.start;
  if (race) {
    race.paths.forEach((path, i) => {
      const upto = path.slice(0, Math.min(shown, path.length - 1) + 1);
      line(lctx, upto, COLORS[i % 8], 2, DASHES[Math.floor(i / 8) % 4]);
      const head = upto[upto.length - 1]; if (head) dot(head[0], head[1], COLORS[i % 8], 5);
    });
  }
  dot(start[0], start[1], "#000", 5);
  drawCharts(); drawGauge();
  $("stepinfo").textContent = `step ${shown}` + (race ? ` of ${race.maxStep}` : "");
  $("scrub").max = race ? race.maxStep : 0; $("scrub").value = shown;
}

// ---------------------------------------------------------------- loss and gradient-norm curves
function chart(canvas, key, title) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, L = 46, B = 22;
  ctx.clearRect(0, 0, W, H); ctx.fillStyle = "#1b2a3a"; ctx.font = "11px sans-serif"; ctx.textAlign = "left";
  ctx.fillText(title, L, 12);
  if (!race) return;
  const best = key === "loss" ? Math.min(...grid.minimum_values) : 0;
  const series = race[key].map((v) => v.map((y) => (key === "loss" ? y - best : y)));
  const all = series.flat().filter((v) => Number.isFinite(v) && v > 0);
  if (!all.length) return;
  const lo = Math.log10(Math.max(Math.min(...all), 1e-16)), hi = Math.log10(Math.max(...all)) + 1e-9;
  const X = (k) => L + k / Math.max(1, race.maxStep) * (W - L - 6);
  const Y = (v) => H - B - (Math.log10(Math.max(v, 1e-16)) - lo) / (hi - lo || 1) * (H - B - 18);
  ctx.strokeStyle = "#d5dde5"; ctx.strokeRect(L, 18, W - L - 6, H - B - 18);
  ctx.fillStyle = "#5a6b7b"; ctx.textAlign = "right";
  ctx.fillText(`1e${Math.round(hi)}`, L - 3, 22); ctx.fillText(`1e${Math.round(lo)}`, L - 3, H - B);
  ctx.textAlign = "center"; ctx.fillText("step", W / 2, H - 6);
  series.forEach((s, i) => {
    ctx.setLineDash(DASHES[i % 4]); ctx.strokeStyle = COLORS[i % 8]; ctx.lineWidth = 1.6; ctx.beginPath();
    s.slice(0, shown + 1).forEach((v, k) => (k ? ctx.lineTo(X(k), Y(v)) : ctx.moveTo(X(k), Y(v))));
    ctx.stroke();
  });
  ctx.setLineDash([]);
  ctx.strokeStyle = "#888"; ctx.beginPath(); ctx.moveTo(X(shown), 18); ctx.lineTo(X(shown), H - B); ctx.stroke();
}
function drawCharts() { chart($("loss"), "loss", "f(w) − f* (log)"); chart($("gnorm"), "grad_norm", "‖∇f(w)‖ (log)"); }

// ---------------------------------------------------------------- the curvature gauge
function drawGauge() {
  const g = $("gauge");
  if (!race || !race.done) { g.textContent = "curvature gauge: Hessian eigenvalues along each path, once the race is done"; return; }
  const rows = race.done.runs.map((run, i) => {
    const c = run.curvature, k = Math.min(shown, c.lambda_max.length - 1);
    const lam = c.lambda_max[k], low = c.lambda_min[k], kappa = c.kappa[k];
    const st = race.stability[run.label] || {};
    let text = `<span class="swatch" style="background:${COLORS[i % 8]}"></span> ${escapeHtml(run.label)}: λ_max ${fmt(lam)}, λ_min ${fmt(low)}, κ ${fmt(kappa)}`;
    if (st.lr !== undefined && lam !== null && !st.gd) {
      text += ` · η = ${fmt(st.lr)} (an adaptive method: η·λ_max is not its stability limit)`;
    } else if (st.lr !== undefined && lam !== null) {
      const limit = 2 * (1 + (st.beta || 0)), value = st.lr * lam;
      const width = Math.min(120, Math.max(1, value / limit * 60));
      text += ` · η·λ_max = ${fmt(value)} <span class="bar ${value >= limit ? "over" : ""}" style="width:${width}px"></span> ` +
              (st.beta ? `limit 2(1+β) = ${fmt(limit)} (heavy ball)` : "limit 2 (GD)");
    }
    return text;
  });
  g.innerHTML = `<b>curvature at step ${shown}</b><br>` + rows.join("<br>");
}
const fmt = (v) => (v === null || v === undefined ? "—" : Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : v.toPrecision(4));
const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

// ---------------------------------------------------------------- the race: frames as they arrive
function newRace(labels) {
  race = { labels, paths: labels.map(() => []), loss: labels.map(() => []), grad_norm: labels.map(() => []),
           maxStep: 0, done: null, stability: {} };
}
function addFrame(frame) {
  for (const r of frame.runs) {
    race.paths[r.i][frame.step] = r.w; race.loss[r.i][frame.step] = r.loss; race.grad_norm[r.i][frame.step] = r.grad_norm;
  }
  race.maxStep = Math.max(race.maxStep, frame.step);
}
function finish(done) {
  race.done = done;
  const body = $("final").querySelector("tbody"); body.innerHTML = "";
  done.runs.forEach((run, i) => {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td><span class="swatch" style="background:${COLORS[i % 8]}"></span></td><td>${escapeHtml(run.label)}</td>` +
      `<td>${escapeHtml(run.status)}</td><td class="num final-point" data-x="${run.final_point[0]}" data-y="${run.final_point[1]}">` +
      `(${run.final_point[0]}, ${run.final_point[1]})</td><td class="num">${run.final_loss}</td>`;
    body.appendChild(tr);
  });
  document.body.dataset.raceDone = "yes";
}
async function startRace() {
  if (controller) controller.abort();
  document.body.dataset.raceDone = "no";
  writeHash();
  const body = { landscape: state.landscape, optimizers: state.opts, steps: state.steps, noise: state.noise,
                 seed: state.seed, start: state.start || undefined };
  if (state.formula) body.formula = state.formula;
  shown = 0; playing = true; race = null;
  if (SNAPSHOT) return replaySnapshot();
  controller = new AbortController();
  const clicked = performance.now();
  status("racing…");
  try {
    for await (const [event, data] of sse("api/race", body, controller.signal)) {
      if (event === "start") {
        newRace(data.labels); race.stability = data.stability;
        $("repro").textContent = data.reproduce.cli + "\n\n" + data.reproduce.python; race.reproduce = data.reproduce;
      } else if (event === "frame") {
        if (data.step === 0) { race.firstFrameMs = performance.now() - clicked; document.body.dataset.firstFrameMs = race.firstFrameMs.toFixed(1); }
        addFrame(data);
      } else if (event === "done") {
        finish(data); status(`done: ${race.maxStep} steps; first frame ${race.firstFrameMs.toFixed(0)} ms after the click`);
      } else if (event === "error") { status(data.error, true); }
    }
  } catch (error) {
    if (error.name !== "AbortError") status(error.message, true);
  }
}

// ---------------------------------------------------------------- playback, paced by steps
function tick(now) {
  if (playing && race) {
    const perSecond = Number($("speed").value);
    const advance = Math.max(0, Math.floor((now - lastTick) / 1000 * perSecond));
    if (advance > 0) { shown = Math.min(race.maxStep, shown + advance); lastTick = now; draw(); }
    if (race.done && shown >= race.maxStep) playing = false;
  } else lastTick = now;
  requestAnimationFrame(tick);
}
$("play").onclick = () => { playing = true; };
$("pause").onclick = () => { playing = false; };
$("step").onclick = () => { playing = false; if (race) shown = Math.min(race.maxStep, shown + 1); draw(); };
$("reset").onclick = () => { playing = false; shown = 0; draw(); };
$("scrub").oninput = (e) => { playing = false; shown = Number(e.target.value); draw(); };

// ---------------------------------------------------------------- optimizers and their sliders
function parseSpec(spec) {  // only splits the text into a name and key=value pieces, to place sliders
  const m = spec.match(/^\s*([\w.\-]+)\s*(?:\((.*)\))?\s*$/);
  if (!m) return null;
  const values = {};
  for (const part of (m[2] || "").match(/\w+\s*=\s*(\([^)]*\)|[^,]+)/g) || []) {
    const [k, v] = part.split(/=(.*)/s); values[k.trim()] = v.trim();
  }
  return { name: m[1].toLowerCase(), values };
}
function specText(name, values) {
  const inside = Object.entries(values).map(([k, v]) => `${k}=${v}`).join(", ");
  return inside ? `${name}(${inside})` : name;
}
function sliderValue(h, t) { const [a, b] = h.slider; return h.scale === "log" ? a * Math.pow(b / a, t) : a + (b - a) * t; }
function sliderPosition(h, v) { const [a, b] = h.slider; return h.scale === "log" ? Math.log(v / a) / Math.log(b / a) : (v - a) / (b - a); }
const tidy = (v) => Number(v.toPrecision(3)).toString();

function renderOptimizers() {
  const box = $("optimizers"); box.innerHTML = "";
  state.opts.forEach((spec, i) => {
    const row = document.createElement("div"); row.className = "opt";
    row.innerHTML = `<div class="spec"><span class="swatch" style="background:${COLORS[i % 8]}"></span>` +
      `<input value="${escapeHtml(spec)}" aria-label="optimizer ${i + 1}"><button title="remove">✕</button></div>` +
      `<div class="sliders"></div><div class="err"></div>`;
    const input = row.querySelector("input"), sliders = row.querySelector(".sliders"), err = row.querySelector(".err");
    input.onchange = () => { state.opts[i] = input.value.trim(); validate(i, err); renderSliders(i, sliders, input, err); writeHash(); };
    row.querySelector("button").onclick = () => { state.opts.splice(i, 1); renderOptimizers(); writeHash(); };
    renderSliders(i, sliders, input, err);
    box.appendChild(row);
  });
  $("add").disabled = state.opts.length >= (meta ? meta.limits.optimizers : 8);
}
function renderSliders(i, box, input, err) {
  box.innerHTML = "";
  const parsed = parseSpec(state.opts[i]);
  if (!meta || !parsed || !meta.optimizers[parsed.name]) return;
  for (const h of meta.optimizers[parsed.name].hyperparameters) {
    if (h.kind === "bool" || h.tuple_of) continue;
    if (!["lr", "momentum", "alpha", "eps", "weight_decay", "lr_decay", "rho", "lambd"].includes(h.name) && !(h.name in parsed.values)) continue;
    const current = h.name in parsed.values ? Number(parsed.values[h.name]) : h.default;
    const label = document.createElement("label");
    label.innerHTML = `${h.name} <input type="range" min="0" max="1000"> <span>${tidy(current)}</span>`;
    const range = label.querySelector("input"), shownValue = label.querySelector("span");
    range.value = Math.round(Math.min(1, Math.max(0, sliderPosition(h, Number.isFinite(current) ? current : h.default))) * 1000);
    range.title = `${h.scale} slider; the validator allows ${h.low_open ? "(" : "["}${h.low}, ${h.high === null ? "inf" : h.high}${h.high_open ? ")" : "]"}`;
    range.oninput = () => {
      const v = tidy(sliderValue(h, range.value / 1000)); shownValue.textContent = v;
      const p = parseSpec(state.opts[i]); p.values[h.name] = v; state.opts[i] = specText(p.name, p.values); input.value = state.opts[i];
    };
    range.onchange = () => { validate(i, err); writeHash(); };
    box.appendChild(label);
  }
}
async function validate(i, err) {
  if (SNAPSHOT) return true;
  try { await api("api/validate", { spec: state.opts[i] }); err.textContent = ""; return true; }
  catch (error) { err.textContent = error.message; return false; }
}
$("add").onclick = () => { if (state.opts.length < 8) { state.opts.push("rmsprop(lr=0.01)"); renderOptimizers(); writeHash(); } };

// ---------------------------------------------------------------- landscape, start, controls
async function loadLandscape() {
  if (SNAPSHOT) return;
  const body = { landscape: state.landscape, resolution: 101 };
  if (state.formula) body.formula = state.formula;
  try { grid = await api("api/landscape", body); renderBackground(); overlay = null; draw(); status(grid.formula); }
  catch (error) { status(error.message, true); }
}
land.addEventListener("click", (e) => {
  if (!grid) return;
  const r = land.getBoundingClientRect();
  const [x, y] = toData((e.clientX - r.left) / r.width * land.width, (e.clientY - r.top) / r.height * land.height);
  state.start = [Number(x.toFixed(3)), Number(y.toFixed(3))];
  startRace();
});
$("run").onclick = () => startRace();
$("landscape").onchange = (e) => { state.landscape = e.target.value; state.formula = ""; $("formula").value = ""; state.start = null; race = null; loadLandscape(); writeHash(); };
$("formula").onchange = (e) => { state.formula = e.target.value.trim(); state.start = null; race = null; loadLandscape(); writeHash(); };
for (const k of ["steps", "noise", "seed"]) $(k).onchange = (e) => { state[k] = Number(e.target.value); writeHash(); };
async function copy(text) { try { await navigator.clipboard.writeText(text); status("copied"); } catch { status("select the text below and copy it"); } }
$("copycli").onclick = () => race && race.reproduce && copy(race.reproduce.cli);
$("copypy").onclick = () => race && race.reproduce && copy(race.reproduce.python);

// ---------------------------------------------------------------- basin and phase maps
$("basins").onclick = async () => {
  const body = { landscape: state.landscape, optimizer: state.opts[0], resolution: 100, steps: state.steps };
  if (state.formula) body.formula = state.formula;
  $("mapinfo").textContent = "computing 10 000 starts as one batched tensor…";
  try {
    const m = await api("api/basins", body), n = m.resolution;
    const off = document.createElement("canvas"); off.width = n; off.height = n;
    const ctx = off.getContext("2d"), img = ctx.createImageData(n, n);
    const slowest = Math.max(1, ...m.converged_at.flat());
    for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) {
      const which = m.minimum[r][c], at = ((n - 1 - r) * n + c) * 4;
      const base = which >= 0 ? COLORS[which % 8] : which === -2 ? "#000000" : "#ffffff";
      const rgb = [1, 3, 5].map((k) => parseInt(base.slice(k, k + 2), 16));
      const fade = which >= 0 ? 0.35 + 0.65 * (1 - m.converged_at[r][c] / slowest) : 0.5;
      img.data.set([...rgb, Math.round(255 * 0.75 * fade)], at);
    }
    ctx.putImageData(img, 0, 0); overlay = off; draw();
    $("mapinfo").textContent = `${m.starts} starts, ${m.steps} steps of ${m.optimizer} in ${(m.seconds * 1000).toFixed(0)} ms: colour = the minimum reached (in the order ★ first), paler = slower; white = none`;
  } catch (error) { $("mapinfo").textContent = error.message; }
};
$("clearmap").onclick = () => { overlay = null; $("phasemap").hidden = true; draw(); };
$("phase").onclick = async () => {
  const parsed = parseSpec(state.opts[0]);
  const hp = meta && parsed && meta.optimizers[parsed.name] ? meta.optimizers[parsed.name].hyperparameters : [];
  const beta = hp.find((h) => h.name === "momentum") || hp.find((h) => h.name === "betas[0]") || hp.find((h) => h.name === "alpha");
  if (!beta) { $("mapinfo").textContent = `${parsed ? parsed.name : "?"} has no momentum or β to map`; return; }
  const body = { landscape: state.landscape, optimizer: parsed.name, beta_key: beta.name, n_lr: 21, n_beta: 21,
                 steps: Math.min(state.steps, 200), lr_range: [1e-3, 1], beta_range: [0, 0.99], start: state.start || undefined };
  if (state.formula) body.formula = state.formula;
  $("mapinfo").textContent = "computing 441 runs…";
  try {
    const m = await api("api/phase", body), cv = $("phasemap"), ctx = cv.getContext("2d");
    cv.hidden = false; ctx.clearRect(0, 0, cv.width, cv.height);
    const L = 40, B = 30, w = (cv.width - L - 4) / m.lrs.length, h = (cv.height - B - 4) / m.betas.length;
    const gaps = m.gap.flat().filter((v) => v !== null && v > 0).map(Math.log10);
    const lo = Math.min(...gaps), hi = Math.max(...gaps);
    m.gap.forEach((row, bi) => row.forEach((g, li) => {
      ctx.fillStyle = g === null ? "#b2182b" : `rgb(${shade(Math.min(1, Math.max(0, (Math.log10(Math.max(g, 1e-300)) - lo) / (hi - lo || 1)))).join(",")})`;
      ctx.fillRect(L + li * w, cv.height - B - (bi + 1) * h, w + 0.5, h + 0.5);
    }));
    ctx.fillStyle = "#1b2a3a"; ctx.font = "11px sans-serif"; ctx.textAlign = "center";
    ctx.fillText(`learning rate ${m.lrs[0]} … ${m.lrs[m.lrs.length - 1]} (log)`, L + (cv.width - L) / 2, cv.height - 8);
    ctx.save(); ctx.translate(12, (cv.height - B) / 2); ctx.rotate(-Math.PI / 2); ctx.fillText(`${m.beta_key} ${m.betas[0]} … ${m.betas[m.betas.length - 1]}`, 0, 0); ctx.restore();
    $("mapinfo").textContent = `${m.optimizer}: final loss gap after ${m.steps} steps (dark = low, red = diverged), ${(m.seconds * 1000).toFixed(0)} ms`;
  } catch (error) { $("mapinfo").textContent = error.message; }
};

// ---------------------------------------------------------------- claims
function showVerdict(v) {
  const cls = v.mark === "✓" ? "ok" : v.mark === "refuted" ? "refuted" : "bad";
  $("verdict").innerHTML = `<p><span class="mark ${cls}">${escapeHtml(v.mark)}</span> <i>“${escapeHtml(v.text)}”</i> (${escapeHtml(v.source)})</p>` +
    `<p>${escapeHtml(v.summary)}</p><p class="hint">${escapeHtml(v.hyperparameters)}<br><code>${escapeHtml(v.command)}</code></p>` +
    (v.figure_png || v.figure ? `<img alt="${escapeHtml(v.slug)}" src="${escapeHtml(v.figure_png || v.figure)}">` : "");
}
async function loadClaims() {
  const list = SNAPSHOT ? SNAPSHOT.claims : await api("api/claims");
  const box = $("claimlist"); box.innerHTML = "";
  for (const c of list) {
    const b = document.createElement("button"); b.textContent = (SNAPSHOT ? c.mark + "  " : "") + c.slug;
    b.onclick = async () => {
      if (c.playground && !SNAPSHOT) {
        Object.assign(state, { landscape: c.playground.landscape, formula: "", start: c.playground.start, steps: c.playground.steps,
                               noise: c.playground.noise, seed: c.playground.seed, opts: c.playground.optimizers.slice(0, 8) });
        syncControls(); await loadLandscape(); renderOptimizers(); startRace();
      }
      if (SNAPSHOT) { showVerdict(c); return; }
      $("verdict").textContent = `running ${c.slug}…`;
      try { showVerdict(await api(`api/claims/${c.slug}`, {})); } catch (error) { $("verdict").textContent = error.message; }
    };
    box.appendChild(b);
  }
}

// ---------------------------------------------------------------- snapshot mode: recorded races, no server
async function replaySnapshot() {
  const pick = SNAPSHOT.races[Number($("landscape").value) || 0];
  grid = pick.grid; renderBackground();
  for (const [event, data] of pick.events) {
    if (event === "start") { newRace(data.labels); race.stability = data.stability; race.reproduce = data.reproduce;
                             $("repro").textContent = data.reproduce.cli + "\n\n" + data.reproduce.python; }
    else if (event === "frame") addFrame(data);
    else if (event === "done") finish(data);
  }
  shown = 0; playing = true;
  Object.assign(state, { steps: pick.request.steps, noise: pick.request.noise, seed: pick.request.seed, start: pick.request.start });
  syncControls(); draw();
  status(`replaying "${pick.title}" as recorded by descentlab ${SNAPSHOT.version}`);
}
function syncControls() {
  if (!SNAPSHOT) $("landscape").value = state.landscape;
  $("formula").value = state.formula; $("steps").value = state.steps; $("noise").value = state.noise; $("seed").value = state.seed;
}

async function main() {
  requestAnimationFrame(tick);
  if (SNAPSHOT) {
    $("mode").textContent = "snapshot mode";
    const banner = $("banner"); banner.hidden = false;
    banner.textContent = `Snapshot: this page was opened from disk, with no server. It replays ${SNAPSHOT.races.length} races that ` +
      "descentlab recorded beside it (races.json); nothing is computed here. Run `descentlab playground` for the live version.";
    const select = $("landscape");
    SNAPSHOT.races.forEach((r, i) => { const o = document.createElement("option"); o.value = i; o.textContent = r.title; select.appendChild(o); });
    select.onchange = () => replaySnapshot();
    for (const id of ["formula", "steps", "noise", "seed", "add", "basins", "phase"]) $(id).disabled = true;
    $("run").textContent = "replay"; $("run").onclick = () => replaySnapshot();
    land.onclick = null;
    state.opts = []; renderOptimizers();
    await loadClaims();
    return replaySnapshot();
  }
  readHash();
  try { meta = await api("api/meta"); }
  catch (error) { $("mode").textContent = "no server"; status(`cannot reach the server: ${error.message}`, true); return; }
  $("mode").textContent = `live: the real library (steps ≤ ${meta.limits.steps}, ≤ ${meta.limits.optimizers} optimizers)`;
  $("steps").max = meta.limits.steps;
  for (const name of Object.keys(meta.landscapes)) { const o = document.createElement("option"); o.value = o.textContent = name; $("landscape").appendChild(o); }
  if (!(state.landscape in meta.landscapes) && !state.landscape.includes("(")) state.landscape = "two-minima";
  if (!(state.landscape in meta.landscapes)) { const o = document.createElement("option"); o.value = o.textContent = state.landscape; $("landscape").appendChild(o); }
  syncControls(); renderOptimizers(); await loadLandscape(); await loadClaims();
  document.body.dataset.ready = "yes";
  if (location.hash.includes("start=")) startRace();
}
main();
