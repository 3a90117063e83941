/* Docflow: move progress bars, status badges and errors of unfinished documents without
   reloading the page, by polling a small JSON view (the script tag's data-url) every 2 s.
   Used on the Document changelist and change page. */
(function () {
  "use strict";
  const script = document.currentScript;
  const url = script.dataset.url;
  const colours = JSON.parse(script.dataset.colours);

  function unfinished() {
    return Array.from(document.querySelectorAll(".docflow-progress[data-terminal='0']"))
      .map(function (el) { return el.dataset.progressId; });
  }

  function update(row) {
    const bar = document.querySelector(".docflow-progress[data-progress-id='" + row.pk + "']");
    if (bar) {
      bar.dataset.terminal = row.terminal ? "1" : "0";
      const fill = bar.querySelector(".docflow-progress-fill");
      fill.style.width = row.progress + "%";
      fill.style.background = colours[row.status];
      bar.querySelector(".docflow-progress-label").textContent = row.progress + "% " + row.stage;
    }
    document.querySelectorAll(".docflow-status[data-status-id='" + row.pk + "']")
      .forEach(function (badge) {
        badge.textContent = row.status_label;
        badge.style.background = colours[row.status];
      });
    document.querySelectorAll(".docflow-error[data-error-id='" + row.pk + "']")
      .forEach(function (error) {
        error.textContent = error.dataset.full ? row.error : row.error.slice(0, 80);
        error.title = row.error;
      });
  }

  function poll() {
    const ids = unfinished();
    if (!ids.length) { return; }
    fetch(url + "?ids=" + ids.join(","), {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : {documents: []}; })
      .then(function (data) { data.documents.forEach(update); })
      .catch(function () { /* the next poll tries again */ })
      .finally(function () { setTimeout(poll, 2000); });
  }

  document.addEventListener("DOMContentLoaded", function () { setTimeout(poll, 1000); });
})();
