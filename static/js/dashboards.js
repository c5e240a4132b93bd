/*
 * Dashboards: mounts the plotly figures of a [data-dashboard] page and keeps them current.
 *
 *  - Figures come from <script type="application/json" id="dashboard-data"> (json_script):
 *    {"figures": {name: figure | null}, "empty": {name: reason}}. Each [data-figure=name]
 *    element gets its figure; a panel without one shows its [data-empty=name] reason instead.
 *  - The range picker (and the drift tab's version/feature choices) fetch the dashboard's JSON
 *    (data-url) and redraw in place, updating the address bar; without JavaScript the same
 *    form reloads the page.
 *  - Auto-refresh: while [data-auto-refresh] is checked and the tab is visible, the JSON is
 *    fetched every data-refresh seconds and charts are updated with Plotly.react (no reload).
 *    The summary fragment ([data-fragment=summary]) is replaced by the server-rendered HTML.
 *
 * Loaded with `defer` after plotly.min.js (served from the plotly Python package). No inline
 * script, no WebGL trace types, no eval.
 */
(function () {
  "use strict";

  var CONFIG = {
    displaylogo: false,
    responsive: true,
    modeBarButtonsToRemove: ["select2d", "lasso2d"],
  };

  function readInitialData() {
    var node = document.getElementById("dashboard-data");
    if (!node) {
      return null;
    }
    try {
      return JSON.parse(node.textContent);
    } catch (error) {
      return null;
    }
  }

  function Dashboard(root) {
    this.root = root;
    this.url = root.getAttribute("data-url");
    this.refreshSeconds = parseInt(root.getAttribute("data-refresh"), 10) || 30;
    this.form = root.querySelector("[data-dashboard-controls]");
    this.autoRefresh = root.querySelector("[data-auto-refresh]");
    this.updated = root.querySelector("[data-updated]");
    this.timer = null;
    this.inFlight = null;
  }

  Dashboard.prototype.panels = function () {
    return Array.prototype.slice.call(this.root.querySelectorAll("[data-panel]"));
  };

  Dashboard.prototype.render = function (data) {
    var figures = (data && data.figures) || {};
    var empty = (data && data.empty) || {};
    this.panels().forEach(function (panel) {
      var name = panel.getAttribute("data-panel");
      var chart = panel.querySelector("[data-figure]");
      var placeholder = panel.querySelector("[data-empty]");
      var figure = figures[name];
      if (figure) {
        placeholder.hidden = true;
        chart.hidden = false;
        var layout = Object.assign({}, figure.layout || {}, { autosize: true });
        if (chart.getAttribute("data-mounted") === "true") {
          window.Plotly.react(chart, figure.data || [], layout, CONFIG);
        } else {
          window.Plotly.newPlot(chart, figure.data || [], layout, CONFIG);
          chart.setAttribute("data-mounted", "true");
        }
      } else {
        if (chart.getAttribute("data-mounted") === "true") {
          window.Plotly.purge(chart);
          chart.removeAttribute("data-mounted");
        }
        chart.hidden = true;
        placeholder.hidden = false;
        var text = placeholder.querySelector("[data-empty-text]");
        if (text && empty[name]) {
          text.textContent = empty[name];
        }
      }
    });
    var fragments = (data && data.fragments) || {};
    Object.keys(fragments).forEach(function (key) {
      var target = this.root.querySelector('[data-fragment="' + key + '"]');
      if (target) {
        // Server-rendered, autoescaped template output of the same origin.
        target.innerHTML = fragments[key];
      }
    }, this);
    if (this.updated) {
      var stamp = data && data.updated ? new Date(data.updated) : new Date();
      // UTC and 24-hour, like every other time the console shows.
      this.updated.textContent = "Updated " + stamp.toISOString().slice(11, 19) + " UTC";
    }
  };

  Dashboard.prototype.query = function () {
    if (!this.form) {
      return "";
    }
    var params = new URLSearchParams(new FormData(this.form));
    return params.toString();
  };

  Dashboard.prototype.fetch = function () {
    var self = this;
    if (self.inFlight) {
      self.inFlight.abort();
    }
    var controller = new AbortController();
    self.inFlight = controller;
    var query = self.query();
    rootBusy(self.root, true);
    return fetch(self.url + (query ? "?" + query : ""), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      signal: controller.signal,
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        self.render(data);
      })
      .catch(function (error) {
        if (error.name === "AbortError") {
          return;
        }
        if (self.updated) {
          self.updated.textContent = "Could not refresh (" + error.message + "); retrying.";
        }
      })
      .finally(function () {
        if (self.inFlight === controller) {
          self.inFlight = null;
          rootBusy(self.root, false);
        }
      });
  };

  function rootBusy(root, busy) {
    root.setAttribute("aria-busy", busy ? "true" : "false");
  }

  Dashboard.prototype.schedule = function () {
    var self = this;
    if (self.timer) {
      window.clearInterval(self.timer);
      self.timer = null;
    }
    if (self.autoRefresh && !self.autoRefresh.checked) {
      return;
    }
    self.timer = window.setInterval(function () {
      if (document.visibilityState === "visible") {
        self.fetch();
      }
    }, self.refreshSeconds * 1000);
  };

  Dashboard.prototype.start = function () {
    var self = this;
    self.render(readInitialData());
    if (self.form) {
      self.form.addEventListener("submit", function (event) {
        event.preventDefault();
        self.changed();
      });
      self.form.addEventListener("change", function (event) {
        if (event.target === self.autoRefresh) {
          self.schedule();
          return;
        }
        self.changed();
      });
    }
    self.schedule();
  };

  Dashboard.prototype.changed = function () {
    var query = this.query();
    var params = new URLSearchParams(query);
    var address = window.location.pathname + (params.toString() ? "?" + params.toString() : "");
    window.history.replaceState(null, "", address);
    this.fetch();
    this.schedule();
  };

  function init() {
    if (!window.Plotly) {
      return;
    }
    Array.prototype.forEach.call(document.querySelectorAll("[data-dashboard]"), function (root) {
      new Dashboard(root).start();
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
