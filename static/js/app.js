// Small behaviours shared by every page. No build step: plain JavaScript.
(function () {
  "use strict";
  // Toasts fade out on their own; errors stay until clicked.
  function armToasts(root) {
    root.querySelectorAll(".toast").forEach(function (toast) {
      if (toast.dataset.armed) return;
      toast.dataset.armed = "1";
      toast.addEventListener("click", function () { toast.remove(); });
      if (!toast.classList.contains("error")) {
        setTimeout(function () { toast.remove(); }, 5000);
      }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { armToasts(document); });
  document.addEventListener("htmx:afterSwap", function () { armToasts(document); });

  // A progress bar's width comes from its data-percent: the Content-Security-Policy
  // forbids style="" attributes, not a script's writes to element.style. A bar htmx
  // swaps in is sized by the observer before the browser paints it (a mutation
  // callback runs before the next frame), and without a transition, as one drawn
  // with its width would be.
  function sizeBars(root) {
    var bars = Array.prototype.slice.call(root.querySelectorAll("[data-percent]"));
    if (root.matches && root.matches("[data-percent]")) bars.push(root);
    bars.forEach(function (bar) {
      var width = bar.dataset.percent + "%";
      if (bar.style.width === width) return;
      bar.style.transition = "none";
      bar.style.width = width;
    });
  }
  sizeBars(document);
  new MutationObserver(function (mutations) {
    mutations.forEach(function (m) {
      m.addedNodes.forEach(function (node) { if (node.nodeType === 1) sizeBars(node); });
    });
  }).observe(document.documentElement, { childList: true, subtree: true });
})();
