// Filters the run table by verdict and test; marks the page as fully scripted.
(function () {
  "use strict";
  var verdict = document.getElementById("f-verdict");
  var test = document.getElementById("f-test");
  var count = document.getElementById("f-count");
  var rows = document.querySelectorAll("tr.run");
  function apply() {
    var shown = 0;
    rows.forEach(function (tr) {
      var ok = (!verdict.value || tr.getAttribute("data-verdict") === verdict.value) &&
               (!test.value || tr.getAttribute("data-test") === test.value);
      tr.classList.toggle("hidden", !ok);
      if (ok) { shown++; }
    });
    count.textContent = shown + " of " + rows.length + " shown";
  }
  verdict.addEventListener("change", apply);
  test.addEventListener("change", apply);
  // filters can be preset from the URL: index.html#verdict=anomaly&test=register
  var params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  if (params.get("verdict")) { verdict.value = params.get("verdict"); }
  if (params.get("test")) { test.value = params.get("test"); }
  apply();
  var status = document.getElementById("render-status");
  if (status && window.faultlineErrors && window.faultlineErrors.length === 0) {
    status.setAttribute("data-status", "scripts-ok");
  }
})();
