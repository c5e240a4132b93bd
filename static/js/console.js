/*
 * Inference Console behaviour. Small on purpose: pages work without it, and it only adds
 *  - the CSRF header on htmx requests (token from <meta name="csrf-token">, the cookie is HttpOnly),
 *  - a message when an htmx request fails,
 *  - dismissible alerts        <button data-dismiss="alert" hidden> inside an .alert,
 *  - confirm prompts           data-confirm="Question?" on a form, button or link,
 *  - tabs                      [data-tabs] > [data-tab-list] a[data-tab][href="#panel"], [data-tab-panel],
 *  - focus on an error summary [data-error-summary].
 * Loaded with `defer` after htmx, so the document is parsed when this runs. No inline script:
 * the Content-Security-Policy allows same-origin script files only.
 */
(function () {
  "use strict";

  var SAFE_METHODS = ["GET", "HEAD", "OPTIONS", "TRACE"];

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  /* ---- htmx ------------------------------------------------------------------------- */

  document.addEventListener("htmx:configRequest", function (event) {
    var verb = (event.detail.verb || "get").toUpperCase();
    var token = csrfToken();
    if (token && SAFE_METHODS.indexOf(verb) === -1) {
      event.detail.headers["X-CSRFToken"] = token;
    }
  });

  function showMessage(text, level) {
    var container = document.getElementById("messages");
    if (!container) {
      return;
    }
    var alert = document.createElement("div");
    alert.className = "alert alert-" + (level || "error");
    alert.setAttribute("role", level === "error" || !level ? "alert" : "status");
    var body = document.createElement("p");
    body.className = "alert-body";
    body.textContent = text;
    alert.appendChild(body);
    alert.appendChild(dismissButton());
    container.appendChild(alert);
  }

  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    var text;
    if (status === 403) {
      text = "You don't have permission to do that.";
    } else if (status === 404) {
      text = "That no longer exists, or you don't have access to it.";
    } else if (status === 429) {
      text = "Too many requests. Wait a moment and try again.";
    } else {
      text = "The request failed (HTTP " + status + "). Reload the page and try again.";
    }
    showMessage(text, "error");
  });

  document.addEventListener("htmx:sendError", function () {
    showMessage("The console could not be reached. Check your connection and try again.", "error");
  });

  /* ---- Dismissible alerts ---------------------------------------------------------- */

  function dismissButton() {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "alert-dismiss";
    button.setAttribute("data-dismiss", "alert");
    button.setAttribute("aria-label", "Dismiss this message");
    var mark = document.createElement("span");
    mark.setAttribute("aria-hidden", "true");
    mark.textContent = "\u00d7";
    button.appendChild(mark);
    return button;
  }

  function enableDismiss(root) {
    root.querySelectorAll('[data-dismiss="alert"][hidden]').forEach(function (button) {
      button.hidden = false;
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest('[data-dismiss="alert"]');
    if (!button) {
      return;
    }
    var alert = button.closest(".alert");
    if (alert) {
      alert.remove();
      var main = document.getElementById("main");
      if (main) {
        main.focus({ preventScroll: true });
      }
    }
  });

  /* ---- Confirm prompts -------------------------------------------------------------- */
  /* Forms confirm on submit (covers the Enter key); buttons and links on click. Elements
     driven by htmx use hx-confirm instead, which htmx handles itself. */

  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      var message = form.getAttribute && form.getAttribute("data-confirm");
      if (message && !window.confirm(message)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );

  document.addEventListener(
    "click",
    function (event) {
      var element = event.target.closest("a[data-confirm], button[data-confirm], input[data-confirm]");
      if (element && !window.confirm(element.getAttribute("data-confirm"))) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );

  /* ---- Tabs ------------------------------------------------------------------------- */
  /* Without JavaScript the tabs are in-page links and every panel is visible. */

  function setupTabs(container) {
    if (container.hasAttribute("data-tabs-ready")) {
      return;
    }
    var list = container.querySelector("[data-tab-list]");
    var tabs = Array.prototype.slice.call(container.querySelectorAll("[data-tab]"));
    var pairs = [];
    tabs.forEach(function (tab) {
      var id = (tab.getAttribute("href") || "").replace(/^#/, "");
      var panel = id ? document.getElementById(id) : null;
      if (!panel) {
        return;
      }
      if (!tab.id) {
        tab.id = "tab-" + id;
      }
      pairs.push({ tab: tab, panel: panel });
    });
    if (!list || pairs.length === 0) {
      return;
    }
    container.setAttribute("data-tabs-ready", "");
    list.setAttribute("role", "tablist");
    Array.prototype.forEach.call(list.children, function (item) {
      if (item.tagName === "LI") {
        item.setAttribute("role", "presentation");
      }
    });
    pairs.forEach(function (pair) {
      pair.tab.setAttribute("role", "tab");
      pair.tab.setAttribute("aria-controls", pair.panel.id);
      pair.panel.setAttribute("role", "tabpanel");
      pair.panel.setAttribute("aria-labelledby", pair.tab.id);
      pair.panel.setAttribute("tabindex", "0");
    });

    function select(index, moveFocus) {
      pairs.forEach(function (pair, i) {
        var active = i === index;
        pair.tab.setAttribute("aria-selected", active ? "true" : "false");
        pair.tab.setAttribute("tabindex", active ? "0" : "-1");
        pair.panel.hidden = !active;
      });
      if (moveFocus) {
        pairs[index].tab.focus();
      }
    }

    function indexOfTab(element) {
      for (var i = 0; i < pairs.length; i++) {
        if (pairs[i].tab === element) {
          return i;
        }
      }
      return -1;
    }

    list.addEventListener("click", function (event) {
      var index = indexOfTab(event.target.closest("[data-tab]"));
      if (index === -1) {
        return;
      }
      event.preventDefault();
      select(index, false);
      // Keep the selection in the address so reload and shared links open the same tab.
      history.replaceState(null, "", "#" + pairs[index].panel.id);
    });

    list.addEventListener("keydown", function (event) {
      var current = indexOfTab(document.activeElement);
      if (current === -1) {
        return;
      }
      var next = null;
      if (event.key === "ArrowRight") {
        next = (current + 1) % pairs.length;
      } else if (event.key === "ArrowLeft") {
        next = (current - 1 + pairs.length) % pairs.length;
      } else if (event.key === "Home") {
        next = 0;
      } else if (event.key === "End") {
        next = pairs.length - 1;
      }
      if (next !== null) {
        event.preventDefault();
        select(next, true);
        history.replaceState(null, "", "#" + pairs[next].panel.id);
      }
    });

    var fromHash = -1;
    if (location.hash) {
      for (var i = 0; i < pairs.length; i++) {
        if ("#" + pairs[i].panel.id === location.hash) {
          fromHash = i;
        }
      }
    }
    select(fromHash === -1 ? 0 : fromHash, false);
  }

  /* ---- Enhancement of the page and of content htmx swaps in ------------------------- */

  function enhance(root) {
    enableDismiss(root);
    if (root.matches && root.matches("[data-tabs]")) {
      setupTabs(root);
    }
    root.querySelectorAll("[data-tabs]").forEach(setupTabs);
  }

  document.addEventListener("htmx:load", function (event) {
    if (event.target instanceof Element) {
      enhance(event.target);
    }
  });

  enhance(document);

  var summary = document.querySelector("[data-error-summary]");
  if (summary) {
    summary.focus();
  }
})();
