// Small page behaviours: switching between longest linearizations, copying the reproduce
// command. Runs last and marks the page as fully scripted (the tests read this marker).
(function () {
  "use strict";
  var buttons = document.querySelectorAll(".linbtn");
  // the op that cannot be placed is at the end of the axis and of the steps: start there
  function toEnd(root) {
    root.querySelectorAll(".cx-scroll").forEach(function (el) { el.scrollLeft = el.scrollWidth; });
    root.querySelectorAll(".steps-wrap").forEach(function (el) { el.scrollTop = el.scrollHeight; });
  }
  function show(idx) {
    document.querySelectorAll(".linearization").forEach(function (el) {
      el.style.display = el.getAttribute("data-idx") === idx ? "block" : "none";
      if (el.style.display === "block") { toEnd(el); }
    });
    buttons.forEach(function (b) { b.classList.toggle("active", b.getAttribute("data-idx") === idx); });
  }
  buttons.forEach(function (b) { b.addEventListener("click", function () { show(b.getAttribute("data-idx")); }); });
  if (buttons.length) { show("0"); } else { toEnd(document); }
  var copy = document.getElementById("copy-repro");
  if (copy) {
    copy.addEventListener("click", function () {
      var cmd = document.getElementById("repro").textContent;
      if (navigator.clipboard) { navigator.clipboard.writeText(cmd).catch(function () {}); }
    });
  }
  var status = document.getElementById("render-status");
  if (status && window.faultlineErrors && window.faultlineErrors.length === 0) {
    status.setAttribute("data-status", "scripts-ok");
  }
})();
