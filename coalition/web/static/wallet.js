// The wallet's code changes every 30 seconds: load the page again when it does, while it is
// in view. Without script, the "New code" link does the same.
(function () {
  "use strict";
  var code = document.querySelector("[data-refresh-s]");
  if (!code) { return; }
  var seconds = Math.max(1, parseInt(code.getAttribute("data-refresh-s"), 10) || 30);
  window.setTimeout(function again() {
    if (document.visibilityState === "visible") { window.location.reload(); } else { window.setTimeout(again, 1000); }
  }, seconds * 1000);
}());
