// The network map's zoom and pan: wheel or +/- keys zoom, drag moves. No library; the page
// reads fine without it (names on hover come from the SVG's <title> elements).
(function () {
  "use strict";
  var svg = document.getElementById("netmap");
  if (!svg) { return; }
  var view = document.getElementById("netmap-view");
  var scale = 1, x = 0, y = 0, drag = null;
  function apply() { view.setAttribute("transform", "translate(" + x + " " + y + ") scale(" + scale + ")"); }
  function point(event) {
    var box = svg.getBoundingClientRect(), size = svg.viewBox.baseVal.width;
    return { x: (event.clientX - box.left) * size / box.width, y: (event.clientY - box.top) * size / box.height };
  }
  function zoom(factor, at) {
    var next = Math.min(20, Math.max(0.5, scale * factor));
    x = at.x - (at.x - x) * next / scale; y = at.y - (at.y - y) * next / scale; scale = next; apply();
  }
  svg.addEventListener("wheel", function (event) {
    event.preventDefault(); zoom(event.deltaY < 0 ? 1.2 : 1 / 1.2, point(event));
  }, { passive: false });
  svg.addEventListener("pointerdown", function (event) { drag = point(event); svg.setPointerCapture(event.pointerId); });
  svg.addEventListener("pointermove", function (event) {
    if (!drag) { return; }
    var p = point(event); x += p.x - drag.x; y += p.y - drag.y; drag = p; apply();
  });
  svg.addEventListener("pointerup", function () { drag = null; });
  document.addEventListener("keydown", function (event) {
    var middle = { x: svg.viewBox.baseVal.width / 2, y: svg.viewBox.baseVal.height / 2 };
    if (event.key === "+") { zoom(1.2, middle); } else if (event.key === "-") { zoom(1 / 1.2, middle); }
  });
}());
