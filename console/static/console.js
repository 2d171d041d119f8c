// supportbot console: the only script, served from /console/static (the CSP allows no inline script).
// A button with data-confirm asks before its form is sent.
"use strict";
document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest("button[data-confirm]") : null;
  if (button && !window.confirm(button.getAttribute("data-confirm"))) {
    event.preventDefault();
  }
});
