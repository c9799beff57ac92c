// The course's JupyterLab extension, written by hand as a module-federation container
// (no build step): JupyterLab loads this file, calls init(), then get("./extension").
//
// nbgrader's Validate dialog says "Success! Your notebook passes all the tests." even
// though test cells whose tests are hidden did not run. When that dialog opens, this
// adds which test cells hold hidden tests and that they run only when the notebook is
// graded; "all the tests" becomes "all the visible tests".
(function () {
  "use strict";

  // A released test cell whose tests are all hidden holds comments only.
  function isHiddenTestCell(cell) {
    var meta = cell.getMetadata ? cell.getMetadata("nbgrader") : null;
    if (!meta || !meta.grade || meta.solution || cell.type !== "code") {
      return false;
    }
    var source = cell.sharedModel ? cell.sharedModel.getSource() : "";
    return source.split("\n").every(function (line) {
      var text = line.trim();
      return text === "" || text.charAt(0) === "#";
    });
  }

  function hiddenTestCells(app) {
    var panel = app.shell.currentWidget;
    var model = panel && panel.content && panel.content.model;
    if (!model || !model.cells) {
      return null;
    }
    var names = [];
    for (var i = 0; i < model.cells.length; i++) {
      var cell = model.cells.get(i);
      if (isHiddenTestCell(cell)) {
        var meta = cell.getMetadata("nbgrader");
        names.push(meta.grade_id || "cell " + (i + 1));
      }
    }
    return names;
  }

  function annotate(app, message) {
    var names = hiddenTestCells(app);
    if (names === null) {
      return;
    }
    if (message.classList.contains("validation-success")) {
      message.querySelectorAll("p").forEach(function (p) {
        if (p.textContent.indexOf("passes all the tests") >= 0) {
          p.textContent = "Success! Your notebook passes all the visible tests.";
        }
      });
    }
    var note = document.createElement("p");
    note.className = "dlcourse-hidden-tests";
    if (names.length > 0) {
      note.textContent = names.length + " test cell(s) hold hidden tests that did not run here: " +
        names.join(", ") + ". They run when your notebook is graded; passing the visible " +
        "tests does not mean they pass.";
    } else {
      note.textContent = "This notebook has no test cell made only of hidden tests; " +
        "a visible test cell may still hold hidden tests that run when it is graded.";
    }
    message.append(note);
  }

  var plugin = {
    id: "dlcourse-lab:validate-hidden-tests",
    autoStart: true,
    activate: function (app) {
      // Dialogs are attached to document.body, already filled in.
      var observer = new MutationObserver(function (records) {
        records.forEach(function (record) {
          record.addedNodes.forEach(function (node) {
            if (!node.querySelectorAll) {
              return;
            }
            node.querySelectorAll("#validation-message").forEach(function (message) {
              if (!message.dataset.dlcourse) {
                message.dataset.dlcourse = "annotated";
                annotate(app, message);
              }
            });
          });
        });
      });
      observer.observe(document.body, { childList: true });
    }
  };

  var scope = (window._JUPYTERLAB = window._JUPYTERLAB || {});
  scope["dlcourse-lab"] = {
    init: function () {
      return Promise.resolve();
    },
    get: function (module) {
      if (module !== "./extension") {
        return Promise.reject(new Error("dlcourse-lab has no module " + module));
      }
      return Promise.resolve(function () {
        return { __esModule: true, default: plugin };
      });
    }
  };
})();
