// SweetDream's few behaviours that need a script. Loaded with <script src defer> (the CSP forbids
// inline scripts); every page works without it, this only makes the HTMX parts kinder.
(function () {
  "use strict";

  var WIDE = window.matchMedia("(min-width: 800px)"); // the width at which app.css puts the filters beside the grid

  // Filters: behind "Filters" on a phone, always open on a wide screen. app.css does this with
  // ::details-content where the browser has it; opening the <details> covers the others.
  function openFiltersOnWideScreens() {
    var panel = document.getElementById("filters-panel");
    if (panel && WIDE.matches) panel.open = true;
  }

  // The price inputs are never swapped (the shopper may be typing in one); only their messages
  // are. Mark each input invalid while its message is shown, and tie the message to it.
  function markInvalidPrices() {
    document.querySelectorAll("#price-range input").forEach(function (input) {
      var message = document.getElementById(input.id + "-error");
      if (message) {
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", message.id);
      } else {
        input.removeAttribute("aria-invalid");
        input.removeAttribute("aria-describedby");
      }
    });
  }

  // New results: a screen reader hears the count (not the whole grid). When the control that asked
  // for them is gone ("Next", "Previous", "Clear filters" live inside the results) or the form was
  // submitted, focus and the view go to the results' heading; a filter changed in the form keeps
  // the focus where the shopper is, so typing and choosing go on undisturbed.
  function resultsArrived(event) {
    var results = document.getElementById("results");
    if (!results || event.target !== results) return;
    var count = results.querySelector(".result-count");
    var status = document.getElementById("results-status");
    if (status && count) status.textContent = count.textContent.replace(/\s+/g, " ").trim();
    if (focusWasLost() || wasSubmitted(event)) {
      var heading = document.getElementById("results-heading") || results;
      heading.focus({ preventScroll: true });
      scrollBelowHeader(heading);
    }
  }

  function focusWasLost() {
    var active = document.activeElement;
    return !active || active === document.body || !document.contains(active);
  }

  function wasSubmitted(event) {
    var config = event.detail && event.detail.requestConfig;
    return Boolean(config && config.triggeringEvent && config.triggeringEvent.type === "submit");
  }

  // Into view below the sticky header, only if it is not in view already.
  function scrollBelowHeader(element) {
    var header = document.querySelector(".site-header");
    var headerBottom = header ? header.getBoundingClientRect().bottom : 0;
    var box = element.getBoundingClientRect();
    if (box.top >= headerBottom && box.bottom <= window.innerHeight) return;
    window.scrollTo({ top: Math.max(0, window.scrollY + box.top - headerBottom - 8) });
  }

  openFiltersOnWideScreens();
  WIDE.addEventListener("change", openFiltersOnWideScreens);
  document.addEventListener("htmx:afterSettle", function (event) {
    markInvalidPrices();
    resultsArrived(event);
  });
})();
