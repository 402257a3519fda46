// Raft timeline zoom: elements carry their times (data-s, data-e, seconds from the first
// event); wheel zooms around the cursor, drag pans, double-click resets, and the script
// re-lays them out. Term labels too narrow to read are hidden.
(function () {
  "use strict";
  var svg = document.querySelector("svg.raft");
  if (!svg) { return; }
  var LEFT = Number(svg.getAttribute("data-left"));
  var W = Number(svg.getAttribute("data-plot-w"));
  var span = Number(svg.getAttribute("data-span"));
  var view = { a: 0, b: span };
  var timed = svg.querySelectorAll("[data-s]");
  var axis = svg.querySelectorAll("[data-k]");

  function X(t) { return LEFT + (t - view.a) / (view.b - view.a) * W; }

  function layout() {
    timed.forEach(function (el) {
      var s = Number(el.getAttribute("data-s")), tag = el.tagName.toLowerCase();
      if (tag === "rect") {
        var x1 = X(s), x2 = X(Number(el.getAttribute("data-e")));
        el.setAttribute("x", x1.toFixed(1));
        el.setAttribute("width", Math.max(0.5, x2 - x1).toFixed(1));
      } else if (tag === "text") {
        el.setAttribute("x", (X(s) + 2).toFixed(1));
        if (el.hasAttribute("data-e")) {
          el.style.display = X(Number(el.getAttribute("data-e"))) - X(s) > 24 ? "" : "none";
        }
      } else if (tag === "line") {
        el.setAttribute("x1", X(s).toFixed(1));
        el.setAttribute("x2", X(s).toFixed(1));
      } else if (tag === "path") {
        el.setAttribute("transform", "translate(" + X(s).toFixed(1) + ",0)");
      }
    });
    var digits = view.b - view.a < 5 ? 3 : 1;
    axis.forEach(function (el) {
      var k = Number(el.getAttribute("data-k"));
      el.textContent = (view.a + k * (view.b - view.a)).toFixed(digits) + "s";
    });
  }

  function svgX(ev) {
    var r = svg.getBoundingClientRect();
    return (ev.clientX - r.left) * (Number(svg.getAttribute("width")) / r.width);
  }
  function tOf(x) { return view.a + (x - LEFT) / W * (view.b - view.a); }

  svg.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var t = tOf(svgX(ev)), f = ev.deltaY > 0 ? 1.25 : 0.8;
    var a = t - (t - view.a) * f, b = t + (view.b - t) * f;
    if (b - a < 1e-4) { return; }
    view.a = a; view.b = b; layout();
  }, { passive: false });
  var drag = null;
  svg.addEventListener("mousedown", function (ev) { drag = { x: svgX(ev), a: view.a, b: view.b }; });
  svg.addEventListener("mousemove", function (ev) {
    if (!drag) { return; }
    var dt = (drag.x - svgX(ev)) / W * (drag.b - drag.a);
    view.a = drag.a + dt; view.b = drag.b + dt; layout();
  });
  window.addEventListener("mouseup", function () { drag = null; });
  svg.addEventListener("dblclick", function () { view.a = 0; view.b = span; layout(); });
  layout();
  svg.setAttribute("data-laid-out", "1");
})();
