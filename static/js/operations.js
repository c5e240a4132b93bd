/*
 * Following a container log on the endpoint's logs page (endpoints/endpoint/logs.html).
 * The "Follow" box is hidden until this script runs; while it is ticked the page's JSON
 * form (data-follow-url, same origin) is fetched every 3 s and the log replaced in place.
 * Stops by itself when the endpoint or the access is gone (HTTP 4xx).
 */
(function () {
  "use strict";

  var PERIOD_MS = 3000;
  var box = document.querySelector("[data-log-follow]");
  var output = document.querySelector("[data-log-output]");
  if (!box || !output) {
    return;
  }
  var status = document.querySelector("[data-log-status]");
  var errorBox = document.querySelector("[data-log-error]");
  var empty = document.querySelector("[data-log-empty]");
  var timer = null;

  box.hidden = false;
  var label = document.querySelector('label[for="' + box.id + '"]');
  if (label) {
    label.hidden = false;
  }

  function atBottom() {
    return output.scrollHeight - output.scrollTop - output.clientHeight < 24;
  }

  function show(data) {
    var follow = atBottom();
    output.textContent = data.text || "";
    if (empty) {
      empty.hidden = Boolean(data.text) || Boolean(data.error);
    }
    if (errorBox) {
      errorBox.hidden = !data.error;
      errorBox.textContent = "";
      var body = document.createElement("p");
      body.className = "alert-body";
      body.textContent = data.error || "";
      errorBox.appendChild(body);
    }
    if (status) {
      status.textContent = "Updated " + new Date().toLocaleTimeString() + ".";
    }
    if (follow) {
      output.scrollTop = output.scrollHeight;
    }
  }

  function stop(message) {
    if (timer !== null) {
      window.clearInterval(timer);
      timer = null;
    }
    box.checked = false;
    if (message && status) {
      status.textContent = message;
    }
  }

  function poll() {
    fetch(box.getAttribute("data-follow-url"), {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) {
        if (response.status >= 400 && response.status < 500) {
          stop("Stopped following: the log is no longer available to you (HTTP " + response.status + ").");
          return null;
        }
        return response.ok ? response.json() : null;
      })
      .then(function (data) {
        if (data) {
          show(data);
        }
      })
      .catch(function () {
        if (status) {
          status.textContent = "The console could not be reached; trying again.";
        }
      });
  }

  box.addEventListener("change", function () {
    if (box.checked) {
      poll();
      timer = window.setInterval(poll, PERIOD_MS);
    } else {
      stop("");
    }
  });
  output.scrollTop = output.scrollHeight;
})();
