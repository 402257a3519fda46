// Operation timeline on a <canvas>: one lane per worker, ops as bars from invoke to
// completion, nemesis faults as bands across all lanes. Wheel zooms around the cursor,
// drag pans, double-click resets; hover shows the op. Data is column arrays (see
// reports/timeline.py) so 100,000 ops cost no DOM nodes.
(function () {
  "use strict";
  var holder = document.getElementById("timeline-data");
  var canvas = document.getElementById("timeline");
  if (!holder || !canvas) { return; }
  var D = JSON.parse(holder.textContent);
  var n = D.s.length;
  var COLOURS = ["#2b8cbe", "#e7298a", "#fdae61"];
  var KIND = ["ok", "fail", "info"];
  var LEFT = 78, TOP = 30, BOTTOM = 22;
  var nrows = Math.max(D.rows.length, 1);
  var rowH = Math.max(5, Math.min(18, Math.floor(640 / nrows)));
  var end = Math.max(D.end, 1);
  var view = { a: 0, b: end };
  // above this many visible ops per pixel column, lanes show the ok/fail/info mix per column
  var DENSE = 2;
  // per-lane op indices, in invocation order, for hover lookups
  var lanes = [];
  for (var r = 0; r < nrows; r++) { lanes.push([]); }
  for (var i = 0; i < n; i++) { lanes[D.row[i]].push(i); }
  var ctx = canvas.getContext("2d");
  var dpr = window.devicePixelRatio || 1;
  var cssW = 0, cssH = TOP + nrows * rowH + BOTTOM;

  function opEnd(i) { return D.e[i] < 0 ? end : D.e[i]; }
  function xOf(t) { return LEFT + (t - view.a) / (view.b - view.a) * (cssW - LEFT - 8); }
  function tOf(x) { return view.a + (x - LEFT) / (cssW - LEFT - 8) * (view.b - view.a); }
  function fmt(us) { return (us / 1e6).toFixed(us < 1e7 ? 3 : 1) + "s"; }

  function resize() {
    cssW = canvas.parentElement.clientWidth || 1000;
    canvas.style.height = cssH + "px";
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    draw();
  }

  function draw() {
    ctx.clearRect(0, 0, cssW, cssH);
    ctx.font = "11px ui-monospace, monospace";
    for (var r = 0; r < nrows; r++) {
      if (r % 2 === 0) { ctx.fillStyle = "#f6f6f6"; ctx.fillRect(LEFT, TOP + r * rowH, cssW - LEFT, rowH); }
      if (rowH >= 9 || r % Math.ceil(9 / rowH) === 0) {
        ctx.fillStyle = "#333"; ctx.fillText(D.rows[r] || "", 4, TOP + r * rowH + Math.min(rowH, 12) - 2);
      }
    }
    var plotBottom = TOP + nrows * rowH;
    D.faults.forEach(function (f) {
      var x1 = Math.max(LEFT, xOf(f.s)), x2 = Math.min(cssW, xOf(f.e));
      if (x2 < LEFT || x1 > cssW) { return; }
      ctx.globalAlpha = 0.45;
      ctx.fillStyle = D.fault_colours[f.name] || "#bdbdbd";
      ctx.fillRect(x1, TOP - 12, Math.max(2, x2 - x1), plotBottom - TOP + 12);
      ctx.globalAlpha = 1;
      ctx.fillStyle = "#555"; ctx.fillText(f.name, x1 + 2, TOP - 2);
    });
    var visible = 0;
    for (var v = 0; v < n; v++) { if (opEnd(v) >= view.a && D.s[v] <= view.b) { visible++; } }
    if (visible > DENSE * (cssW - LEFT)) { drawDense(); } else { drawEach(); }
    // fault edges on top of the ops, so dense lanes do not hide where a fault began and ended
    ctx.strokeStyle = "#444"; ctx.setLineDash([4, 3]); ctx.lineWidth = 1;
    D.faults.forEach(function (f) {
      [f.s, f.e].forEach(function (t) {
        var x = Math.round(xOf(t)) + 0.5;
        if (x < LEFT || x > cssW) { return; }
        ctx.beginPath(); ctx.moveTo(x, TOP - 12); ctx.lineTo(x, plotBottom); ctx.stroke();
      });
    });
    ctx.setLineDash([]);
    // anomalies: a red line across all lanes where the checker's counterexample failed
    (D.marks || []).forEach(function (m) {
      var x = Math.round(xOf(m.t)) + 0.5;
      if (x < LEFT || x > cssW) { return; }
      ctx.fillStyle = "#d73027";
      ctx.fillRect(x - 1, TOP - 12, 2, plotBottom - TOP + 12);
      ctx.fillText(m.label, Math.min(x + 3, cssW - 200), TOP - 14 > 8 ? TOP - 14 : 9);
    });
    ctx.fillStyle = "#666";
    for (var j = 0; j <= 8; j++) {
      var t = view.a + (view.b - view.a) * j / 8, x = xOf(t);
      ctx.fillRect(x, plotBottom, 1, 4);
      ctx.fillText(fmt(t), Math.min(x - 14, cssW - 60), plotBottom + 15);
    }
  }

  // each op as its own bar; three passes, one fill colour each (cheaper than switching per op)
  function drawEach() {
    for (var k = 0; k < 3; k++) {
      ctx.fillStyle = COLOURS[k];
      for (var i = 0; i < n; i++) {
        if (D.k[i] !== k) { continue; }
        var s = D.s[i], e = opEnd(i);
        if (e < view.a || s > view.b) { continue; }
        var x1 = xOf(s), x2 = xOf(e);
        if (x1 < LEFT) { x1 = LEFT; }
        ctx.fillRect(x1, TOP + D.row[i] * rowH + 1, Math.max(1, x2 - x1), rowH - 2);
      }
    }
  }

  // too many ops to tell apart: per lane and pixel column, stack the share of ok/fail/info
  // among the ops in flight there, so a burst of failures stays visible when zoomed out
  function drawDense() {
    var cols = Math.max(1, Math.floor(cssW - LEFT - 8));
    var counts = new Float32Array(nrows * cols * 3);
    for (var i = 0; i < n; i++) {
      var s = D.s[i], e = opEnd(i);
      if (e < view.a || s > view.b) { continue; }
      var c1 = Math.max(0, Math.floor(xOf(s) - LEFT)), c2 = Math.min(cols - 1, Math.floor(xOf(e) - LEFT));
      var base = D.row[i] * cols * 3 + D.k[i];
      for (var c = c1; c <= c2; c++) { counts[base + c * 3] += 1; }
    }
    for (var r = 0; r < nrows; r++) {
      for (var c = 0; c < cols; c++) {
        var o = (r * cols + c) * 3, tot = counts[o] + counts[o + 1] + counts[o + 2];
        if (tot === 0) { continue; }
        var y = TOP + r * rowH + 1, h = rowH - 2;
        for (var k = 0; k < 3; k++) {
          if (counts[o + k] === 0) { continue; }
          var hk = h * counts[o + k] / tot;
          ctx.fillStyle = COLOURS[k];
          ctx.fillRect(LEFT + c, y, 1, hk);
          y += hk;
        }
      }
    }
  }

  function hit(x, y) {
    var r = Math.floor((y - TOP) / rowH);
    if (x < LEFT || r < 0 || r >= nrows) { return -1; }
    var t = tOf(x), slack = (view.b - view.a) / (cssW - LEFT) * 2, best = -1;
    var lane = lanes[r];
    for (var q = 0; q < lane.length; q++) {
      var i = lane[q];
      if (D.s[i] - slack <= t && t <= opEnd(i) + slack) { best = i; }
    }
    return best;
  }

  var tip = document.getElementById("tip");
  var drag = null;
  canvas.addEventListener("mousemove", function (ev) {
    var rect = canvas.getBoundingClientRect(), x = ev.clientX - rect.left, y = ev.clientY - rect.top;
    if (drag) {
      var dt = (drag.x - x) / (cssW - LEFT - 8) * (drag.b - drag.a);
      view.a = drag.a + dt; view.b = drag.b + dt; draw(); return;
    }
    var i = hit(x, y), body = "";
    if (i >= 0) {
      var lat = D.e[i] < 0 ? "never completed" : ((D.e[i] - D.s[i]) / 1000).toFixed(2) + " ms";
      body = D.d[i] + "\n" + KIND[D.k[i]] + ", invoked " + fmt(D.s[i]) + ", latency " + lat;
    } else if (y < TOP && x > LEFT) {
      var t = tOf(x);
      D.faults.forEach(function (f) { if (f.s <= t && t <= f.e) { body += (body ? "\n" : "") + f.name + " " + fmt(f.s) + "–" + fmt(f.e) + ": " + f.d; } });
    }
    if (body) {
      tip.textContent = body; tip.style.display = "block";
      tip.style.left = Math.min(x + 12, cssW - 300) + "px"; tip.style.top = (y + 14) + "px";
    } else { tip.style.display = "none"; }
  });
  canvas.addEventListener("mouseleave", function () { tip.style.display = "none"; drag = null; });
  canvas.addEventListener("mousedown", function (ev) {
    drag = { x: ev.clientX - canvas.getBoundingClientRect().left, a: view.a, b: view.b };
    canvas.style.cursor = "grabbing";
  });
  window.addEventListener("mouseup", function () { drag = null; canvas.style.cursor = "grab"; });
  function zoom(factor, x) {
    var t = tOf(x), a = t - (t - view.a) * factor, b = t + (view.b - t) * factor;
    if (b - a < 1) { return; }  // one microsecond is as close as the data goes
    view.a = a; view.b = b; draw();
  }
  canvas.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    zoom(ev.deltaY > 0 ? 1.25 : 0.8, ev.clientX - canvas.getBoundingClientRect().left);
  }, { passive: false });
  canvas.addEventListener("dblclick", function () { view.a = 0; view.b = end; draw(); });
  function button(id, fn) { var b = document.getElementById(id); if (b) { b.addEventListener("click", fn); } }
  button("tl-in", function () { zoom(0.5, LEFT + (cssW - LEFT) / 2); });
  button("tl-out", function () { zoom(2, LEFT + (cssW - LEFT) / 2); });
  button("tl-reset", function () { view.a = 0; view.b = end; draw(); });
  window.addEventListener("resize", resize);
  resize();
  canvas.setAttribute("data-ops-drawn", String(n));
})();
