// The drawing page: draw with a mouse, pen or finger (pointer events); while drawing,
// the canvas goes to POST /v1/predict as a PNG (at most one request in flight) and the
// answer fills the digit, the ten probability bars and the 28x28 view of the input.
// A busy server (503) is asked again after its Retry-After.
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const seen = document.getElementById("seen").getContext("2d");
const bars = document.getElementById("bars");
const digitEl = document.getElementById("digit");
const confEl = document.getElementById("confidence");
const statusEl = document.getElementById("status");

let drawing = false, last = null, inFlight = false, dirty = false, inked = false;
let predictions = 0, retryAfter = 0, held = false;  // held: waiting out a Retry-After

function blank() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  seen.clearRect(0, 0, 28, 28);
  inked = false;
  digitEl.textContent = "?";
  confEl.textContent = "";
  statusEl.textContent = "";
  for (const li of bars.children) setBar(li, 0, false);
}

function makeBars() {
  for (let d = 0; d < 10; d++) {
    const li = document.createElement("li");
    li.dataset.digit = String(d);
    li.innerHTML = `<span>${d}</span><span class="track"><span class="fill"></span></span>` +
                   `<span class="pct">0%</span>`;
    bars.appendChild(li);
  }
}

function setBar(li, p, top) {
  li.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
  li.querySelector(".pct").textContent = `${(100 * p).toFixed(1)}%`;
  li.classList.toggle("top", top);
  li.dataset.p = p.toFixed(4);
}

function point(ev) {
  const r = pad.getBoundingClientRect();
  return { x: (ev.clientX - r.left) * pad.width / r.width,
           y: (ev.clientY - r.top) * pad.height / r.height };
}

function stroke(a, b) {
  ctx.strokeStyle = "#000";
  ctx.lineWidth = 26;  // ~2.5 px once the digit is fitted to 20 px: MNIST's stroke width
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(a.x, a.y);
  ctx.lineTo(b.x + 0.01, b.y);
  ctx.stroke();
  inked = true;
}

pad.addEventListener("pointerdown", (ev) => {
  ev.preventDefault();
  pad.setPointerCapture(ev.pointerId);
  drawing = true;
  last = point(ev);
  stroke(last, last);
  request();
});
pad.addEventListener("pointermove", (ev) => {
  if (!drawing) return;
  ev.preventDefault();
  const p = point(ev);
  stroke(last, p);
  last = p;
  request();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => { if (drawing) { drawing = false; request(); } });
}
document.getElementById("clear").addEventListener("click", blank);

function request() {
  if (!inked) { document.body.dataset.busy = "0"; return; }
  if (inFlight || held) { dirty = true; return; }
  inFlight = true;
  dirty = false;
  document.body.dataset.busy = "1";
  fetch("/v1/predict", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ image: pad.toDataURL("image/png"), show_input: true }),
  }).then(async (r) => {
    const body = await r.json();
    if (r.status === 503) {  // busy: ask again when the server says, for the drawing then
      retryAfter = Number(r.headers.get("Retry-After")) || 1;
    }
    if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
    show(body);
  }).catch((e) => {
    statusEl.textContent = String(e.message || e);
  }).finally(() => {
    inFlight = false;
    if (retryAfter) {
      held = true;
      setTimeout(() => { held = false; request(); }, 1000 * retryAfter);
      retryAfter = 0;
    } else if (dirty) request();
    else document.body.dataset.busy = "0";  // the answer shown is for the whole drawing
  });
}

function show(body) {
  if (!inked) return;  // cleared while the request was in flight
  const p = body.probabilities;
  digitEl.textContent = String(body.digit);
  confEl.textContent = `${(100 * p[body.digit]).toFixed(1)}% sure`;
  statusEl.textContent = "";
  bars.querySelectorAll("li").forEach((li, d) => setBar(li, p[d], d === body.digit));
  if (body.input) {
    const img = seen.createImageData(28, 28);
    body.input.forEach((v, i) => {
      img.data.set([v, v, v, 255], 4 * i);
    });
    seen.putImageData(img, 0, 0);
  }
  predictions += 1;
  document.body.dataset.predictions = String(predictions);
}

function pct(x) { return x == null ? "–" : `${(100 * x).toFixed(2)}%`; }

fetch("/v1/model").then((r) => r.json()).then((m) => {
  document.getElementById("m-study").textContent = m.study;
  document.getElementById("m-arm").textContent = m.arm;
  document.getElementById("m-seed").textContent = String(m.seed);
  document.getElementById("m-val").textContent = pct(m.metrics.val_accuracy);
  document.getElementById("m-test").textContent = pct(m.metrics.test_accuracy);
  document.getElementById("m-version").textContent = `${m.name} ${m.version}`;
  document.getElementById("m-question").textContent = m.question;
}).catch(() => { statusEl.textContent = "could not load the model's description"; });

makeBars();
blank();
