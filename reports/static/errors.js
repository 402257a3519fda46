// Runs first: any script error is written into the page (and read back by the tests),
// so a broken report says so instead of silently drawing nothing.
(function () {
  "use strict";
  window.faultlineErrors = [];
  function record(msg) {
    window.faultlineErrors.push(String(msg));
    var box = document.getElementById("js-errors");
    if (box) { box.textContent = window.faultlineErrors.join("\n"); }
    document.documentElement.setAttribute("data-js-errors", String(window.faultlineErrors.length));
    var status = document.getElementById("render-status");
    if (status) { status.setAttribute("data-status", "script-error"); }
  }
  window.onerror = function (msg, src, line, col) { record(msg + " at " + line + ":" + col); return false; };
  window.addEventListener("unhandledrejection", function (e) { record("unhandled rejection: " + e.reason); });
  window.faultlineRecordError = record;
})();
