// The till's camera: read the member's QR code and find the member with it.
//
// Progressive enhancement: without script (or without a camera API) the scan buttons stay
// hidden and the cashier types the loyalty ID. With one, the camera's frames are decoded by the
// browser's BarcodeDetector where it reads QR codes, else by jsQR (static/jsQR.js, loaded only
// then). What a code holds goes into the search field and the search form is sent: the server
// checks the network's signature (coalition/web/till.py), never this script.
(function () {
  "use strict";
  var box = document.querySelector("[data-scan]");
  var form = document.getElementById("find");
  if (!box || !form || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) { return; }
  var start = box.querySelector("[data-scan-start]");
  var stop = box.querySelector("[data-scan-stop]");
  var video = box.querySelector("video");
  var status = box.querySelector("[data-scan-status]");
  var canvas = document.createElement("canvas");
  var stream = null;
  var timer = null;

  function loadJsQR() {
    return new Promise(function (resolve, reject) {
      if (window.jsQR) { resolve(window.jsQR); return; }
      var script = document.createElement("script");
      script.src = box.getAttribute("data-jsqr");
      script.onload = function () { return window.jsQR ? resolve(window.jsQR) : reject(new Error("jsQR")); };
      script.onerror = reject;
      document.head.appendChild(script);
    });
  }

  // A function (source) -> Promise of the text of a QR code in it, or null.
  function makeDecoder() {
    var jsqrDecoder = function () {
      return loadJsQR().then(function (jsQR) {
        return function (source) {
          var width = source.videoWidth || source.naturalWidth || source.width;
          var height = source.videoHeight || source.naturalHeight || source.height;
          if (!width || !height) { return Promise.resolve(null); }
          canvas.width = width;
          canvas.height = height;
          var context = canvas.getContext("2d", { willReadFrequently: true });
          context.drawImage(source, 0, 0, width, height);
          var found = jsQR(context.getImageData(0, 0, width, height).data, width, height,
                           { inversionAttempts: "dontInvert" });
          return Promise.resolve(found ? found.data : null);
        };
      });
    };
    if (!("BarcodeDetector" in window)) { return jsqrDecoder(); }
    return window.BarcodeDetector.getSupportedFormats().then(function (formats) {
      if (formats.indexOf("qr_code") < 0) { return jsqrDecoder(); }
      var detector = new window.BarcodeDetector({ formats: ["qr_code"] });
      return function (source) {
        return detector.detect(source).then(function (codes) { return codes.length ? codes[0].rawValue : null; });
      };
    }, jsqrDecoder);
  }

  function halt() {
    if (timer) { window.clearTimeout(timer); timer = null; }
    if (stream) { stream.getTracks().forEach(function (track) { track.stop(); }); stream = null; }
    video.hidden = true;
    stop.hidden = true;
    start.hidden = false;
  }

  function found(text) {
    halt();
    form.querySelector("#q").value = text;
    form.submit();
  }

  start.addEventListener("click", function () {
    start.hidden = true;
    Promise.all([
      navigator.mediaDevices.getUserMedia({ video: { facingMode: { ideal: "environment" } }, audio: false }),
      makeDecoder(),
    ]).then(function (both) {
      stream = both[0];
      var decode = both[1];
      video.srcObject = stream;
      video.hidden = false;
      stop.hidden = false;
      status.textContent = box.getAttribute("data-looking");
      return video.play().then(function () {
        var tick = function () {
          if (!stream) { return; }
          decode(video).then(function (text) {
            if (text) { found(text); } else if (stream) { timer = window.setTimeout(tick, 150); }
          }, function () { if (stream) { timer = window.setTimeout(tick, 300); } });
        };
        tick();
      });
    }).catch(function () {
      halt();
      status.textContent = box.getAttribute("data-no-camera");
    });
  });
  stop.addEventListener("click", function () { halt(); status.textContent = ""; });
  start.hidden = false;

  // For tests and for a cashier's other inputs: decode a QR code in an <img> or <canvas> on the page.
  window.coalitionDecodeQR = function (source) {
    return makeDecoder().then(function (decode) { return decode(source); });
  };
}());
