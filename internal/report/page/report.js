"use strict";
// nspidtrace report: the timeline, the tree at the cursor, the generations
// and the search, drawn from the JSON in #data. Every string in it comes from
// processes: it is only ever set as textContent or drawn on the canvas,
// never parsed as HTML.
(function () {
  const D = JSON.parse(document.getElementById("data").textContent);
  const $ = (id) => document.getElementById(id);
  const el = (tag, text) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; return e; };
  const procs = D.procs, span = Math.max(D.span, 1);
  const ROW = 12, LANE_GAP = 18, LEFT = 0;
  const fmt = (ms) => new Date(D.start + ms).toISOString().replace("T", " ").replace("Z", "");
  const endOf = (p) => (p.e < 0 ? span : p.e);
  const pids = (p) => p.i.join("/");

  // Rows: processes of a lane packed so that bars never overlap.
  // The row that frees first is at the top of a heap per lane: n log n
  // for 10,000 processes alive at once.
  const laneRows = D.lanes.map(() => []), heaps = D.lanes.map(() => []);
  const push = (h, v) => { h.push(v); for (let c = h.length - 1; c > 0;) { const p = (c - 1) >> 1; if (h[p][0] <= h[c][0]) break; [h[p], h[c]] = [h[c], h[p]]; c = p; } };
  const pop = (h) => { const top = h[0], last = h.pop(); if (h.length) { h[0] = last; for (let p = 0; ;) { let m = p; const l = 2 * p + 1, r = l + 1; if (l < h.length && h[l][0] < h[m][0]) m = l; if (r < h.length && h[r][0] < h[m][0]) m = r; if (m === p) break; [h[p], h[m]] = [h[m], h[p]]; p = m; } } return top; };
  const order = procs.map((_, i) => i).sort((a, b) => procs[a].l - procs[b].l || procs[a].s - procs[b].s);
  for (const i of order) {
    const p = procs[i], rows = laneRows[p.l], h = heaps[p.l];
    let r;
    if (h.length && h[0][0] <= p.s) r = pop(h)[1];
    else { r = rows.length; rows.push({ items: [] }); }
    rows[r].items.push(i); p.row = r; push(h, [endOf(p), r]);
  }
  let y = 0;
  const laneY = D.lanes.map((_, l) => { const top = y; y += LANE_GAP + laneRows[l].length * ROW; return top; });
  const total = y;
  for (const p of procs) p.y = laneY[p.l] + LANE_GAP + p.row * ROW;

  const canvas = $("timeline"), ctx = canvas.getContext("2d");
  let t0 = 0, scale = 1, top = 0, cursor = -1, selected = -1, matches = null;
  function size() {
    canvas.width = canvas.clientWidth * devicePixelRatio;
    canvas.height = canvas.clientHeight * devicePixelRatio;
    ctx.setTransform(devicePixelRatio, 0, 0, devicePixelRatio, 0, 0);
  }
  function fit() { t0 = 0; scale = (canvas.clientWidth - LEFT) / span; }
  const X = (t) => LEFT + (t - t0) * scale, T = (x) => t0 + (x - LEFT) / scale;
  const colors = { exec: "#2b6cb0", rename: "#805ad5", cred: "#d69e2e", setns: "#dd6b20", unshare: "#dd6b20", received: "#e53e3e", sent: "#e53e3e", finding: "#e53e3e", exit: "#1a202c" };

  function draw() {
    const w = canvas.clientWidth, h = canvas.clientHeight;
    ctx.clearRect(0, 0, w, h);
    ctx.font = "10px sans-serif";
    D.lanes.forEach((lane, l) => {
      const ly = laneY[l] - top;
      if (ly > h || ly + LANE_GAP + laneRows[l].length * ROW < 0) return;
      ctx.fillStyle = "#edf2f7"; ctx.fillRect(0, ly, w, LANE_GAP - 2);
      ctx.fillStyle = "#2d3748"; ctx.fillText(lane.name + "  (" + laneRows[l].reduce((n, r) => n + r.items.length, 0) + " processes)", 4, ly + 12);
    });
    const from = T(0), to = T(w);
    // Markers and arrows go into one path per color, filled or stroked
    // once: 100,000 of them draw in a few milliseconds.
    const marks = {}, arrows = new Path2D();
    let bars = 0;
    for (let i = 0; i < procs.length; i++) {
      const p = procs[i], py = p.y - top;
      if (endOf(p) < from || p.s > to) continue;
      bars++; // in the time shown, on screen or scrolled past
      if (py < -ROW || py > h) continue;
      const x1 = Math.max(X(p.s), -1), x2 = Math.min(X(endOf(p)), w + 1);
      const dim = matches && !matches.has(i);
      ctx.fillStyle = i === selected ? "#d53f8c" : p.f ? "#e53e3e" : dim ? "#e2e8f0" : p.e < 0 ? "#68d391" : "#a0aec0";
      ctx.fillRect(x1, py, Math.max(x2 - x1, 1), ROW - 2);
      if (x2 - x1 > 40 && !dim) { ctx.fillStyle = "#1a202c"; ctx.fillText(p.c, x1 + 2, py + ROW - 3); }
      if (x2 - x1 < 3) continue; // too narrow to tell its markers apart
      for (const f of p.m) {
        if (f[0] < from || f[0] > to || f[1] === "born" || f[1] === "alive" || f[1] === "children") continue;
        const c = colors[f[1]] || "#4a5568", x = X(f[0]);
        (marks[c] || (marks[c] = new Path2D())).rect(x - 1, py - 1, 2, ROW);
        if (f[1] === "received" && f[3] >= 0) { // an arrow from the sender
          arrows.moveTo(x, procs[f[3]].y - top + ROW / 2); arrows.lineTo(x, py + ROW / 2);
        }
      }
    }
    for (const c in marks) { ctx.fillStyle = c; ctx.fill(marks[c]); }
    document.body.dataset.bars = String(bars);
    ctx.strokeStyle = "#e53e3e"; ctx.stroke(arrows);
    if (cursor >= 0) { ctx.strokeStyle = "#3182ce"; ctx.beginPath(); ctx.moveTo(X(cursor), 0); ctx.lineTo(X(cursor), h); ctx.stroke(); }
    $("range").textContent = fmt(Math.max(from, 0)) + " … " + fmt(Math.min(to, span)) + " UTC";
  }

  function at(x, y) { // the process drawn at (x, y)
    const t = T(x), yy = y + top;
    for (let l = 0; l < D.lanes.length; l++) {
      const r = Math.floor((yy - laneY[l] - LANE_GAP) / ROW);
      if (r < 0 || r >= laneRows[l].length) continue;
      for (const i of laneRows[l][r].items) if (procs[i].s <= t && t <= endOf(procs[i])) return i;
    }
    return -1;
  }
  function story(i) {
    selected = i; const p = procs[i], box = $("story");
    box.replaceChildren(el("h3", p.c + " " + p.k), el("p", "PIDs " + pids(p) + " (host first), pid namespaces " + p.n.map((n) => "pid:[" + n + "]").join(" ") + (p.a ? "; argv: " + p.a : "")));
    const list = el("ol");
    for (const f of p.m) {
      const li = el("li", fmt(f[0]) + "  " + f[1] + "  " + f[2]);
      if (f[3] >= 0) { li.classList.add("link"); li.addEventListener("click", () => story(f[3])); }
      list.append(li);
    }
    box.append(list); draw();
  }
  function tree(t) { // the tree at instant t, as tree --from --at prints it
    cursor = t;
    const alive = procs.map((p, i) => i).filter((i) => procs[i].s <= t && (procs[i].e < 0 || t < procs[i].e));
    const set = new Set(alive), kids = new Map(), roots = [];
    for (const i of alive) { const pp = procs[i].p; if (pp >= 0 && set.has(pp)) { if (!kids.has(pp)) kids.set(pp, []); kids.get(pp).push(i); } else roots.push(i); }
    const lines = [];
    const walk = (i, prefix, last, depth) => {
      const p = procs[i], branch = depth === 0 ? "" : last ? "└─" : "├─";
      lines.push(prefix + branch + p.c + "(" + pids(p) + ")" + (p.f ? " [! " + p.f.join(", ") + "]" : ""));
      const c = kids.get(i) || [], next = depth === 0 ? "" : prefix + (last ? "  " : "│ ");
      c.forEach((k, n) => walk(k, depth > 100 ? prefix : next, n === c.length - 1, depth + 1));
    };
    roots.sort((a, b) => procs[a].i[0] - procs[b].i[0]).forEach((r) => walk(r, "", true, 0));
    $("treeat").textContent = "at " + fmt(t) + " UTC, " + alive.length + " processes";
    $("tree").textContent = lines.join("\n");
    draw();
  }
  function search(q) {
    q = q.trim(); const list = $("results"); list.replaceChildren();
    if (!q) { matches = null; draw(); return; }
    matches = new Set();
    procs.forEach((p, i) => {
      if (p.c.includes(q) || p.k === q || p.i.some((n) => String(n) === q) || D.lanes[p.l].name.includes(q) || (p.f || []).includes(q)) matches.add(i);
    });
    let n = 0;
    for (const i of matches) {
      if (n++ >= 200) { list.append(el("li", "… " + (matches.size - 200) + " more")); break; }
      const li = el("li", procs[i].c + " " + pids(procs[i]) + " " + procs[i].k + " — " + D.lanes[procs[i].l].name);
      li.classList.add("link"); li.addEventListener("click", () => story(i)); list.append(li);
    }
    $("count").textContent = matches.size + " match";
    draw();
  }

  let drag = null;
  canvas.addEventListener("mousedown", (e) => { drag = { x: e.offsetX, y: e.offsetY, t0, top, moved: false }; });
  window.addEventListener("mouseup", () => { setTimeout(() => (drag = null)); });
  canvas.addEventListener("mousemove", (e) => {
    if (drag && e.buttons) {
      drag.moved = drag.moved || Math.abs(e.offsetX - drag.x) + Math.abs(e.offsetY - drag.y) > 3;
      t0 = drag.t0 - (e.offsetX - drag.x) / scale; top = Math.max(0, Math.min(total, drag.top - (e.offsetY - drag.y))); draw(); return;
    }
    const i = at(e.offsetX, e.offsetY), tip = $("tip");
    if (i < 0) { tip.hidden = true; return; }
    const p = procs[i];
    tip.textContent = p.c + "  PIDs " + pids(p) + "  " + p.k + "\n" + D.lanes[p.l].name + "\n" + fmt(p.s) + " → " + (p.e < 0 ? "running" : fmt(p.e) + " " + p.x) + (p.f ? "\nfindings: " + p.f.join(", ") : "");
    tip.style.left = e.pageX + 12 + "px"; tip.style.top = e.pageY + 12 + "px"; tip.hidden = false;
  });
  canvas.addEventListener("click", (e) => {
    if (drag && drag.moved) return;
    if (e.shiftKey) { tree(T(e.offsetX)); return; }
    const i = at(e.offsetX, e.offsetY);
    if (i >= 0) story(i); else tree(T(e.offsetX));
  });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    if (e.shiftKey) { top = Math.max(0, Math.min(total, top + e.deltaY)); draw(); return; }
    const t = T(e.offsetX), k = Math.exp(-e.deltaY / 300);
    scale = Math.min(Math.max(scale * k, (canvas.clientWidth - LEFT) / span / 4), 1e6); t0 = t - (e.offsetX - LEFT) / scale; draw();
  }, { passive: false });
  $("fit").addEventListener("click", () => { fit(); draw(); });
  $("q").addEventListener("input", (e) => search(e.target.value));
  window.addEventListener("resize", () => { size(); draw(); });

  const gens = $("gens");
  for (const g of D.gens) {
    const tr = el("tr");
    for (const v of [g.c, g.id, g.pids, g.init, fmt(g.s), g.e < 0 ? "running at the end" : fmt(g.e), g.how || ""]) tr.append(el("td", v));
    gens.append(tr);
  }
  $("gencount").textContent = D.gens.length ? "" : "no containers in this window";
  $("summary").textContent = procs.length + " processes, " + D.lanes.length + " lanes, " + D.gens.length + " container generations" + (D.dropped ? "; " + D.dropped + " processes outside the window left out" : "");
  size(); fit(); draw(); tree(span);
  // A link may name what to show: #story=KEY, #at=TIME (RFC 3339), #q=TEXT.
  for (const part of location.hash.slice(1).split("&")) {
    const [k, v] = part.split("=").map(decodeURIComponent);
    if (k === "story") { const i = procs.findIndex((p) => p.k === v); if (i >= 0) story(i); }
    if (k === "at" && !isNaN(Date.parse(v))) tree(Date.parse(v) - D.start);
    if (k === "q") { $("q").value = v; search(v); }
  }
  requestAnimationFrame(() => { document.body.dataset.firstPaint = String(Math.round(performance.now())); });
})();
