/*
 * Loaded before Redoc's standalone bundle on the API reference page. Redoc renders a
 * "Redocly" logo from https://cdn.redoc.ly unconditionally (no option turns it off); the
 * console loads nothing from other origins, and the CSP would refuse it anyway and report a
 * violation. Any image pointed at another origin gets an empty data: URL instead: it fails
 * to decode, Redoc's own error handler removes the image, and no request leaves the browser.
 */
(function () {
  "use strict";

  var BLANK = "data:,";

  function isForeign(value) {
    try {
      var url = new URL(String(value), document.baseURI);
      return (url.protocol === "http:" || url.protocol === "https:") && url.origin !== location.origin;
    } catch (error) {
      return false;
    }
  }

  var setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    if (this instanceof HTMLImageElement && String(name).toLowerCase() === "src" && isForeign(value)) {
      value = BLANK;
    }
    return setAttribute.call(this, name, value);
  };

  var src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  if (src && src.set) {
    Object.defineProperty(HTMLImageElement.prototype, "src", {
      configurable: true,
      enumerable: src.enumerable,
      get: src.get,
      set: function (value) {
        src.set.call(this, isForeign(value) ? BLANK : value);
      },
    });
  }
})();
