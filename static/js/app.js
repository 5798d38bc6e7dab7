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
})();
